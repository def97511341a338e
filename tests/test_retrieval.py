"""The contrastive matcher behind 'retrieval accuracy' beats chance on held-out real images."""

import torch

from ldlib.data import shapes_dataset
from ldlib.data.text import HashTextEncoder, encode_unique
from ldlib.evaluation.retrieval import retrieval_accuracy, train_matcher


def test_matcher_learns_and_noise_is_at_chance():
    train = shapes_dataset(1500, 32, seed=0)
    val = shapes_dataset(200, 32, seed=1)
    enc = HashTextEncoder()
    text, index = encode_unique(enc, train.captions)
    model = train_matcher(train.images, text, index, steps=150, size=32)
    vtext, vindex = encode_unique(enc, val.captions)
    real = retrieval_accuracy(model, val.images, vtext, vindex, n_candidates=16)
    noise = torch.randint(0, 256, val.images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    chance = retrieval_accuracy(model, noise, vtext, vindex, n_candidates=16)
    assert real > 0.4 and chance < 0.25  # chance is 1/16
