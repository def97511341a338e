"""Text alignment on captioned real data (emoji3d, COCO, folders), where no attributes are known: a small
contrastive image-text model (CLIP-style, trained here on the training split) and top-1 retrieval accuracy.

For each image, its own caption competes with ``n_candidates - 1`` other captions of the set; the image
scores 1 when its own caption is the most similar. Chance is 1 / n_candidates. The matcher's accuracy on
real validation images is the ceiling a generated image can be compared with. This is an honest stand-in
for CLIP-score, which needs weights we cannot download here: label it "retrieval accuracy (ldlib matcher)".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import to_float
from ..data.text import TextBatch

SIZE = 64


class ImageTextMatcher(nn.Module):
    """Image encoder (a small CNN at ``size`` px) and a projection of the frozen text encoder's pooled vector
    into one normalised embedding space."""

    def __init__(self, text_dim: int = 384, dim: int = 256, width: int = 32, size: int = SIZE):
        super().__init__()
        self.size = size
        layers, c = [], 3
        for w in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(), nn.AvgPool2d(2)]
            c = w
        self.image = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * (size // 16) ** 2, dim))
        self.text = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        x = to_float(images)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(self.image(x), dim=-1)

    def embed_text(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(pooled), dim=-1)


def train_matcher(images: torch.Tensor, text: TextBatch, index: torch.Tensor, steps: int = 600, batch: int = 64,
                  seed: int = 0, size: int = SIZE, progress: bool = False) -> ImageTextMatcher:
    """Symmetric InfoNCE on (image, caption) pairs; ``text[index[i]]`` is image i's caption."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = ImageTextMatcher(text.pooled.shape[-1], size=size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), disable=not progress, desc="image-text matcher"):
        idx = torch.randperm(len(images), generator=g)[:batch]
        caps = index[idx]
        img = model.embed_images(images[idx])
        txt = model.embed_text(text.pooled[caps])
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        # identical captions in a batch are both right answers
        same = (caps[:, None] == caps[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target.T * logits.log_softmax(0)).sum(0).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def retrieval_accuracy(model: ImageTextMatcher, images: torch.Tensor, text: TextBatch, index: torch.Tensor,
                       n_candidates: int = 32, seed: int = 0) -> float:
    """Top-1 accuracy of each image's own caption among ``n_candidates`` distinct captions of the set."""
    g = torch.Generator().manual_seed(seed)
    img = torch.cat([model.embed_images(images[i : i + 256]) for i in range(0, len(images), 256)])
    txt = model.embed_text(text.pooled)
    n_caps = txt.shape[0]
    k = min(n_candidates, n_caps)
    hits = 0
    for i in range(len(images)):
        own = int(index[i])
        others = torch.randperm(n_caps, generator=g)
        others = others[others != own][: k - 1]
        cands = torch.cat([torch.tensor([own]), others])
        hits += int((img[i] @ txt[cands].T).argmax() == 0)
    return hits / len(images)
