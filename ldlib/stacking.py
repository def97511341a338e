"""Model stacking (section 3.2): initialise a model with K + 1 resolutions from a trained K-resolution one.

The layered model is hierarchical: the K+1 model contains every tensor of the K model under the same name
(the base U-Net and the first K-1 higher layers) plus one new layer. Those tensors are copied; the new
layer keeps its fresh initialisation. The report says which tensors were copied and which are new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from .checkpoint import CheckpointError, latest_checkpoint, read_configs
from .network import LayeredUNet


@dataclass
class StackReport:
    source: Path
    copied: list[str]
    fresh: list[str]

    def summary(self) -> str:
        return (f"stacked from {self.source}: copied {len(self.copied)} tensors, "
                f"{len(self.fresh)} new ({', '.join(sorted({n.split('.')[0] + '.' + n.split('.')[1] for n in self.fresh})) or 'none'})")


def stack_from(model: LayeredUNet, source: Path | str, use_ema: bool = True) -> StackReport:
    """Copy a smaller trained model's weights into ``model`` (in place) and report what was copied."""
    source = Path(source)
    ckpt = source if (source / "config.json").exists() else latest_checkpoint(source)
    if ckpt is None:
        raise CheckpointError(f"no checkpoint in {source} to stack from")
    small = read_configs(ckpt)["model"]
    big = model.cfg
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
        raise CheckpointError(f"cannot stack a model over {small.resolutions} into one over {big.resolutions}: the "
                              f"smaller model must be the same preset with fewer resolutions")
    state = load_file(str(ckpt / ("ema.safetensors" if use_ema else "model.safetensors")))
    own = model.state_dict()
    copied = [n for n in own if n in state and state[n].shape == own[n].shape]
    mismatched = [n for n in state if n not in own or state[n].shape != own[n].shape]
    if mismatched:
        raise CheckpointError(f"{ckpt} has tensors that do not fit the larger model: {mismatched[:5]}")
    own.update({n: state[n] for n in copied})
    model.load_state_dict(own)
    return StackReport(ckpt, copied, [n for n in own if n not in state])
