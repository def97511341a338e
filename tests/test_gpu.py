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
    from ldlib.sampler import sample
    from ldlib.text import HashTextEncoder, encode_unique
    from ldlib.train import load_model, train

    data = shapes_dataset(32, 64)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=3, batch_size=4, text_encoder="hash")  # auto precision: bf16 on CUDA
    r = train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", device="cuda", progress=False)
    model, cfgs = load_model(r.checkpoint, device="cuda")
    out = sample(model, cfgs["diffusion"], HashTextEncoder().encode(["a red circle"]), steps=3, precision="bf16")
    assert all(torch.isfinite(x).all() for x in out.images)
