"""Forward FLOPs per image (Table 1's FLOPs column), counted with ``torch.utils.flop_counter`` on the meta
device: only shapes are propagated, so even the 512 px models are counted in seconds.

FLOPs follow PyTorch's counter: a multiply-add is 2 FLOPs; convolutions, linear layers and attention
matmuls are counted, normalisations and activations are not (they are a small fraction).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import paper
from .config import UNetConfig, model_config
from .network import build_model

#: Table 1's rows as (key, layered?, number of resolutions of the preset used).
TABLE1_ROWS = (("single128", False, 1), ("single256", True, 2), ("layered256", False, 2),
               ("single512", True, 3), ("layered512", False, 3))


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


def table1_flops(preset: str = "paper") -> dict[str, int]:
    """FLOPs per image of Table 1's five models built from ``preset``."""
    out = {}
    for key, single, levels in TABLE1_ROWS:
        is_single = key.startswith("single")
        cfg = model_config(preset, levels=levels, single=is_single and levels > 1)
        out[key] = count_flops(cfg)
    return out


def flops_table(flops: dict[str, int], preset: str) -> str:
    """Markdown: our FLOPs next to the paper's (reference) and the layered/single ratios."""
    lines = [f"| model | ours ({preset}) | paper (reference) |", "|---|---|---|"]
    for key in flops:
        ref = paper.TABLE1[key]["flops"] if preset == "paper" else None
        lines.append(f"| {key} | {flops[key]:.3e} | {ref:.2e} |" if ref else f"| {key} | {flops[key]:.3e} | — |")
    for res in (256, 512):
        ours = flops[f"layered{res}"] / flops[f"single{res}"]
        ref = paper.TABLE1[f"layered{res}"]["flops"] / paper.TABLE1[f"single{res}"]["flops"]
        lines.append(f"| layered/single @ target {res} | {ours:.3f} | {ref:.3f} |")
    return "\n".join(lines)
