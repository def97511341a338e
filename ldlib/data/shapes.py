"""A procedural captioned data set of coloured shapes with known attributes, so text alignment can be
scored exactly (``ldlib.evaluation.alignment`` reads the attributes back from generated images).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .images import CaptionedImages, to_uint8

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (235, 200, 30), "purple": (140, 60, 190), "orange": (245, 130, 20),
}
SIZES = {"small": 0.13, "large": 0.24}
TEXTURES = ("plain", "striped")


def _object_mask(shape: str, cx: float, cy: float, r: float, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if shape == "circle":
        return (u - cx) ** 2 + (v - cy) ** 2 <= r**2
    if shape == "square":
        return torch.maximum((u - cx).abs(), (v - cy).abs()) <= r * 0.9
    # an upward triangle: apex at cy - r, base of half-width r at cy + r
    return (v >= cy - r) & (v <= cy + r) & ((u - cx).abs() <= 0.5 * (v - (cy - r)))


def shapes_dataset(n: int, resolution: int, seed: int = 0) -> CaptionedImages:
    """A procedural captioned set: one or two coloured shapes, e.g. "a large red striped circle above a
    small blue square". Stripes are 1/16 of the image wide, so they are visible at 64 px but blur away at
    16 px: detail that only the higher resolutions of a layered model can show. Seeded and instant."""
    if n < 1 or resolution < 8:
        raise ValueError("need n >= 1 and resolution >= 8")
    g = torch.Generator().manual_seed(seed)
    ss = 2 * resolution  # supersampled, then anti-aliased down
    coords = (torch.arange(ss, dtype=torch.float32) + 0.5) / ss
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    stripes = torch.sin(2 * math.pi * (u + v) * 16 / math.sqrt(2)) > 0
    images, captions, attrs = [], [], []
    colour_names = list(COLOURS)

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=g))]

    for _ in range(n):
        bg = 200 + int(torch.randint(0, 50, (1,), generator=g))
        canvas = torch.full((3, ss, ss), float(bg))
        two = bool(torch.rand(1, generator=g) < 0.5)
        objs = []
        for _k in range(2 if two else 1):
            objs.append({"shape": pick(SHAPES), "colour": pick(colour_names),
                         "size": pick(list(SIZES)), "texture": pick(TEXTURES)})
        if two:
            relation = pick(["left of", "above"])
            a, b = (0.28, 0.72)
            jitter = lambda: 0.5 + 0.1 * (float(torch.rand(1, generator=g)) - 0.5)  # noqa: E731
            pos = [(a, jitter()), (b, jitter())] if relation == "left of" else [(jitter(), a), (jitter(), b)]
        else:
            relation = None
            pos = [(0.3 + 0.4 * float(torch.rand(1, generator=g)), 0.3 + 0.4 * float(torch.rand(1, generator=g)))]
        for obj, (cx, cy) in zip(objs, pos):
            r = SIZES[obj["size"]]
            mask = _object_mask(obj["shape"], cx, cy, r, u, v)
            colour = torch.tensor(COLOURS[obj["colour"]], dtype=torch.float32)[:, None, None]
            fill = colour.expand(3, ss, ss)
            if obj["texture"] == "striped":
                fill = torch.where(stripes, fill, fill * 0.35 + 255 * 0.65 * 0.3)
            canvas = torch.where(mask, fill, canvas)
        phrases = [f"a {o['size']} {o['colour']} {'striped ' if o['texture'] == 'striped' else ''}{o['shape']}" for o in objs]
        captions.append(phrases[0] if not two else f"{phrases[0]} {relation} {phrases[1]}")
        attrs.append({"objects": objs, "relation": relation})
        images.append(canvas)
    batch = torch.stack(images) / 127.5 - 1
    small = F.interpolate(batch, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return CaptionedImages(to_uint8(small), captions, attrs)
