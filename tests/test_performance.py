"""Speed choices (ldlib.runtime.device) change how the network runs, never what it computes beyond float noise.

Choices made by capability (precision and layout on a CPU with or without native bf16) are tested on both
branches on every machine, by forcing the probe with ``LDLIB_CPU_BF16`` (the ``cpu_bf16`` fixture)."""

import pytest
import torch

from ldlib.config import DiffusionConfig, TrainConfig, model_config
from ldlib.data import shapes_dataset
from ldlib.data.text import HashTextEncoder, encode_unique
from ldlib.network import build_model
from ldlib.runtime.device import CPU_BF16_ENV, Execution, cpu_has_native_bf16, memory_format, place, resolve_precision
from ldlib.sampler import sample
from ldlib.training import load_model, train
from ldlib.training.checkpoint import read_history

CPU = torch.device("cpu")
#: what ``precision="auto"`` and the layout become on a CPU with (True) or without (False) native bf16
BRANCHES = {True: ("bf16", torch.contiguous_format), False: ("fp32", torch.channels_last)}


@pytest.fixture(params=[True, False], ids=["native-bf16-cpu", "fp32-only-cpu"])
def cpu_bf16(request, monkeypatch):
    """Run the test as on a CPU with native bf16 (AVX-512 BF16 / AMX) and as on one without (AVX2 only)."""
    monkeypatch.setenv(CPU_BF16_ENV, "1" if request.param else "0")
    return request.param


def test_layout_and_precision_rules():
    assert memory_format(CPU, "fp32") == torch.channels_last
    assert memory_format(CPU, "bf16") == torch.contiguous_format
    assert memory_format(CPU, "fp32", Execution(channels_last=False)) == torch.contiguous_format
    assert memory_format(torch.device("cuda"), "bf16") == torch.contiguous_format
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_auto_precision_and_layout_follow_the_cpu(cpu_bf16):
    precision, layout = BRANCHES[cpu_bf16]
    assert cpu_has_native_bf16() is cpu_bf16
    assert resolve_precision("auto", CPU) == precision and resolve_precision("fp32", CPU) == "fp32"
    assert memory_format(CPU, resolve_precision("auto", CPU)) == layout
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"  # CUDA does not ask the CPU probe


def test_the_probe_override_is_checked(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="LDLIB_CPU_BF16 must be 1"):
        cpu_has_native_bf16()
    monkeypatch.delenv(CPU_BF16_ENV)
    assert isinstance(cpu_has_native_bf16(), bool)  # the machine's own answer, from /proc/cpuinfo


def test_channels_last_forward_matches_contiguous():
    torch.manual_seed(0)
    cfg = model_config("smoke", 3)
    a = build_model(cfg).eval()
    for p in a.parameters():  # zero-initialised output layers would make the comparison trivial
        p.data.add_(0.02 * torch.randn_like(p))
    b = place(build_model(cfg).eval(), CPU, "fp32")
    b.load_state_dict(a.state_dict())
    assert b.base_in.weight.is_contiguous(memory_format=torch.channels_last)
    z = [torch.randn(2, 3, r, r) for r in cfg.resolutions]
    text = HashTextEncoder(dim=cfg.text_dim).encode(["a red circle", "a blue square"])
    t = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        ya = a(z, t, text.tokens, text.mask, text.pooled)
        yb = b([v.contiguous(memory_format=torch.channels_last) for v in z], t, text.tokens, text.mask, text.pooled)
    for u, v in zip(ya, yb):
        assert u.abs().max() > 1e-3 and torch.allclose(u, v, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = shapes_dataset(48, 64, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    dc = DiffusionConfig.paper(mc.resolutions)
    tc = TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=1, checkpoint_every=4, text_encoder="hash",
                     precision="fp32")
    out = {}
    for name, ex in (("default", Execution()), ("contiguous", Execution(channels_last=False)),
                     ("checkpointed", Execution(checkpoint_activations=True)),
                     ("micro-batches", Execution(micro_batches=4))):
        out[name] = train(mc, dc, tc, data, text, index, tmp_path_factory.mktemp(name), progress=False, execution=ex)
    return out


def test_training_layout_does_not_change_the_losses(run):
    a, b = run["default"], run["contiguous"]
    assert len(a.losses) == len(b.losses) == 4
    assert a.losses == pytest.approx(b.losses, rel=1e-4, abs=1e-6)
    assert [x for r in a.level_losses for x in r] == pytest.approx([x for r in b.level_losses for x in r], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", ["checkpointed", "micro-batches"])
def test_memory_savers_do_not_change_the_losses(run, name):
    a, b = run["default"], run[name]
    assert a.losses == pytest.approx(b.losses, rel=1e-5, abs=1e-7)
    assert [x for r in a.level_losses for x in r] == pytest.approx([x for r in b.level_losses for x in r], rel=1e-5, abs=1e-7)


def test_micro_batches_must_divide_the_batch(tmp_path):
    data = shapes_dataset(16, 64, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=1, batch_size=8, text_encoder="hash")
    with pytest.raises(ValueError, match="micro_batches=3 must divide"):
        train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "r", progress=False,
              execution=Execution(micro_batches=3))


def test_loaded_model_samples_in_the_chosen_layout_with_the_same_images(run, cpu_bf16):
    precision, layout = BRANCHES[cpu_bf16]
    model, cfgs = load_model(run["default"].checkpoint)
    assert model.base_in.weight.is_contiguous(memory_format=layout)
    text = HashTextEncoder().encode(["a red circle", "a blue square"])
    fast = sample(model, cfgs["diffusion"], text, steps=4, seed=1).top  # precision "auto": this CPU's branch
    plain = sample(model.to(memory_format=torch.contiguous_format), cfgs["diffusion"], text, steps=4, seed=1).top
    assert torch.allclose(fast, plain, atol=1e-4)
    exact = sample(model, cfgs["diffusion"], text, steps=4, seed=1, precision="fp32").top
    assert torch.allclose(fast, exact, atol=1e-4) == (precision == "fp32")  # bf16 sampling really ran in bf16


def test_training_precision_and_layout_follow_the_cpu(cpu_bf16, tmp_path):
    precision, layout = BRANCHES[cpu_bf16]
    data = shapes_dataset(16, 64, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=2, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=2, text_encoder="hash")
    r = train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", progress=False)
    assert read_history(r.checkpoint)["precision"] == precision
    assert len(r.losses) == 2 and all(torch.isfinite(torch.tensor(r.losses)))
    model, _ = load_model(r.checkpoint)
    assert model.base_in.weight.is_contiguous(memory_format=layout)


@pytest.mark.gpu
def test_compiled_training_on_cuda(tmp_path):
    data = shapes_dataset(32, 64)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    mc = model_config("smoke", 3)
    tc = TrainConfig(steps=3, batch_size=4, text_encoder="hash")
    r = train(mc, DiffusionConfig.paper(mc.resolutions), tc, data, text, index, tmp_path / "run", device="cuda",
              progress=False, execution=Execution(compile=True))
    assert len(r.losses) == 3 and all(torch.isfinite(torch.tensor(r.losses)))
