"""Text alignment on ``shapes``: does a generated image show what its prompt asked for?

The shapes generator knows every image's attributes, so alignment can be measured exactly: a small CNN is
trained on real ``shapes`` images to read off the attributes of the first- and second-mentioned object
(shape, colour, size, texture; "none" when absent) and their relation, and a generated image scores the
fraction of its prompt's attributes that the classifier reads back. The classifier's own accuracy on held-out
real images is reported beside it: generated images cannot score better than that ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import CaptionedImages, to_float
from ..data.shapes import COLOURS, SHAPES, SIZES, TEXTURES, shapes_dataset

#: attribute -> its classes; index 0 of every object attribute means "no such object".
HEADS = {
    **{f"{k}{i}": ("none",) + tuple(v) for i in (1, 2) for k, v in
       (("shape", SHAPES), ("colour", tuple(COLOURS)), ("size", tuple(SIZES)), ("texture", TEXTURES))},
    "relation": ("none", "left of", "above"),
}
INPUT_SIZE = 64


def labels(attributes: list[dict]) -> dict[str, torch.Tensor]:
    """Class indices per head for a list of shapes attribute records."""
    out = {h: [] for h in HEADS}
    for a in attributes:
        objs = a["objects"]
        for i in (1, 2):
            o = objs[i - 1] if len(objs) >= i else None
            for key, name in (("shape", "shape"), ("colour", "colour"), ("size", "size"), ("texture", "texture")):
                out[f"{key}{i}"].append(0 if o is None else HEADS[f"{key}{i}"].index(o[name]))
        out["relation"].append(HEADS["relation"].index(a["relation"] or "none"))
    return {h: torch.tensor(v) for h, v in out.items()}


class AttributeClassifier(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        layers, c = [], 3
        for w in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * (INPUT_SIZE // 16) ** 2, 256), nn.ReLU())
        self.heads = nn.ModuleDict({h: nn.Linear(256, len(v)) for h, v in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images``: uint8 or [-1, 1] float ``(N, 3, H, W)``, any size (resized to 64)."""
        x = to_float(images)
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        h = self.features(x)
        return {k: head(h) for k, head in self.heads.items()}


@dataclass
class AlignmentResult:
    accuracy: float  # fraction of all prompt attributes read back correctly
    per_head: dict[str, float]
    n: int


@torch.no_grad()
def attribute_accuracy(model: AttributeClassifier, images: torch.Tensor, attributes: list[dict], batch: int = 256) -> AlignmentResult:
    model.eval()
    target = labels(attributes)
    correct = {h: 0 for h in HEADS}
    for i in range(0, len(images), batch):
        out = model(images[i : i + batch])
        for h in HEADS:
            correct[h] += (out[h].argmax(1) == target[h][i : i + batch]).sum().item()
    n = len(images)
    per_head = {h: c / n for h, c in correct.items()}
    return AlignmentResult(sum(correct.values()) / (n * len(HEADS)), per_head, n)


def train_classifier(n: int = 6000, resolution: int = 64, epochs: int = 4, seed: int = 0, batch: int = 64,
                     progress: bool = False) -> tuple[AttributeClassifier, AlignmentResult]:
    """Train on ``n`` real shapes images; returns the classifier and its accuracy on 1,000 held-out ones."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    data = shapes_dataset(n, resolution, seed=seed + 7)
    target = labels(data.attributes)
    model = AttributeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in tqdm(range(steps), disable=not progress, desc="attribute classifier"):
        idx = torch.randint(n, (batch,), generator=g)
        out = model(data.images[idx])
        loss = sum(F.cross_entropy(out[h], target[h][idx]) for h in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    held_out: CaptionedImages = shapes_dataset(1000, resolution, seed=seed + 1_000_003)
    return model, attribute_accuracy(model, held_out.images, held_out.attributes)
