"""The math on CUDA gives what it gives on the CPU (skipped without a GPU)."""

import pytest
import torch

from ldlib.forward import diffuse
from ldlib.noise import NOISE_KINDS, downsample_noise
from ldlib.schedules import LayeredSchedule

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("kind", [k for k in NOISE_KINDS if k != "independent"])
def test_noise_on_cuda_matches_cpu(kind):
    e = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cpu = downsample_noise(e, 4, kind)
    gpu = downsample_noise(e.cuda(), 4, kind)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-5)


def test_diffuse_on_cuda():
    x0 = torch.rand(2, 3, 64, 64, device="cuda") * 2 - 1
    z, _, _ = diffuse(x0, torch.randn_like(x0), torch.tensor([0.2, 0.8]), LayeredSchedule.paper([16, 32, 64]))
    assert all(zi.is_cuda and torch.isfinite(zi).all() for zi in z)


def test_train_and_sample_on_cuda(tmp_path):
    from ldlib.config import DiffusionConfig, TrainConfig, model_config
    from ldlib.data import shapes_dataset
    from ldlib.data.text import HashTextEncoder, encode_unique
    from ldlib.sampler import sample
    from ldlib.training import load_model, train

    data = shapes_dataset(32, 64)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=3, batch_size=4, text_encoder="hash")  # auto precision: bf16 on CUDA
    r = train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", device="cuda", progress=False)
    model, cfgs = load_model(r.checkpoint, device="cuda")
    out = sample(model, cfgs["diffusion"], HashTextEncoder().encode(["a red circle"]), steps=3, precision="bf16")
    assert all(torch.isfinite(x).all() for x in out.images)


@pytest.mark.parametrize("checkpointed", [False, True])
def test_memory_estimate_against_cuda_allocations(checkpointed):
    """ldlib.training.memory emulates bf16 autocast on the meta device; here the real thing: the memory a forward pass
    under autocast leaves allocated (what the backward pass will need) against the estimate."""
    from ldlib.config import model_config
    from ldlib.network import build_model, set_activation_checkpointing
    from ldlib.training.memory import count_saved_bytes

    cfg, b = model_config("cpu16", 3), 16
    model = build_model(cfg).cuda()
    set_activation_checkpointing(model, checkpointed)
    z = [torch.randn(b, 3, r, r, device="cuda") for r in cfg.resolutions]
    args = (torch.rand(b, device="cuda"), torch.randn(b, 32, cfg.text_dim, device="cuda"),
            torch.ones(b, 32, dtype=torch.bool, device="cuda"), torch.randn(b, cfg.text_dim, device="cuda"))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        model(z, *args)  # workspaces (cuBLAS, cuDNN) are allocated once, before the measurement
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(z, *args)
    held = torch.cuda.memory_allocated() - before - sum(o.numel() * o.element_size() for o in out)
    estimate = count_saved_bytes(cfg, b, "bf16", checkpointed, 32)[0]  # what stays saved (no block being recomputed yet)
    assert 0.75 < held / estimate < 1.25, (held, estimate)
