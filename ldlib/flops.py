"""Forward FLOPs per image (Table 1's FLOPs column), counted with ``torch.utils.flop_counter`` on the meta
device: only shapes are propagated, so even the 512 px models are counted in seconds.

FLOPs follow PyTorch's counter: a multiply-add is 2 FLOPs; convolutions, linear layers and attention
matmuls are counted, normalisations and activations are not (they are a small fraction).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import UNetConfig, model_config
from .network import build_model

#: Table 1's rows in the paper's order: (the paper's row name, kind, number of the preset's resolutions used).
#: A ``single`` row is the single-resolution U-Net at the target resolution of that many resolutions.
TABLE1_MODELS = (("single128", "single", 1), ("single256", "single", 2), ("layered256", "layered", 2),
                 ("single512", "single", 3), ("layered512", "layered", 3))


def count_flops(cfg: UNetConfig, text_tokens: int = 32) -> int:
    """Forward FLOPs for one image through the model of ``cfg`` (all K outputs computed)."""
    with torch.device("meta"):
        model = build_model(cfg)
        z = [torch.empty(1, cfg.image_channels, r, r) for r in cfg.resolutions]
        t = torch.empty(1)
        tokens = torch.empty(1, text_tokens, cfg.text_dim)
        mask = torch.ones(1, text_tokens, dtype=torch.bool)
        pooled = torch.empty(1, cfg.text_dim)
        with FlopCounterMode(display=False) as counter:
            model(z, t, tokens, mask, pooled)
    return int(counter.get_total_flops())


def table1_configs(preset: str = "paper") -> dict[str, UNetConfig]:
    """Table 1's five models built from ``preset``, keyed by the paper's row names (a row's place in Table 1,
    whatever resolutions the preset has)."""
    return {key: model_config(preset, levels=levels, single=kind == "single" and levels > 1)
            for key, kind, levels in TABLE1_MODELS}


def table1_models(preset: str = "paper") -> dict[str, UNetConfig]:
    """Table 1's five models built from ``preset``, in the paper's order, named by their kind and this preset's
    target resolution (``single16`` ... ``layered64`` for ``cpu16``)."""
    return {f"{kind}{cfg.resolutions[-1]}": cfg
            for (_, kind, _), cfg in zip(TABLE1_MODELS, table1_configs(preset).values())}


def table1_flops(preset: str = "paper") -> dict[str, int]:
    """FLOPs per image of Table 1's five models built from ``preset`` (keys as in :func:`table1_configs`)."""
    return {key: count_flops(cfg) for key, cfg in table1_configs(preset).items()}
