"""Images for the analytic notebooks: a few photographs shipped inside scikit-image's wheel.

(The captioned training sets come with the data issue; these are only for looking at what noise and
schedules do to real images.) Images are returned as ``(N, 3, R, R)`` float32 tensors in [-1, 1], the
range every ldlib model works in.
"""

from __future__ import annotations

import importlib.util
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


def load_rgb(path: Path) -> torch.Tensor:
    """Read an image file to a (3, H, W) float tensor in [-1, 1] (alpha, if any, composited on white)."""
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
    """A (3, H, W) tensor in [-1, 1] to an (H, W, 3) array in [0, 1] for imshow."""
    return ((x.detach().float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
