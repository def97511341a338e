"""Strategic cropping (section 3.1): one random square at the base resolution, the same region at every
higher resolution.

The paper picks a random 64x64 square in the 128x128 base image, finds the corresponding 128x128 square in
the 256x256 image "via simple multiplication", and so on upwards; the network applies the same boxes to its
feature maps before each upsampling. A :class:`CropBox` is that square, stored at one resolution and
rescaled to any other that is an integer multiple or divisor of it.

Consistency: cropping D(x0) equals D of the crop, pixel for pixel, except within one low-resolution pixel of
the crop border, where the bilinear filter of the uncropped image reaches outside the crop. Training crops
the full noise pyramid S(eps0, i) with the same boxes, so cropped and uncropped training see identically
distributed inputs.

With three or more resolutions the paper repeats the procedure "utilizing the previous resolution": each
level's crop is a random square inside the previous level's crop (:func:`nested_crop_boxes`), so every
cropped level has the same number of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class CropBox:
    """A square ``size`` pixels wide whose top-left corner is (``top``, ``left``), in an image of
    ``resolution`` x ``resolution`` pixels."""

    top: int
    left: int
    size: int
    resolution: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.top < 0 or self.left < 0:
            raise ValueError(f"invalid crop box {self}")
        if self.top + self.size > self.resolution or self.left + self.size > self.resolution:
            raise ValueError(f"crop box {self} does not fit in a {self.resolution}px image")

    def at(self, resolution: int) -> "CropBox":
        """The same region in an image of ``resolution`` pixels (steps 2 and 4 of section 3.1)."""
        if resolution == self.resolution:
            return self
        if resolution > self.resolution:
            if resolution % self.resolution:
                raise ValueError(f"resolution {resolution} is not a multiple of {self.resolution}")
            f = resolution // self.resolution
            return CropBox(self.top * f, self.left * f, self.size * f, resolution)
        if self.resolution % resolution:
            raise ValueError(f"resolution {resolution} does not divide {self.resolution}")
        f = self.resolution // resolution
        if self.top % f or self.left % f or self.size % f:
            raise ValueError(f"crop box {self} is not on the {resolution}px grid")
        return CropBox(self.top // f, self.left // f, self.size // f, resolution)

    def relative_to(self, outer: "CropBox | None", size: int) -> "CropBox":
        """This region in the frame of a feature map of ``size`` pixels covering ``outer`` (None: the whole
        image at that size). Used inside the network to crop the previous level's features (step 5)."""
        frame = outer if outer is not None else CropBox(0, 0, size, size)
        if frame.size != size:
            raise ValueError(f"feature map of {size}px does not cover crop {frame}")
        inner = self.at(frame.resolution)
        top, left = inner.top - frame.top, inner.left - frame.left
        if top < 0 or left < 0 or top + inner.size > size or left + inner.size > size:
            raise ValueError(f"crop {self} lies outside {frame}")
        return CropBox(top, left, inner.size, size)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Crop a ``(..., H, W)`` tensor at this box's resolution, or rescale the box to its size first."""
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"expected square tensors, got spatial shape {tuple(x.shape[-2:])}")
        box = self.at(x.shape[-1])
        return x[..., box.top : box.top + box.size, box.left : box.left + box.size]


def random_crop_box(
    resolution: int, size: int, generator: torch.Generator | None = None, grid: int = 1
) -> CropBox:
    """Step 1 of section 3.1: a uniformly random ``size`` square inside a ``resolution`` image.

    ``grid`` snaps the corner to multiples of ``grid`` pixels, so the box stays exact at resolutions
    ``grid`` times lower (needed when the box is drawn above the network's lowest cropped level).
    """
    if not 1 <= size <= resolution:
        raise ValueError(f"crop size must be between 1 and {resolution}, got {size}")
    if size % grid or resolution % grid:
        raise ValueError(f"crop size {size} and resolution {resolution} must be multiples of grid={grid}")
    steps = (resolution - size) // grid + 1
    top, left = (torch.randint(0, steps, (2,), generator=generator) * grid).tolist()
    return CropBox(int(top), int(left), size, resolution)


def nested_crop_boxes(
    resolutions: Sequence[int], crop_size: int, generator: torch.Generator | None = None
) -> list[CropBox | None]:
    """Section 3.1 for a pyramid (base first): the base stays whole (None); level 1 gets a random
    ``crop_size`` square at its resolution; every further level a random ``crop_size`` square inside the
    previous level's crop, scaled up. Corners sit on even pixels, so each box is exact one level down."""
    res = [int(r) for r in resolutions]
    if len(res) < 2:
        return [None] * len(res)
    if crop_size % 2 or crop_size > res[1]:
        raise ValueError(f"crop_size must be even and at most {res[1]}, got {crop_size}")
    boxes: list[CropBox | None] = [None, random_crop_box(res[1], crop_size, generator, grid=2)]
    for r in res[2:]:
        outer = boxes[-1].at(r)  # the previous crop's region at this resolution, 2 * crop_size wide
        inner = random_crop_box(outer.size, crop_size, generator, grid=2)
        boxes.append(CropBox(outer.top + inner.top, outer.left + inner.left, crop_size, r))
    return boxes
