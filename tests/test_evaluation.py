"""End to end: a tiny trained model evaluated like a Table 1 row (FID, KID, IS-style, alignment)."""

import numpy as np
import pytest
import torch

from ldlib.config import DiffusionConfig, TrainConfig, model_config
from ldlib.data import shapes_dataset
from ldlib.data.text import HashTextEncoder, encode_unique
from ldlib.evaluation import evaluate_model, generate
from ldlib.evaluation.alignment import train_classifier
from ldlib.training import load_model, train


def test_evaluate_a_tiny_model(tmp_path):
    data = shapes_dataset(64, 64, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=5, batch_size=8, text_encoder="hash", precision="fp32")
    train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", progress=False)
    model, cfgs = load_model(tmp_path / "run")
    classifier, _ = train_classifier(n=600, epochs=1)
    reference = shapes_dataset(16, 64, seed=99)
    ev = evaluate_model(model, cfgs["diffusion"], HashTextEncoder(), reference, n_samples=16, steps=3,
                        classifier=classifier, n_boot=5, progress=False)
    row = ev.as_dict()
    assert ev.samples.shape == (16, 3, 64, 64)
    assert row["fid"] > 0 and row["fid_ci"][0] < row["fid"] < row["fid_ci"][1]
    assert 0 <= row["alignment"] <= 1 and row["alignment_ci"][0] <= row["alignment"] <= row["alignment_ci"][1]
    assert ev.scores.protocol.n_generated == 16 and ev.scores.protocol.sampler_steps == 3
    assert np.isfinite(row["kid"]) and row["is_efficientnet"] >= 1


def test_retrieval_alignment_for_captioned_data(tmp_path):
    from ldlib.evaluation.retrieval import train_matcher

    data = shapes_dataset(64, 32, seed=0)
    enc = HashTextEncoder()
    text, index = encode_unique(enc, data.captions)
    mc = model_config("smoke", 2)
    tc = TrainConfig(steps=3, batch_size=8, text_encoder="hash", precision="fp32")
    train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", progress=False)
    model, cfgs = load_model(tmp_path / "run")
    matcher = train_matcher(data.images, text, index, steps=20, size=32)
    reference = shapes_dataset(12, 32, seed=7)
    reference.attributes = []  # as for real captioned data: no attributes, so the matcher is used
    ev = evaluate_model(model, cfgs["diffusion"], enc, reference, n_samples=12, steps=2, matcher=matcher,
                        n_boot=3, progress=False)
    assert 0 <= ev.alignment <= 1 and ev.alignment_ci[0] <= ev.alignment <= ev.alignment_ci[1]


class Smooth(torch.nn.Module):
    """A stand-in network (deterministic in its inputs) that can be told to fail after some calls."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls, self.fail_after = 0, fail_after

    def forward(self, z, t, tokens, mask, pooled, keep=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("interrupted")
        return [torch.tanh(0.7 * v + 0.3 * t.view(-1, 1, 1, 1)) for v in z]


def test_an_interrupted_sampling_resumes_at_its_batch(tmp_path):
    """Finished batches are kept: a second call samples only what the interrupted one had not, and the result
    equals an uninterrupted run's."""
    diff, enc = DiffusionConfig.paper((16, 32)), HashTextEncoder()
    prompts = [f"a prompt {i}" for i in range(10)]
    straight = generate(Smooth(), diff, enc, prompts, 2, 2.0, 0, batch_size=4, progress=False)
    with pytest.raises(KeyboardInterrupt):  # two steps per batch: the third batch never finishes
        generate(Smooth(fail_after=5), diff, enc, prompts, 2, 2.0, 0, batch_size=4, progress=False,
                 partial=tmp_path / "part")
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["batch-00000.safetensors", "batch-00001.safetensors"]
    resumed = Smooth()
    again = generate(resumed, diff, enc, prompts, 2, 2.0, 0, batch_size=4, progress=False, partial=tmp_path / "part")
    assert resumed.calls == 2 and torch.equal(again, straight)  # only the last batch was sampled


def test_the_judge_and_the_corrupted_references_are_stored_and_read_back(tmp_path, monkeypatch):
    """A notebook re-executed over the same cache trains no second matcher and runs no second Inception pass
    over the corrupted halves, and reads back the same numbers."""
    from ldlib.evaluation import evaluator as ev_mod
    from ldlib.evaluation import metrics

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    data = shapes_dataset(64, 32, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    first = ev_mod.stored_matcher(data.images, text, index, steps=3, seed=0, progress=False)
    reference = data.images[:16]
    features = np.random.default_rng(0).normal(size=(16, 2048)).astype(np.float32)
    levels = {"noise": [0.1, 0.4]}
    curves = ev_mod.corruption_sanity(reference, features, levels, seed=0, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("computed again instead of read back")

    monkeypatch.setattr(ev_mod, "train_matcher", refuse)
    monkeypatch.setattr(metrics, "extract", refuse)
    again = ev_mod.stored_matcher(data.images, text, index, steps=3, seed=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert ev_mod.corruption_sanity(reference, features, levels, seed=0, progress=False) == curves
    with pytest.raises(AssertionError, match="computed again"):  # another seed is another judge
        ev_mod.stored_matcher(data.images, text, index, steps=3, seed=1, progress=False)
