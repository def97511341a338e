"""Noise at several resolutions from one top-resolution draw: S(eps0, i) of eq. (1) and its alternatives.

Section 2.2 of the paper samples eps0 ~ N(0, I) once at the highest resolution and derives the noise of
every lower resolution from it with the Whittaker-Shannon (sinc) interpolation formula, eq. (1). This
module implements that operator exactly, plus the two alternatives the paper compares it with (Table A.1):
bilinear downsampling of eps0 and independent draws per resolution.

Conventions used everywhere in ldlib: tensors are ``(..., H, W)``; a resolution pyramid is listed from the
base (lowest) resolution up to the top one; a ``factor`` is the integer ratio top / lower.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from .pyramid import check_resolutions

#: The noises a layered model can be trained with (Table A.1 compares them).
NOISE_KINDS = ("sinc", "bilinear", "independent")
#: Also "bilinear_raw": the bilinear filter without the rescaling to unit variance (for analysis only).
ANALYSIS_KINDS = NOISE_KINDS + ("bilinear_raw",)


def _check_factor(size: tuple[int, int], factor: int) -> None:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    h, w = size
    if h % factor or w % factor:
        raise ValueError(
            f"noise of spatial size {h}x{w} cannot be downsampled by {factor}: "
            f"both sides must be multiples of the factor"
        )


def _sinc_downsample_axis(x: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """Ideal low-pass + subsample along one axis, rescaled so white unit noise stays white unit noise."""
    n = x.shape[dim]
    m = n // factor
    spec = torch.fft.rfft(x, dim=dim, norm="ortho")
    # Low-resolution pixel i sits at the centre of high-resolution pixels [i*T, (i+1)*T): sample the
    # band-limited interpolant there, i.e. shift by (T - 1) / 2 high-resolution pixels.
    k = torch.arange(m // 2 + 1, device=x.device, dtype=torch.float64)
    phase = torch.exp(2j * torch.pi * k * ((factor - 1) / 2) / n).to(spec.dtype)
    shape = [1] * x.ndim
    shape[dim] = m // 2 + 1
    kept = spec.narrow(dim, 0, m // 2 + 1) * phase.view(shape)
    if m % 2 == 0:
        # The new Nyquist bin must be real; folding +/- Nyquist keeps its variance at one (the real part
        # alone would carry half of it and the output would no longer be white).
        nyq = kept.narrow(dim, m // 2, 1)
        kept = torch.cat([kept.narrow(dim, 0, m // 2), (2**0.5) * nyq.real.to(kept.dtype)], dim=dim)
    return torch.fft.irfft(kept, n=m, dim=dim, norm="ortho")


def sinc_downsample(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """S(eps0, T) of eq. (1): Whittaker-Shannon downsampling of ``(..., H, W)`` noise by an integer factor.

    Eq. (1) filters eps0 with a sinc of cut-off 1/T (the ideal low-pass filter for the lower grid) and
    samples it on the lower grid. We evaluate it exactly on the periodic grid (the sinc sum over an
    infinite periodic extension is the DFT band limit), with two corrections the printed formula needs:

    * scale: the printed sum has variance ``sum(sinc^2) = T`` per axis, so ``T**2`` in 2-D; we divide it
      out so that N(0, I) noise at H x W becomes N(0, I) noise at H/T x W/T;
    * centring: low-resolution pixels sample the band-limited noise at the centres of the T x T blocks
      they cover, the same alignment as the bilinear image pyramid D(x0, i) (``align_corners=False``).

    Properties (each pinned by a test): the output is exactly Gaussian (a linear map of a Gaussian),
    has unit variance and no spatial correlation at every factor, ``S(S(e, 2), 2) == S(e, 4)`` up to
    float rounding, and the result is deterministic. ``factor == 1`` returns a copy.
    """
    _check_factor(tuple(noise.shape[-2:]), factor)
    if factor == 1:
        return noise.clone()
    work = noise if noise.dtype in (torch.float32, torch.float64) else noise.float()
    out = _sinc_downsample_axis(work, factor, dim=-2)
    out = _sinc_downsample_axis(out, factor, dim=-1)
    return out.to(noise.dtype)


@lru_cache(maxsize=64)
def _bilinear_matrix(n: int, factor: int, normalize: bool) -> torch.Tensor:
    """The (n/T x n) matrix of the image pyramid's 1-D anti-aliased bilinear filter (float64, CPU)."""
    # Column j of the identity is basis image e_j; filtering along H only gives the matrix directly.
    eye = torch.eye(n, dtype=torch.float64)[None, None]
    mat = F.interpolate(eye, size=(n // factor, n), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    if normalize:
        mat = mat / mat.square().sum(dim=1, keepdim=True).sqrt()
    return mat


def bilinear_downsample(noise: torch.Tensor, factor: int, normalize: bool = True) -> torch.Tensor:
    """The alternative of section 2.2: downsample eps0 with the image pyramid's bilinear filter.

    This is D(., i) of eq. (3) applied to noise (anti-aliased bilinear, the same filter as
    ``ldlib.pyramid.downsample``). Averaging shrinks the variance, so by default each output pixel is
    rescaled to unit variance (``normalize=True``); the result is Gaussian with unit variance, but the
    filter's overlapping taps make neighbouring pixels correlated (not white). ``normalize=False`` gives
    the raw filter output, exactly ``F.interpolate(..., mode="bilinear", antialias=True)``.
    """
    _check_factor(tuple(noise.shape[-2:]), factor)
    if factor == 1:
        return noise.clone()
    h, w = noise.shape[-2:]
    work_dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    mh = _bilinear_matrix(h, factor, normalize).to(device=noise.device, dtype=work_dtype)
    mw = _bilinear_matrix(w, factor, normalize).to(device=noise.device, dtype=work_dtype)
    out = mh @ noise.to(work_dtype) @ mw.T
    return out.to(noise.dtype)


def axis_weights(kind: str, n: int, factor: int) -> torch.Tensor:
    """The ``(n / factor, n)`` matrix of 1-D weights of a deterministic noise downsampling ("sinc" or
    "bilinear"); both operators are separable, so the 2-D operator is this matrix along each axis."""
    if kind == "sinc":
        _check_factor((n, n), factor)
        eye = torch.eye(n, dtype=torch.float64)
        return eye if factor == 1 else _sinc_downsample_axis(eye, factor, dim=-1).T.contiguous()
    if kind == "bilinear":
        _check_factor((n, n), factor)
        return torch.eye(n, dtype=torch.float64) if factor == 1 else _bilinear_matrix(n, factor, True).clone()
    raise ValueError(f"axis weights exist for 'sinc' and 'bilinear', not {kind!r}")


def independent_like(
    noise: torch.Tensor, factor: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The baseline of section 2.2: fresh N(0, I) noise at the lower resolution, unrelated to eps0."""
    _check_factor(tuple(noise.shape[-2:]), factor)
    shape = (*noise.shape[:-2], noise.shape[-2] // factor, noise.shape[-1] // factor)
    return torch.randn(shape, generator=generator, device=noise.device, dtype=noise.dtype)


def downsample_noise(
    noise: torch.Tensor, factor: int, kind: str = "sinc", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise for a resolution ``factor`` times lower than ``noise``, by one of :data:`NOISE_KINDS`."""
    if kind == "sinc":
        return sinc_downsample(noise, factor)
    if kind == "bilinear":
        return bilinear_downsample(noise, factor)
    if kind == "bilinear_raw":
        return bilinear_downsample(noise, factor, normalize=False)
    if kind == "independent":
        if factor == 1:
            return noise.clone()
        return independent_like(noise, factor, generator=generator)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(ANALYSIS_KINDS)}")


def noise_pyramid(
    noise: torch.Tensor,
    resolutions: Sequence[int],
    kind: str = "sinc",
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """S(eps0, i) for every resolution of eq. (3), from top-resolution noise ``eps0`` of shape (..., R, R).

    ``resolutions`` runs from the base up to the top, and the top must equal the noise's size. The top level is ``noise`` itself; each lower level is derived from
    it directly (not from the next level up; for sinc the two agree exactly). ``generator`` seeds the
    draws of ``kind="independent"``.
    """
    resolutions = check_resolutions(resolutions)
    top = resolutions[-1]
    if noise.shape[-1] != top or noise.shape[-2] != top:
        raise ValueError(
            f"top-resolution noise must be {top}x{top} for resolutions {resolutions}, "
            f"got {tuple(noise.shape[-2:])}"
        )
    levels = []
    for r in resolutions:
        levels.append(noise if r == top else downsample_noise(noise, top // r, kind, generator))
    return levels
