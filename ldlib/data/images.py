"""Images and their conversions: a captioned set in memory (:class:`CaptionedImages`, uint8), the [-1, 1]
floats every model works in (:func:`to_float`, :func:`to_uint8`), what matplotlib shows (:func:`to_display`),
PNG grids, and a few example photographs shipped inside scikit-image's wheel for looking at what noise and
schedules do to real images.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Photographs in scikit-image's package data (public domain / CC0 per its README), by our short name.
EXAMPLE_IMAGES = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
}

INSTALL_HINT = "pip install scikit-image==0.26.0  (or run `make setup`)"


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the example images come from scikit-image, which is not installed: {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0]) / "data"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to uint8 [0, 255] (uint8 passes through): how image sets are stored."""
    if images.dtype == torch.uint8:
        return images
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats in [-1, 1], the range every model works in (floats pass through)."""
    return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()


def load_rgb(path) -> torch.Tensor:
    """Read an image (a path or a binary file object) to a (3, H, W) float tensor in [-1, 1]; alpha, if
    any, is composited on white."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(bg, im).convert("RGB")
        arr = np.asarray(rgb, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def center_square(img: torch.Tensor, resolution: int) -> torch.Tensor:
    """Centre-crop ``(..., H, W)`` to a square, then resize it to ``resolution`` (anti-aliased bilinear)."""
    h, w = img.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = img[..., top : top + s, left : left + s]
    batch = sq.reshape(-1, *sq.shape[-3:])
    out = F.interpolate(batch, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*sq.shape[:-2], resolution, resolution).clamp(-1, 1)


def example_images(names: Sequence[str], resolution: int) -> torch.Tensor:
    """The named example photographs as a ``(N, 3, resolution, resolution)`` batch in [-1, 1]."""
    unknown = [n for n in names if n not in EXAMPLE_IMAGES]
    if unknown:
        raise ValueError(f"unknown example image(s) {unknown}; choose from {', '.join(EXAMPLE_IMAGES)}")
    folder = _skimage_data_dir()
    imgs = []
    for n in names:
        path = folder / EXAMPLE_IMAGES[n]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing from scikit-image's package data; reinstall it: {INSTALL_HINT}")
        imgs.append(center_square(load_rgb(path), resolution))
    return torch.stack(imgs)


def to_display(x: torch.Tensor) -> np.ndarray:
    """A (3, H, W) image to an (H, W, 3) array in [0, 1] for imshow: uint8 in [0, 255] (stored image sets,
    generated samples) or floats in [-1, 1] (model space; noisy inputs beyond it are clipped). Any other dtype
    is refused, since guessing its range draws a wrong picture."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"to_display draws one (3, H, W) image, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return (x.detach().float() / 255).permute(1, 2, 0).cpu().numpy()
    if not x.is_floating_point():
        raise TypeError(f"to_display takes uint8 images in [0, 255] or floats in [-1, 1], not {x.dtype}")
    return ((x.detach().float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------------------------- captioned images


@dataclass
class CaptionedImages:
    """An in-memory captioned image set: ``images`` ``(N, 3, R, R)`` uint8 and one caption per image.
    ``attributes`` optionally holds what generated each image (for exact text-alignment metrics)."""

    images: torch.Tensor
    captions: list[str]
    attributes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, R, R), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.captions) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} captions")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def batch(self, idx: torch.Tensor, device=None) -> torch.Tensor:
        """Images ``idx`` as floats in [-1, 1]."""
        return to_float(self.images[idx].to(device))


def save_image_grid(images: torch.Tensor, path, nrow: int = 8, scale_to: int | None = None) -> None:
    """Write ``(N, 3, H, W)`` images in [-1, 1] as one PNG grid (``scale_to`` resizes each tile, nearest)."""
    from PIL import Image

    x = images.detach().float().clamp(-1, 1)
    if scale_to and x.shape[-1] != scale_to:
        x = F.interpolate(x, size=(scale_to, scale_to), mode="nearest")
    n, _, h, w = x.shape
    rows = math.ceil(n / nrow)
    cols = min(n, nrow)
    grid = torch.ones(3, rows * (h + 2), cols * (w + 2))
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = x[i]
    arr = to_uint8(grid).permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
