"""Sampling a layered model: DDIM and DPM-Solver++(2M) (deterministic) and ancestral DDPM, with
classifier-free guidance.

The sampler keeps one state, at the top resolution, written as a clean-image estimate x_hat and a noise
estimate eps_hat with z_top(t) = alpha_top(t) x_hat + sigma_top(t) eps_hat. Every resolution's input is then
built exactly as in training (eq. 3), from that state and the same per-resolution schedules and noise rule:

    z_i(t) = alpha_{t,i} D(x_hat, i) + sigma_{t,i} S(eps_hat, i)

At t = 1, x_hat = 0 and eps_hat ~ N(0, I). Each step calls the network on (z_1..z_K, t), combines the
conditional and unconditional predictions with the guidance scale, takes the top-resolution prediction as the
new x_hat ("only the output convolution of the highest resolution is necessary", section 2.1), sets
eps_hat = (z_top(t) - alpha_top(t) x_hat) / sigma_top(t), and moves the top state to the next time s:
DDIM keeps eps_hat; DDPM draws z_top(s) from the Gaussian posterior q(z_s | z_t, x_hat) and re-derives eps_hat
from it. With K = 1 they reduce to the usual samplers. The returned images are every head's last prediction.

DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2: multistep, second order, data prediction, which
suits these x-predicting networks) moves the top state with

    z_top(s) = (sigma_s / sigma_t) z_top(t) - alpha_s (exp(-h) - 1) D,    h = lambda_s - lambda_t,
    D = (1 + 1 / (2 r)) x0_t - 1 / (2 r) x0_prev,                          r = h_prev / h,

with lambda = log(alpha / sigma) of the top resolution's schedule, x0_t this step's prediction and x0_prev the
previous step's (D = x0_t at the first step and, as diffusers' ``lower_order_final``, at the last). This is the
DDIM update with x0_t replaced by the extrapolated D: ``z_top(s) = alpha_s D + sigma_s eps_hat`` for
``eps_hat = (z_top(t) - alpha_t D) / sigma_t``. So the state becomes (x_hat = D, eps_hat), and the lower
resolutions' inputs are built from it by eq. (3) as for DDIM.

Independent noise (the ablation of section 2.2, ``noise_kind="independent"``) has no S(eps_hat, i): each lower
resolution's noise is its own. Those levels keep their own noise state along the trajectory, drawn once at t = 1
and moved by the same update as the top level's (eps_i = (z_i(t) - alpha_{t,i} D(x_hat, i)) / sigma_{t,i},
and under DDPM a posterior draw of z_i(s)), so all three noise kinds sample alike: a fresh draw at every step
would feed the network inputs whose noise no longer matches its own earlier predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import DiffusionConfig
from .data.text import TextBatch
from .noise import noise_pyramid
from .pyramid import image_pyramid
from .runtime.device import autocast, resolve_precision


@dataclass
class Samples:
    images: list[torch.Tensor]  # every resolution's final prediction, base first, in [-1, 1]
    trajectory: list[torch.Tensor] = field(default_factory=list)  # the top prediction of each step, if asked

    @property
    def top(self) -> torch.Tensor:
        return self.images[-1]


def _guided(model, z, t, text: TextBatch, guidance: float):
    b = z[0].shape[0]
    if guidance == 1.0:
        keep = torch.ones(b, dtype=torch.bool, device=z[0].device)
        return model(z, t, text.tokens, text.mask, text.pooled, keep)
    zz = [torch.cat([v, v]) for v in z]
    keep = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(z[0].device)
    out = model(zz, torch.cat([t, t]), torch.cat([text.tokens] * 2), torch.cat([text.mask] * 2),
                torch.cat([text.pooled] * 2), keep)
    return [u + guidance * (c - u) for c, u in (o.float().chunk(2) for o in out)]


#: The samplers: deterministic DDIM, ancestral DDPM, deterministic DPM-Solver++(2M).
METHODS = ("ddim", "ddpm", "dpmpp_2m")


def _extrapolated(x0: torch.Tensor, x0_prev: torch.Tensor | None, h: float, h_prev: float | None) -> torch.Tensor:
    """DPM-Solver++(2M)'s data estimate D: second-order multistep extrapolation of the predictions in lambda."""
    if x0_prev is None:
        return x0
    r = h_prev / h
    return (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev


def _next_noise(z: torch.Tensor, x_hat: torch.Tensor, now: tuple, nxt: tuple, ancestral: bool,
                gen: torch.Generator, device) -> torch.Tensor:
    """One level's noise state for the next time s: eps = (z(t) - alpha_t x_hat) / sigma_t (DDIM and 2M keep
    it), or with ``ancestral`` (DDPM) re-derived from a draw of z(s) from the posterior q(z_s | z_t, x_hat)."""
    (a_t, s_t), (a_s, s_s) = now, nxt
    eps = (z - a_t * x_hat) / s_t
    if not ancestral:
        return eps
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    mean = (a_ts * s_s**2 / s_t**2) * z + (a_s * var_ts / s_t**2) * x_hat
    std = (var_ts * s_s**2 / s_t**2).sqrt()
    z_next = mean + std * torch.randn(x_hat.shape, generator=gen).to(device)
    return (z_next - a_s * x_hat) / s_s


@torch.no_grad()  # without it each step's graph is kept through x_hat: memory grows with the step count
def sample(
    model,
    diffusion: DiffusionConfig,
    text: TextBatch,
    steps: int = 50,
    guidance: float = 3.0,
    method: str = "ddim",
    seed: int = 0,
    precision: str = "auto",
    trajectory: bool = False,
) -> Samples:
    """Sample one image per caption in ``text`` (already encoded) with ``method`` (one of :data:`METHODS`) in
    ``steps`` network calls, uniform in t; see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)  # bf16 on CUDA, fp32 on a CPU without native bf16
    res = tuple(diffusion.resolutions)
    sched = diffusion.schedule
    b, top = len(text), res[-1]
    gen = torch.Generator().manual_seed(seed)
    text = text.to(device)
    # independent noise (the ablation): the lower levels' own noise, drawn once and carried; seeded too
    gen_independent = torch.Generator(device=device).manual_seed(seed + 1)

    def level_inputs(x_hat, eps, t):
        """Eq. (3) applied to the current state: z_i = alpha_{t,i} D(x_hat, i) + sigma_{t,i} S(eps_hat, i), or
        the carried eps_i of every level under independent noise (``eps`` holds them all then)."""
        xs = image_pyramid(x_hat, res)
        es = eps if isinstance(eps, list) else noise_pyramid(eps, res, kind=diffusion.noise_kind)
        return [a * x + s * e for x, e, (a, s) in zip(xs, es, sched.alpha_sigma(t))]
    x_hat = torch.zeros(b, 3, top, top, device=device)
    eps = torch.randn(b, 3, top, top, generator=gen).to(device)
    if diffusion.noise_kind == "independent":  # every level's state, the top one last
        eps = noise_pyramid(eps, res, kind="independent", generator=gen_independent)
    times = torch.linspace(1.0, 0.0, steps + 1)
    half_logsnr = [float(v) / 2 for v in sched.logsnr(times.double())[-1]]  # lambda of the top resolution
    out, traj, x0_prev, h_prev = None, [], None, None
    for i, (t_now, t_next) in enumerate(zip(times[:-1], times[1:])):
        z = level_inputs(x_hat, eps, t_now.to(device))
        with autocast(device, precision):
            out = _guided(model, z, t_now.expand(b).to(device), text, guidance)
        x0 = out[-1].float().clamp(-1, 1)
        x_hat = x0
        if method == "dpmpp_2m":
            h = half_logsnr[i + 1] - half_logsnr[i]
            last = i == steps - 1
            x_hat = _extrapolated(x0, None if last else x0_prev, h, h_prev)
            x0_prev, h_prev = x0, h
        carried = range(len(res)) if isinstance(eps, list) else [len(res) - 1]  # the levels with a state
        xs = image_pyramid(x_hat, res) if isinstance(eps, list) else [None] * (len(res) - 1) + [x_hat]
        now, nxt = sched.alpha_sigma(t_now), sched.alpha_sigma(t_next)
        new = [_next_noise(z[k], xs[k], now[k], nxt[k], method == "ddpm" and t_next > 0, gen, device)
               for k in carried]
        eps = new if isinstance(eps, list) else new[-1]
        if trajectory:
            traj.append(x0.cpu())
    images = [o.float().clamp(-1, 1).cpu() for o in out]
    return Samples(images, traj)
