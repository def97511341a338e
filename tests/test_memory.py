"""The training-memory estimate (ldlib.training.memory): exact saved-tensor counts, affine in the batch, smaller with
activation checkpointing; and checkpointing itself leaves the gradients unchanged."""

import json

import pytest
import torch

from ldlib.cli import main
from ldlib.config import model_config
from ldlib.network import build_model, set_activation_checkpointing
from ldlib.training import memory

CFG = model_config("smoke", 3)


@pytest.mark.parametrize("checkpointed", [False, True])
def test_meta_count_equals_the_count_on_real_tensors(checkpointed):
    meta = memory.count_saved_bytes(CFG, 2, "fp32", checkpointed, 8)
    real = memory.count_saved_bytes(CFG, 2, "fp32", checkpointed, 8, device="cpu")
    assert meta == real and meta[0] > 0


def test_estimate_is_affine_in_the_batch_and_checkpointing_saves_memory():
    for ckpt in (False, True):
        a, b, c = (memory.saved_activation_bytes(CFG, n, "fp32", ckpt) for n in (1, 2, 3))
        assert c - b == b - a > 0
    plain = memory.saved_activation_bytes(CFG, 4, "fp32")
    assert memory.saved_activation_bytes(CFG, 4, "fp32", checkpoint_activations=True) < 0.8 * plain
    # under (emulated) bf16 autocast the convolution inputs are saved as bf16 copies
    assert memory.saved_activation_bytes(CFG, 4, "bf16") != plain


def test_state_and_max_batch():
    est = memory.training_memory(CFG, 4)
    n = sum(p.numel() for p in build_model(CFG).parameters())
    assert est.parameters == n and est.state_bytes == memory.STATE_COPIES * 4 * n
    assert est.total_bytes == est.state_bytes + est.activation_bytes
    fixed, per_image = memory.per_image_bytes(CFG)
    budget = fixed + 10.5 * per_image
    assert memory.max_batch(CFG, budget, headroom=1.0) == 10
    assert memory.max_batch(CFG, budget, checkpoint_activations=True, headroom=1.0) > 10
    assert memory.max_batch(CFG, fixed / 2) == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="batch_size"):
        memory.saved_activation_bytes(CFG, 0)
    with pytest.raises(ValueError, match="precision"):
        memory.saved_activation_bytes(CFG, 1, "fp16")


def test_checkpointed_blocks_give_the_same_gradients():
    torch.manual_seed(0)
    a = build_model(CFG)
    for p in a.parameters():  # zero-initialised output layers would make the comparison trivial
        p.data.add_(0.02 * torch.randn_like(p))
    b = build_model(CFG)
    b.load_state_dict(a.state_dict())
    assert set_activation_checkpointing(b, True) > 0
    z = [torch.randn(2, 3, r, r) for r in CFG.resolutions]
    args = (torch.tensor([0.3, 0.7]), torch.randn(2, 8, CFG.text_dim), torch.ones(2, 8, dtype=torch.bool),
            torch.randn(2, CFG.text_dim))
    for model in (a, b):
        sum(o.pow(2).mean() for o in model(z, *args)).backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6, rtol=1e-5)


def test_cli_memory_table(capsys):
    assert main(["memory", "--preset", "smoke", "--batch-size", "4", "--gpu-gib", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["single128", "single256", "layered256", "single512", "layered512"]
    for r in rows:
        assert r["total_gib_checkpointed"] < r["total_gib"] and r["max_batch_checkpointed"] >= r["max_batch"]
