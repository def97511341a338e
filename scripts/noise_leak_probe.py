"""Does a trained layered model's top level read the clean low-pass image off its two inputs?

Eq. (3) noises every level with the same top-resolution noise (S(eps0, i), sinc) under its own schedule, so the
pair (z_base, z_top) holds two linear mixtures of the same low-pass signal and noise: a network can cancel the
noise and see the low frequencies of x0 at any t, which a single-resolution model (z_top alone) cannot. The
sampler builds the lower levels from its own estimate (x_hat, eps_hat), so there that cue is the model's guess.

Prints, at fixed t, the top level's x0 mean squared error on 64 emoji3d training images (conditional, EMA
weights), the inputs built as training builds them (``loss.training_inputs``, the run's own noise kind):
a single model and a layered model at the same schedule rule, and the layered model again with the base level's
noise drawn afresh (the same marginal noise at its schedule, nothing shared to cancel). Pass pairs of run folders
of the run cache (``$LDLIB_CACHE/runs``), single first, each ``RULE=SINGLE_RUN,LAYERED_RUN``:

    python scripts/noise_leak_probe.py paper=cpu16-single32-926ee165308a,cpu16-layered32-869d336109c1
"""

import os
import sys
from pathlib import Path

import torch

from ldlib.data import load_dataset, make_encoder, to_float
from ldlib.loss import training_inputs
from ldlib.training import load_model
from ldlib.training.checkpoint import latest_checkpoint


def top_error(model, z, target, t, text) -> float:
    b = target.shape[0]
    keep = torch.ones(b, dtype=torch.bool)
    with torch.no_grad():
        out = model(z, torch.full((b,), t), text.tokens, text.mask, text.pooled, keep)[-1].float()
    return ((out - target) ** 2).mean().item()


def main(pairs: list[str], n: int = 64, times=(0.3, 0.6, 0.8, 0.9, 0.97)) -> None:
    runs = Path(os.environ.get("LDLIB_CACHE", ".cache/ldlib")) / "runs"
    loaded = {}
    for arg in pairs:
        rule, names = arg.split("=")
        loaded[rule] = [load_model(latest_checkpoint(runs / name), device="cpu") for name in names.split(",")]
    first = next(iter(loaded.values()))[0][1]  # the first single model's configs: resolution, text encoder
    data = load_dataset("emoji3d", "train", first["model"].resolutions[-1])
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:n]
    x0 = to_float(data.images[idx])
    text = make_encoder(first["train"].text_encoder).encode([data.captions[int(i)] for i in idx])
    gen = torch.Generator().manual_seed(1)
    eps, other = torch.randn(x0.shape, generator=gen), torch.randn(x0.shape, generator=gen)
    print("| rule | t | single | layered | layered, base noise redrawn |\n|---|---|---|---|---|")
    for rule, ((single, cs), (layered, cl)) in loaded.items():
        for t in times:
            at = torch.full((n,), t)
            zs, ts = training_inputs(x0, eps, at, cs["diffusion"])
            zl, tl = training_inputs(x0, eps, at, cl["diffusion"])
            zb, _ = training_inputs(x0, other, at, cl["diffusion"])
            print(f"| {rule} | {t} | {top_error(single, zs, ts[-1], t, text):.4f} "
                  f"| {top_error(layered, zl, tl[-1], t, text):.4f} "
                  f"| {top_error(layered, [*zb[:-1], zl[-1]], tl[-1], t, text):.4f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
