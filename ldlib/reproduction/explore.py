"""Interactive exploration in JupyterLab (``notebooks/00_explore.ipynb``).

Each panel is a plain function that draws one figure for given values, plus :func:`panel`, which wraps it in
ipywidgets controls when they are available and the notebook is interactive, and otherwise draws it once
with the defaults (headless runs under papermill, or an environment without the ``lab`` extra).

* :func:`noise_view`: a top-resolution noise field downsampled by a factor with sinc / bilinear /
  independent noise (section 2.2), its radial power spectrum and statistics.
* :func:`schedule_view`: per-resolution log-SNR curves for chosen shifts and one image noised at a chosen t
  at every resolution (section 2.3, eq. 3).
* :func:`sampling_view`: a trained checkpoint's sample for a prompt at every resolution and the top
  prediction along the denoising trajectory.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.images import EXAMPLE_IMAGES, example_images, to_display
from ..data.text import make_encoder
from ..forward import diffuse
from ..noise import ANALYSIS_KINDS, downsample_noise
from ..runtime.cache import cache_root
from ..sampler import sample
from ..schedules import LayeredSchedule
from ..training.checkpoint import latest_checkpoint, load_model
from .noise_scaling import radial_power_spectrum


def noise_view(resolution: int = 128, factor: int = 4, kind: str = "sinc", seed: int = 0):
    """The noise a lower layer sees (eq. 1 for sinc), next to the top-resolution field it came from."""
    g = torch.Generator().manual_seed(seed)
    eps0 = torch.randn(16, 1, resolution, resolution, generator=g)
    low = downsample_noise(eps0, factor, kind, g)
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.4))
    ax[0].imshow(eps0[0, 0].numpy(), cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
    ax[0].set_title(f"eps0, {resolution}px")
    ax[1].imshow(low[0, 0].numpy(), cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
    ax[1].set_title(f"{kind}, /{factor} -> {low.shape[-1]}px")
    for a in ax[:2]:
        a.set_xticks([]), a.set_yticks([])
    freqs, power = radial_power_spectrum(low)
    ax[2].plot(freqs, power)
    ax[2].axhline(1.0, color="grey", ls="--", lw=1)
    ax[2].set_xlabel("radial frequency (cycles/pixel)")
    ax[2].set_ylabel("power (white = 1)")
    x = low.flatten()
    lag1 = float((low[..., 1:] * low[..., :-1]).mean() / low.var())
    ax[2].set_title(f"mean {x.mean():+.3f}, var {x.var():.3f}, lag-1 corr {lag1:+.3f}", fontsize=9)
    fig.tight_layout()
    return fig


@lru_cache(maxsize=8)
def _image(name: str, resolution: int) -> torch.Tensor:
    return example_images([name], resolution)


def schedule_view(base: int = 128, levels: int = 3, shift_2x: float = math.log(1 / 8), shift_4x: float = math.log(1 / 32),
                  t: float = 0.6, image: str = "astronaut", seed: int = 0):
    """log-SNR per resolution for the chosen shifts (nats), and eq. (3)'s noisy input at ``t`` per layer."""
    resolutions = [base * 2**k for k in range(levels)]
    schedule = LayeredSchedule(tuple(resolutions), (0.0, shift_2x, shift_4x)[:levels])
    ts = torch.linspace(0, 1, 201)
    fig = plt.figure(figsize=(3.2 * (levels + 1.4), 3.4))
    grid = fig.add_gridspec(1, levels + 1, width_ratios=[1.4] + [1] * levels)
    ax = fig.add_subplot(grid[0])
    for res, curve in zip(resolutions, schedule.logsnr(ts)):
        ax.plot(ts.numpy(), curve.numpy(), label=f"{res}px")
    ax.axvline(t, color="grey", ls=":")
    ax.set_xlabel("t"), ax.set_ylabel("log-SNR"), ax.legend(fontsize=8)
    x0 = _image(image, resolutions[-1])
    eps0 = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    z = diffuse(x0, eps0, t, schedule)[0]
    for k, (res, level) in enumerate(zip(resolutions, z)):
        a = fig.add_subplot(grid[k + 1])
        a.imshow(to_display(level[0]), interpolation="nearest")
        a.set_xticks([]), a.set_yticks([])
        a.set_title(f"{res}px at t={t:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


@lru_cache(maxsize=2)
def _model(checkpoint: str):
    return load_model(checkpoint)


def sampling_view(checkpoint: str | Path, prompt: str = "a large red circle", guidance: float = 3.0, steps: int = 25,
                  seed: int = 0, trajectory_frames: int = 5):
    """A sample for ``prompt`` at every resolution, and the top prediction at a few points of the trajectory."""
    model, configs = _model(str(checkpoint))
    encoder = make_encoder(configs["train"].text_encoder)
    out = sample(model, configs["diffusion"], encoder.encode([prompt]), steps=steps, guidance=guidance, seed=seed,
                 trajectory=True)
    frames = np.unique(np.linspace(0, len(out.trajectory) - 1, trajectory_frames).round().astype(int))
    cols = max(len(out.images), len(frames))
    fig, axes = plt.subplots(2, cols, figsize=(2.3 * cols, 4.8), squeeze=False)
    for a in axes.flat:
        a.axis("off")
    for c, level in enumerate(out.images):
        axes[0, c].imshow(to_display(level[0]), interpolation="nearest")
        axes[0, c].set_title(f"{level.shape[-1]}px output", fontsize=9)
    for c, f in enumerate(frames):
        axes[1, c].imshow(to_display(out.trajectory[f][0]), interpolation="nearest")
        axes[1, c].set_title(f"step {f + 1}/{steps}", fontsize=9)
    fig.suptitle(prompt, fontsize=10)
    fig.tight_layout()
    return fig


def _widgets():
    try:
        import ipywidgets

        return ipywidgets
    except ImportError:
        return None


def panel(view: Callable, interactive: bool = True, **controls):
    """Show ``view`` with ipywidgets controls (``name=(widget spec)`` as for ``ipywidgets.interactive``) when
    ``interactive`` and ipywidgets is installed; otherwise draw it once with the first value of each control."""
    from IPython.display import display

    widgets = _widgets()
    if interactive and widgets is not None:

        def show(**kw):
            fig = view(**kw)
            display(fig)
            plt.close(fig)

        ui = widgets.interactive(show, {"manual": False}, **controls)
        display(ui)
        return ui
    defaults = {k: _default(v) for k, v in controls.items()}
    fig = view(**defaults)
    display(fig)
    plt.close(fig)
    return fig


def _default(control):
    """The value a control starts at: a fixed value, a (value, ...) description, or a widget's ``value``."""
    if hasattr(control, "value"):
        return control.value
    if isinstance(control, tuple) and len(control) == 2 and isinstance(control[1], (list, tuple)):
        return control[0]
    return control


def controls_noise(widgets=None):
    """The noise panel's controls (ipywidgets when available, else plain defaults)."""
    w = widgets or _widgets()
    if w is None:
        return dict(resolution=128, factor=4, kind="sinc", seed=0)
    return dict(resolution=w.Dropdown(options=[64, 128, 256, 512], value=128, description="top px"),
                factor=w.Dropdown(options=[2, 4, 8, 16], value=4, description="factor"),
                kind=w.Dropdown(options=ANALYSIS_KINDS, value="sinc", description="noise"),
                seed=w.IntSlider(value=0, min=0, max=20, description="seed"))


def controls_schedule(widgets=None):
    w = widgets or _widgets()
    if w is None:
        return dict(base=128, levels=3, shift_2x=math.log(1 / 8), shift_4x=math.log(1 / 32), t=0.6,
                    image="astronaut", seed=0)
    return dict(base=w.Dropdown(options=[32, 64, 128], value=128, description="base px"),
                levels=w.IntSlider(value=3, min=1, max=3, description="levels"),
                shift_2x=w.FloatSlider(value=math.log(1 / 8), min=-6, max=1, step=0.05, description="shift 2x"),
                shift_4x=w.FloatSlider(value=math.log(1 / 32), min=-8, max=1, step=0.05, description="shift 4x"),
                t=w.FloatSlider(value=0.6, min=0, max=1, step=0.01, description="t"),
                image=w.Dropdown(options=list(EXAMPLE_IMAGES), value="astronaut", description="image"),
                seed=w.IntSlider(value=0, min=0, max=20, description="seed"))


def controls_sampling(checkpoint: str, widgets=None):
    w = widgets or _widgets()
    if w is None:
        return dict(checkpoint=checkpoint, prompt="a large red circle", guidance=3.0, steps=25, seed=0)
    return dict(checkpoint=w.fixed(checkpoint),
                prompt=w.Text(value="a large red circle", description="prompt", continuous_update=False),
                guidance=w.FloatSlider(value=3.0, min=0, max=10, step=0.5, description="guidance"),
                steps=w.IntSlider(value=25, min=1, max=100, description="steps"),
                seed=w.IntSlider(value=0, min=0, max=20, description="seed"))


def find_checkpoint(checkpoint: str = "") -> str:
    """``checkpoint`` if given, else the newest finished run in the run cache ('' when there is none)."""
    if checkpoint:
        return checkpoint
    runs = sorted((cache_root() / "runs").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if (cache_root() / "runs").exists() else []
    for run in runs:
        ckpt = latest_checkpoint(run)
        if ckpt is not None:
            return str(ckpt)
    return ""
