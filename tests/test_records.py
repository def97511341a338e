"""The records (``ldlib.runtime.records``): what a finished run and evaluation measured, kept so that a machine
with an empty run cache reads results back instead of training and sampling again, with the same numbers."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from ldlib.config import DiffusionConfig, TrainConfig, model_config
from ldlib.data.datasets import data_spec
from ldlib.evaluation import Evaluation, Evaluator, metrics, paired_difference
from ldlib.reproduction.run_cache import RecordedRun, trained_model
from ldlib.runtime import records
from ldlib.training.checkpoint import checkpoint_at, read_weights


def synthetic(rng, shift: float, n: int = 40, real=None) -> Evaluation:
    """An evaluation of ``n`` random 16-d "pool3" features and 10-class logits, scored against ``real``."""
    real = rng.normal(size=(60, 16)) if real is None else real
    features = metrics.Features(rng.normal(shift, 1.0, size=(n, 16)), rng.normal(size=(n, 10)))
    protocol = metrics.Protocol("synthetic", len(real), n, seeds="batch j uses seed 0 + j", sampler="ddim")
    samples = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    return Evaluation(metrics.scores(real, features, protocol, n_boot=8, seed=0), None, None, samples, features,
                      reference=real)


def as_recorded(ev: Evaluation, prefixes=()) -> Evaluation:
    """``ev`` as a machine without its features reads it: from its record alone."""
    return Evaluation.from_record(ev.to_record(prefixes, n_boot=8, seed=0), ev.samples[:4])


def test_a_paired_difference_from_records_equals_the_one_from_features():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 16))
    a = [synthetic(rng, 0.3, real=real) for _ in range(3)]
    b = [synthetic(rng, 0.0, real=real) for _ in range(3)]
    for metric in ("fid", "kid", "is"):
        want = paired_difference(a, b, metric)
        assert paired_difference([as_recorded(e) for e in a], [as_recorded(e) for e in b], metric) == want
        assert paired_difference([as_recorded(e) for e in a], b, metric) == want  # one side recorded
        # and both equal the paired bootstrap over the features themselves, seed by seed
        stat = metrics.resampled_statistic(metric, real, 40, 0)
        rows = (lambda e: e.features.logits) if metric == "is" else (lambda e: e.features.pool3)
        per_seed = [metrics.paired_bootstrap(stat, rows(x), rows(y), 200, 0) for x, y in zip(a, b)]
        assert want[:2] == metrics.across_seeds([d for d, _, _ in per_seed], [sd for _, _, sd in per_seed])


def test_a_records_prefix_scores_the_first_samples_as_the_features_do():
    ev = synthetic(np.random.default_rng(1), 0.2)
    recorded = as_recorded(ev, prefixes=(16, 40, 99))  # 40 and 99 are not below the count: no prefix
    assert sorted(recorded.prefixes) == [16]
    want, got = ev.first(16, 8, 0), recorded.first(16, 8, 0)
    assert got.scores == want.scores and got.features is None
    assert paired_difference([got], [got], "fid")[0] == 0.0  # its replicates came along
    with pytest.raises(ValueError, match="no record of them"):
        recorded.first(16, 9, 0)  # another bootstrap than the one recorded
    with pytest.raises(ValueError, match="cannot be rescored"):
        recorded.first(8, 8, 0)


def test_records_are_written_only_when_asked_never_replaced_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(records.RECORDS_ENV, raising=False)
    folder = tmp_path / "cache" / "runs" / "r-0123" / "eval-abc"
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    assert records.write(folder, "record.json", {"x": 1}) is None and not records.writing()
    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    assert records.write(folder, "record.json", {"x": 1.5}) == tmp_path / "records/runs/r-0123/eval-abc/record.json"
    assert records.write(folder, "record.json", {"x": 2}) is None and records.read(folder, "record.json") == {"x": 1.5}
    records.write_images(folder, "samples.png", images)
    assert torch.equal(records.read_images(folder, "samples.png"), images)  # lossless
    assert records.record_path(tmp_path / "elsewhere") is None  # outside the run cache: no record
    assert records.read(tmp_path / "cache" / "runs" / "other", "record.json") is None


def test_a_recorded_run_is_evaluated_on_an_empty_cache_without_training_or_sampling(tmp_path, monkeypatch):
    """Train and evaluate with records written; then, on an empty cache, the run comes back as a RecordedRun
    whose evaluation is read from the records (no training, no sampling, the same numbers); its weights are
    trained again only when asked for, and are the run's own."""
    import ldlib.evaluation.evaluator as ev_mod

    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "first"))
    mcfg = model_config("smoke", 2)
    request = ("smoke2", mcfg, DiffusionConfig.paper(mcfg.resolutions),
               TrainConfig(steps=2, batch_size=4, text_encoder="hash"), data_spec("shapes", data_size=32))
    evaluator = Evaluator(request[-1], n_samples=8, steps=2, guidance=2.0, text_encoder="hash", n_reference=8,
                          judge_steps=0, n_boot=4, progress=False, prefixes=(4,))
    run = trained_model(*request, progress=False)
    ev = evaluator(run)

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "second"))

    def refuse(*args, **kwargs):
        raise AssertionError("sampled again instead of read back")

    monkeypatch.setattr(ev_mod, "evaluate_model", refuse)
    again = trained_model(*request, progress=False)
    assert isinstance(again, RecordedRun) and checkpoint_at(again.run_dir, 2) is None
    assert (again.step, again.losses, again.images_per_s) == (run.step, run.losses, run.images_per_s)
    assert evaluator.is_stored(again)  # what `ldlib pretrain --plan` counts as done
    back = evaluator(again)
    assert back.scores == ev.scores and torch.equal(back.samples, ev.samples[:8]) and back.features is None
    assert back.first(4, 4, 0).scores == ev.first(4, 4, 0).scores
    assert paired_difference([back], [ev], "fid")[0] == 0.0
    assert checkpoint_at(again.run_dir, 2) is None  # still nothing trained

    checkpoint = records.weights(again)  # now something needs the weights: the run is trained again
    assert checkpoint == checkpoint_at(again.run_dir, 2) and str(checkpoint).startswith(str(tmp_path / "second"))
    original = read_weights(run.checkpoint / "ema.safetensors")
    assert all(torch.equal(v, original[k]) for k, v in read_weights(checkpoint / "ema.safetensors").items())
    other = replace(request[3], seed=1)  # another question: no record answers it
    assert not isinstance(trained_model(*request[:3], other, request[4], progress=False), RecordedRun)


def test_a_run_asked_for_under_another_name_finds_its_records(tmp_path, monkeypatch):
    """The same run (same hash) requested under another label, on an empty cache, is read back from the records
    kept under its first name, evaluation included: not trained or sampled again (notebook 02's sweep asks for
    Table 1's runs as its paper and unshifted points)."""
    import ldlib.evaluation.evaluator as ev_mod

    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "first"))
    mcfg = model_config("smoke", 2)
    request = (mcfg, DiffusionConfig.paper(mcfg.resolutions), TrainConfig(steps=2, batch_size=4, text_encoder="hash"),
               data_spec("shapes", data_size=32))
    evaluator = Evaluator(request[-1], n_samples=4, steps=2, guidance=2.0, text_encoder="hash", n_reference=8,
                          judge_steps=0, n_boot=4, progress=False)
    ev = evaluator(trained_model("table1", *request, progress=False))

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "second"))
    monkeypatch.setattr(ev_mod, "evaluate_model", lambda *a, **k: pytest.fail("sampled again instead of read back"))
    again = trained_model("sweep-point", *request, progress=False)
    assert isinstance(again, RecordedRun) and again.run_dir.name.startswith("table1-")
    assert evaluator(again).scores == ev.scores
    fresh = trained_model("sweep-point", *request[:2], replace(request[2], seed=1), request[3], progress=False)
    assert fresh.run_dir.name.startswith("sweep-point-")  # another run keeps the name it was asked for


@pytest.mark.parametrize("first, then", [("0", "1"), ("1", "0")])
def test_a_run_keeps_one_precision_across_machines(tmp_path, monkeypatch, first, then):
    """"auto" in a run's key resolves by machine: a run trained in one precision (forced here by LDLIB_CPU_BF16,
    both ways) is neither resumed nor trained again from its records in the other; the error names the fix. A
    milestone's record names the machine that trained it."""
    from ldlib.reproduction import run_cache
    from ldlib.runtime.device import CPU_BF16_ENV

    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "first"))
    monkeypatch.setenv(CPU_BF16_ENV, first)
    mcfg = model_config("smoke", 2)
    request = ("smoke2", mcfg, DiffusionConfig.paper(mcfg.resolutions),
               TrainConfig(steps=2, batch_size=4, text_encoder="hash"), data_spec("shapes", data_size=32))
    run = trained_model(*request, progress=False)
    trained_in = "bf16" if first == "1" else "fp32"
    assert run_cache.trained_on(run) == records.read(run.checkpoint, "machine.json") == run_cache.machine()

    monkeypatch.setenv(CPU_BF16_ENV, then)
    longer = replace(request[3], steps=3)  # resuming in this cache
    with pytest.raises(RuntimeError, match=f"trained in {trained_in}.*{CPU_BF16_ENV}={first}"):
        trained_model(*request[:3], longer, request[4], progress=False)
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "second"))  # another machine: the run is known from records
    again = trained_model(*request, progress=False)
    assert isinstance(again, RecordedRun)
    with pytest.raises(RuntimeError, match=f"record of step-00000002.*{CPU_BF16_ENV}={first}"):
        records.weights(again)
    monkeypatch.setenv(CPU_BF16_ENV, first)  # the fix the error names
    assert records.weights(again) == checkpoint_at(again.run_dir, 2)


def test_a_probe_is_stored_recorded_and_read_back_without_the_weights(tmp_path, monkeypatch):
    """The noise-free-part probe (``ldlib.evaluation.reliance``) of a run is stored beside its evaluations and in
    the records; on an empty cache it is read back without training the run again, and the plan counts the run as
    done; other probe inputs are another question, which needs the weights. ``table1.probe_held`` probes only the
    runs whose weights this machine holds."""
    from ldlib.evaluation import reliance
    from ldlib.reproduction import table1
    from ldlib.reproduction.plan import Ledger

    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "first"))
    mcfg = model_config("smoke", 2)
    request = ("smoke2", mcfg, DiffusionConfig.paper(mcfg.resolutions),
               TrainConfig(steps=2, batch_size=4, text_encoder="hash"), data_spec("shapes", data_size=32))
    run = trained_model(*request, progress=False)
    probe = reliance.probe_batch(request[-1], mcfg.resolutions[-1], "hash", n=4)
    assert not reliance.is_probed(run, probe.about)
    out = reliance.noise_reliance(run, *probe)
    assert out.shape == (len(reliance.PROBE_TS), 2) and reliance.is_probed(run, probe.about)
    folder = reliance.probe_folder(run, probe.about)
    assert (folder / "reliance.json").is_file() and records.has(folder, "reliance.json")
    assert np.array_equal(reliance.noise_reliance(run.checkpoint, probe.x0, probe.text), out)  # unstored: computed

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "second"))
    again = trained_model(*request, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("trained again for a stored probe")

    weights = records.weights
    monkeypatch.setattr(records, "weights", refuse)
    assert np.array_equal(reliance.noise_reliance(again, *probe), out) and checkpoint_at(again.run_dir, 2) is None
    other = reliance.probe_about(request[-1], mcfg.resolutions[-1], "hash", n=4, seed=1)
    assert not reliance.is_probed(again, other)

    reached = []
    for about in (probe.about, other):
        ledger = Ledger()
        asked = ledger.run("05 paper", "smoke2", mcfg, 0, again.run_dir, 8, 4)
        ledger.probe(asked, about)
        reached.append(ledger.planned()[0].images_left)
    assert reached == [0, 8]  # the stored probe needs nothing; another one needs the weights: all 8 images again

    row = next(r for r in table1.rows("smoke") if r.name == "layered32")
    row.runs = {8: [again]}  # known from its records only: no weights here, nothing probed
    assert table1.probe_held([row], "smoke", request[-1], "hash", n=4, seed=1) == []
    row.runs = {8: [run]}
    monkeypatch.setattr(records, "weights", weights)
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "first"))
    assert table1.probe_held([row], "smoke", request[-1], "hash", n=4, seed=1) == [run.run_dir.name]
    assert reliance.is_probed(run, other, seed=1)
    assert records.has(reliance.probe_folder(run, other, seed=1), "reliance.json")


def test_the_committed_records_keep_each_run_in_one_folder():
    """A run (its hash) has one records folder: a lookup by hash (``run_cache.run_dir_for``) takes one folder,
    so a second one under another label would hide the evaluations and probes recorded under the first."""
    runs = records.records_root() / "runs"
    by_hash: dict[str, list[str]] = {}
    for folder in runs.iterdir() if runs.exists() else ():
        by_hash.setdefault(folder.name.rsplit("-", 1)[-1], []).append(folder.name)
    shared = {h: names for h, names in by_hash.items() if len(names) > 1}
    assert not shared, f"runs recorded under several names (keep the folder with its evaluations): {shared}"
