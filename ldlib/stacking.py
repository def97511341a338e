"""Model stacking (section 3.2): initialise a model with K + 1 resolutions from a trained K-resolution one.

The layered model is hierarchical: the K+1 model contains every tensor of the K model under the same name
(the base U-Net and the first K-1 higher layers) plus one new layer. Those tensors are copied; the new
layer keeps its fresh initialisation. The report says which tensors were copied and which are new.
Reading the smaller model from a checkpoint is ``ldlib.training.checkpoint.stack_from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import UNetConfig
from .network import LayeredUNet


class StackingError(ValueError):
    """The smaller model cannot be stacked into the larger one (another preset, or not fewer resolutions)."""


@dataclass
class StackReport:
    source: Path | str
    copied: list[str]
    fresh: list[str]

    def summary(self) -> str:
        return (f"stacked from {self.source}: copied {len(self.copied)} tensors, "
                f"{len(self.fresh)} new ({', '.join(sorted({n.split('.')[0] + '.' + n.split('.')[1] for n in self.fresh})) or 'none'})")


def check_stackable(small: UNetConfig, big: UNetConfig) -> None:
    """Raise :class:`StackingError` unless ``big`` is ``small``'s preset with more resolutions."""
    k = small.levels
    compatible = (
        small.resolutions == big.resolutions[:k]
        and small.base_widths == big.base_widths
        and small.base_blocks == big.base_blocks
        and small.layer_widths == big.layer_widths[: k - 1]
        and small.layer_enc_blocks == big.layer_enc_blocks[: k - 1]
        and small.attention_levels == big.attention_levels
    )
    if not compatible or small.levels >= big.levels:
        raise StackingError(f"cannot stack a model over {small.resolutions} into one over {big.resolutions}: the "
                            f"smaller model must be the same preset with fewer resolutions")


def stack_weights(model: LayeredUNet, small: UNetConfig, state: dict[str, torch.Tensor],
                  source: Path | str = "") -> StackReport:
    """Copy the weights ``state`` of a smaller model (config ``small``) into ``model`` (in place) and report
    what was copied and what keeps its fresh initialisation."""
    check_stackable(small, model.cfg)
    own = model.state_dict()
    mismatched = [n for n in state if n not in own or state[n].shape != own[n].shape]
    if mismatched:
        raise StackingError(f"{source or 'the smaller model'} has tensors that do not fit the larger model: "
                            f"{mismatched[:5]}")
    copied = [n for n in own if n in state]
    own.update({n: state[n] for n in copied})
    model.load_state_dict(own)
    return StackReport(source, copied, [n for n in own if n not in state])
