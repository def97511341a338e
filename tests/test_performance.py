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


SAMPLING_PROBE = """
import hashlib, resource, sys, torch
from ldlib.runtime.allocator import keep_freed_memory
kept = sys.argv[1] == "kept" and keep_freed_memory()
from ldlib.config import DiffusionConfig, model_config
from ldlib.data.text import HashTextEncoder
from ldlib.network import build_model
from ldlib.sampler import sample
cfg = model_config("smoke", 3)
torch.manual_seed(0)
model, diffusion = build_model(cfg).eval(), DiffusionConfig.paper(cfg.resolutions)
text = HashTextEncoder(dim=cfg.text_dim).encode([f"caption {i}" for i in range(32)])
sample(model, diffusion, text, steps=2, seed=7)  # warm-up, as an evaluation's first batch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
images = sample(model, diffusion, text, steps=3, seed=7)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(kept, faults, hashlib.sha256(b"".join(x.contiguous().numpy().tobytes() for x in images.images)).hexdigest())
"""


def _sampling_probe(arm: str) -> tuple[str, int, str]:
    """(whether the setting took, page faults of a sampling call after a warm-up one, the images' SHA-256), in a
    process of its own: glibc's settings hold for a process's life."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LDLIB_KEEP_FREED_MEMORY")}
    kept, faults, digest = subprocess.run([sys.executable, "-c", SAMPLING_PROBE, arm], env=env, check=True,
                                          capture_output=True, text=True).stdout.split()
    return kept, int(faults), digest


def test_kept_freed_memory_samples_the_same_numbers_without_faulting_the_activations_in_again():
    """glibc maps a large activation afresh at each allocation (page faults: the kernel zeroes it every step);
    with keep_freed_memory the heap serves it again once freed. Where a tensor lives does not change its
    arithmetic: the same bytes come out. What the faults cost: benchmarks/allocator.py."""
    from ldlib.runtime.allocator import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc on Linux: the allocator keeps its own behaviour")
    default, kept = _sampling_probe("default"), _sampling_probe("kept")
    assert (default[0], kept[0]) == ("False", "True")
    assert default[1] > 20_000 and kept[1] < default[1] / 4
    assert kept[2] == default[2]


def test_keep_freed_memory_passes_its_settings_to_child_processes_and_can_be_turned_off(monkeypatch):
    from ldlib.runtime.allocator import ENV, TUNABLES, keep_freed_memory

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    if not keep_freed_memory():
        pytest.skip("not glibc on Linux")
    import os

    assert os.environ["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{TUNABLES}"
    keep_freed_memory()  # a second call adds nothing
    assert os.environ["GLIBC_TUNABLES"].count(TUNABLES) == 1
    monkeypatch.setenv(ENV, "0")
    assert keep_freed_memory() is False
