"""The reproduction's notebooks, their parameters, and the values each profile gives them.

Every notebook has a cell tagged ``parameters`` whose names must equal the ones declared here (a test checks
it). ``ldlib reproduce`` validates a whole run against these declarations before any notebook starts, so a
typo or a bad value fails at once with a message naming the parameter and what it accepts.

Profiles: ``smoke`` runs the whole suite in minutes (CI); ``quick`` is a first pass on a 2-core CPU with short
budgets and one training seed (indicative results); ``default`` is the decisive run on a 2-core CPU (three
training seeds, budget curves, 1,000 samples per final number; many hours, resumable); ``paper`` runs at the
paper's resolutions (a GPU for the training notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..config import PRESETS
from ..data.images import EXAMPLE_IMAGES
from ..noise import ANALYSIS_KINDS
from ..sampler import METHODS
from .table1 import RULES as TABLE1_RULES

PROFILES = ("smoke", "quick", "default", "paper")
#: profiles whose results are a first pass, labelled indicative in summary.md and the report (what they lack)
INDICATIVE = {"smoke": "the plumbing test: tiny models and budgets, its numbers mean nothing",
              "quick": "a first pass: one training seed, 12,800 images per model, 128 samples; its empirical "
                       "claims stay unresolved (one seed cannot decide one), their findings give one seed's "
                       "direction, the default profile decides"}


class ParameterError(ValueError):
    """A notebook parameter that does not exist or has a value it does not accept."""


@dataclass(frozen=True)
class Param:
    """A notebook parameter. ``kind`` is int, float, str, or list of one of those (``list[int]`` ...);
    ``choices`` restricts values (or list items), ``low``/``high`` bound numbers (inclusive)."""

    kind: str
    doc: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    nonempty: bool = True

    def allowed(self) -> str:
        what = {"int": "an integer", "float": "a number", "str": "a string"}
        item = self.kind[5:-1] if self.kind.startswith("list[") else self.kind
        parts = [what[item]]
        if self.choices is not None:
            parts = [f"one of {', '.join(map(str, self.choices))}"]
        if self.low is not None and self.high is not None:
            parts.append(f"in [{self.low}, {self.high}]")
        elif self.low is not None:
            parts.append(f">= {self.low}")
        text = " ".join(parts)
        return f"a list of items each {text}" if self.kind.startswith("list[") else text

    def check(self, name: str, value: Any) -> Any:
        """Return the value normalised to its kind, or raise :class:`ParameterError`."""
        item_kind = self.kind[5:-1] if self.kind.startswith("list[") else None
        try:
            if item_kind:
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                    raise TypeError
                if self.nonempty and len(value) == 0:
                    raise ValueError
                return [self._item(v, item_kind) for v in value]
            return self._item(value, self.kind)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name!r} must be {self.allowed()}; got {value!r}") from None

    def _item(self, v: Any, kind: str) -> Any:
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError
        elif kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError
            v = float(v)
        elif kind == "str" and not isinstance(v, str):
            raise TypeError
        if self.choices is not None and v not in self.choices:
            raise ValueError
        if self.low is not None and v < self.low:
            raise ValueError
        if self.high is not None and v > self.high:
            raise ValueError
        return v


#: Parameters every notebook has; the runner fills them in.
COMMON = {
    "profile": Param("str", "the profile this run belongs to", choices=PROFILES),
    "output_dir": Param("str", "folder for metrics.json and figures ('' = save nothing)", nonempty=False),
    "seed": Param("int", "seed of every random draw in the notebook", low=0),
}


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook: its file, its own parameters, and their values per profile."""

    name: str
    title: str
    params: Mapping[str, Param]
    profiles: Mapping[str, Mapping[str, Any]]
    cross_checks: tuple = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"

    def all_params(self) -> dict[str, Param]:
        return {**COMMON, **self.params}

    def parameters(self, profile: str, overrides: Mapping[str, Any] | None = None, seed: int = 0) -> dict:
        """The validated parameters of this notebook for ``profile`` with ``overrides`` applied
        (``output_dir`` is left for the runner)."""
        if profile not in PROFILES:
            raise ParameterError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        declared = self.all_params()
        values = {"profile": profile, "output_dir": "", "seed": seed, **self.profiles[profile]}
        for key, value in (overrides or {}).items():
            if key not in declared:
                raise ParameterError(
                    f"unknown parameter {key!r} for notebook {self.name}; allowed: {', '.join(declared)}"
                )
            values[key] = value
        missing = set(declared) - set(values)
        if missing:
            raise ParameterError(f"profile {profile!r} of {self.name} sets no value for {sorted(missing)}")
        checked = {k: declared[k].check(k, v) for k, v in values.items()}
        for check in self.cross_checks:
            check(checked)
        return checked


def _divisible_top(p: Mapping[str, Any]) -> None:
    for f in p["factors"]:
        if p["top_resolution"] % f:
            raise ParameterError(f"parameter 'factors': {f} does not divide top_resolution={p['top_resolution']}")


def _pyramid_resolutions(p: Mapping[str, Any]) -> None:
    res = p["resolutions"]
    if any(a >= b for a, b in zip(res, res[1:])):
        raise ParameterError(f"parameter 'resolutions' must be strictly increasing, got {res}")
    ratios = [r / res[0] for r in res]
    if any(q not in (1, 2, 4) for q in ratios):
        raise ParameterError(
            f"parameter 'resolutions' must be the base times 1, 2 and/or 4 (the ratios the paper gives shifts "
            f"for), got {res}"
        )


#: The training and evaluation parameters every training notebook shares. Equal values across notebooks mean
#: equal runs (``ldlib.reproduction.run_cache`` caches by config), so a model trained for one notebook serves the others.
TRAINING = {
    "preset": Param("str", "model preset (widths, blocks, resolutions)", choices=tuple(PRESETS)),
    "dataset": Param("str", "captioned training data (validation split is the FID reference)",
                     choices=("shapes", "emoji3d", "coco", "folder")),
    "data_root": Param("str", "folder of the coco (2014 layout) or folder data set", nonempty=False),
    "data_size": Param("int", "images in the procedural shapes set (shapes only)", low=8),
    "n_reference": Param("int", "held-out shapes images in the reference set (shapes only)", low=4),
    "budget_images": Param("int", "images seen in training by every compared model (equal budget)", low=1),
    "batch_size": Param("int", "images per step", low=1),
    "lr": Param("float", "AdamW learning rate", low=0.0, high=1.0),
    "text_encoder": Param("str", "caption encoder", choices=("minilm", "hash")),
    "n_samples": Param("int", "generated images per model for FID/KID/IS/alignment", low=4),
    "sample_steps": Param("int", "sampling steps per image (see benchmarks/sampler_steps.py)", low=1, high=1000),
    "sampler": Param("str", "sampler: ddim, ddpm or dpmpp_2m (DPM-Solver++ 2M)", choices=METHODS),
    "guidance": Param("float", "classifier-free guidance scale", low=0.0, high=50.0),
    "n_boot": Param("int", "bootstrap resamples behind each confidence interval", low=2, high=10_000),
    "judge_steps": Param("int", "training steps of the alignment judge (classifier or matcher)", low=1),
}
#: Replication: several training seeds (``SEEDS``), and a budget curve from each seed's one run (``CURVE``,
#: ``ldlib.reproduction.run_cache``), for the notebooks whose claims rest on them.
SEEDS = {
    "seeds": Param("int", "training seeds per model (seed, seed + 1, ...); claims use the paired difference "
                          "across them", low=1, high=20),
}
CURVE = {
    "curve_images": Param("list[int]", "smaller budgets (images seen) also evaluated, from the same runs: the "
                                       "budget curve", low=1, nonempty=False),
    "n_samples_curve": Param("int", "generated images per model at the curve's smaller budgets", low=4),
}
SEEDS_VALUES = {"smoke": dict(seeds=2), "quick": dict(seeds=1), "default": dict(seeds=3), "paper": dict(seeds=1)}
CURVE_VALUES = {
    "smoke": dict(curve_images=[8], n_samples_curve=16),
    "quick": dict(curve_images=[], n_samples_curve=128),
    "default": dict(curve_images=[12_800, 51_200], n_samples_curve=256),
    "paper": dict(curve_images=[], n_samples_curve=1000),
}


def _curve_below_budget(p: Mapping[str, Any]) -> None:
    for images in p["curve_images"]:
        if not p["batch_size"] <= images < p["budget_images"]:
            raise ParameterError(f"parameter 'curve_images': {images} must be at least one batch ({p['batch_size']}) "
                                 f"and below budget_images={p['budget_images']}")


TRAINING_VALUES = {
    "smoke": dict(preset="smoke", dataset="shapes", data_root="", data_size=64, n_reference=32, budget_images=24,
                  batch_size=8, lr=1e-3, text_encoder="minilm", n_samples=16, sample_steps=4, sampler="dpmpp_2m", guidance=3.0, n_boot=10,
                  judge_steps=20),
    "quick": dict(preset="cpu16", dataset="emoji3d", data_root="", data_size=2048, n_reference=1000,
                  budget_images=12800, batch_size=32, lr=5e-4, text_encoder="minilm", n_samples=128, sample_steps=75,
                  sampler="dpmpp_2m", guidance=3.0, n_boot=50, judge_steps=600),
    "default": dict(preset="cpu16", dataset="emoji3d", data_root="", data_size=2048, n_reference=1000,
                    budget_images=102_400, batch_size=32, lr=5e-4, text_encoder="minilm", n_samples=1000,
                    sample_steps=75, sampler="dpmpp_2m", guidance=3.0, n_boot=50, judge_steps=600),
    "paper": dict(preset="paper", dataset="coco", data_root="data/coco", data_size=2048, n_reference=1000,
                  budget_images=640_000, batch_size=32, lr=1e-4, text_encoder="minilm", n_samples=10_000,
                  sample_steps=100, sampler="ddim", guidance=3.0, n_boot=50, judge_steps=3000),
}


def _dataset_root(p: Mapping[str, Any]) -> None:
    if p["dataset"] in ("coco", "folder") and not p["data_root"]:
        raise ParameterError(f"parameter 'data_root' must name the {p['dataset']} folder when dataset={p['dataset']!r}")


def _training_spec(name: str, title: str, params: dict, profiles: dict, cross_checks: tuple = (),
                   seeds: bool = False, curve: bool = False) -> NotebookSpec:
    """A notebook with its own parameters plus :data:`TRAINING` (profile values from :data:`TRAINING_VALUES`),
    :data:`SEEDS` when it trains several seeds and :data:`CURVE` when it evaluates budget curves. ``quick``
    takes the notebook's own ``default`` values unless it gives its own; a notebook's own profile values override
    the shared ones (notebook 04's budget is half Table 1's, so that its equal-total-images arms are Table 1's
    runs)."""
    declared = {**params, **TRAINING, **(SEEDS if seeds else {}), **(CURVE if curve else {})}
    values = {p: {**TRAINING_VALUES[p], **(SEEDS_VALUES[p] if seeds else {}), **(CURVE_VALUES[p] if curve else {}),
                  **profiles.get(p, profiles["default"])} for p in PROFILES}  # the notebook's own values win
    checks = (*cross_checks, _dataset_root, *((_curve_below_budget,) if curve else ()))
    return NotebookSpec(name, title, declared, values, checks)


_SHIFT = Param("list[float]", "extra top-layer shifts to sweep (nats of log-SNR)", low=-12.0, high=4.0, nonempty=False)

NOTEBOOKS: dict[str, NotebookSpec] = {
    spec.name: spec
    for spec in [
        _training_spec(
            name="01_noise_scaling",
            title="Noise scaling: sinc vs bilinear vs independent noise (section 2.2, Fig. A.2, Table A.1)",
            params={
                "top_resolution": Param("int", "side of the top-resolution noise, pixels", low=8, high=2048),
                "factors": Param("list[int]", "downsampling factors to analyse", choices=(2, 4, 8, 16)),
                "n_fields": Param("int", "independent noise fields drawn", low=8, high=100_000),
                "kinds": Param("list[str]", "noise kinds to compare", choices=ANALYSIS_KINDS),
                "train_kinds": Param("list[str]", "noise kinds to train the layered model with",
                                     choices=("sinc", "bilinear", "independent")),
                "levels": Param("int", "resolutions K of the trained layered models", low=2, high=3),
            },
            profiles={
                "smoke": dict(top_resolution=64, factors=[2, 4], n_fields=64,
                              kinds=["sinc", "bilinear", "bilinear_raw", "independent"],
                              train_kinds=["sinc", "bilinear", "independent"], levels=3),
                "default": dict(top_resolution=256, factors=[2, 4], n_fields=512,
                                kinds=["sinc", "bilinear", "bilinear_raw", "independent"],
                                train_kinds=["sinc", "bilinear", "independent"], levels=2),
                "paper": dict(top_resolution=512, factors=[2, 4], n_fields=512,
                              kinds=["sinc", "bilinear", "bilinear_raw", "independent"],
                              train_kinds=["sinc", "bilinear", "independent"], levels=3),
            },
            cross_checks=(_divisible_top,),
            seeds=True,
        ),
        _training_spec(
            name="02_schedule_shifting",
            title="Cosine schedule shifting per resolution (section 2.3, Figs. A.3-A.5)",
            params={
                "resolutions": Param("list[int]", "pyramid resolutions, base first, pixels", low=8, high=2048),
                "images": Param("list[str]", "example photographs to noise", choices=tuple(EXAMPLE_IMAGES)),
                "timesteps": Param("list[float]", "t values shown in the image grid", low=0.0, high=1.0),
                "n_t": Param("int", "points on the t grid of the survival curves", low=3, high=1000),
                "n_noise": Param("int", "noise draws averaged in the survival curves", low=1, high=1000),
                "sweep2_extra": _SHIFT,
                "sweep3_extra": _SHIFT,
            },
            profiles={
                "smoke": dict(resolutions=[32, 64, 128], images=["astronaut", "coffee"],
                              timesteps=[0.2, 0.5, 0.8], n_t=11, n_noise=1, sweep2_extra=[], sweep3_extra=[]),
                "default": dict(resolutions=[128, 256, 512], images=["astronaut", "coffee", "chelsea", "rocket"],
                                timesteps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9], n_t=41, n_noise=4,
                                sweep2_extra=[], sweep3_extra=[]),
                "paper": dict(resolutions=[128, 256, 512], images=["astronaut", "coffee", "chelsea", "rocket"],
                              timesteps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9], n_t=101, n_noise=8,
                              sweep2_extra=[-2.772588722239781, -4.1588830833596715],
                              sweep3_extra=[-4.1588830833596715]),
            },
            cross_checks=(_pyramid_resolutions,),
            seeds=True,
        ),
        _training_spec(
            name="03_strategic_cropping",
            title="Strategic cropping for training speed (section 3.1, Fig. A.6)",
            params={
                "levels": Param("int", "resolutions K of the cropped model", low=2, high=3),
                "crop_size": Param("int", "crop side at every cropped resolution, pixels (0 = half the second)", low=0),
                "speed_steps": Param("int", "timed training steps per variant in the speed measurement", low=1),
                "show_images": Param("int", "real images shown with their crop pyramid", low=1, high=16),
            },
            profiles={
                "smoke": dict(levels=3, crop_size=0, speed_steps=2, show_images=2),
                "default": dict(levels=3, crop_size=0, speed_steps=8, show_images=4),
                "paper": dict(levels=3, crop_size=0, speed_steps=8, show_images=4),
            },
            seeds=True,
            curve=True,
        ),
        _training_spec(
            name="04_model_stacking",
            title="Model stacking: initialising K+1 resolutions from K (section 3.2, Table A.2, Fig. A.7)",
            params={
                "grid_prompts": Param("int", "prompts in the sample grid", low=1, high=16),
            },
            profiles={"smoke": dict(grid_prompts=6), "quick": dict(grid_prompts=6),
                      "default": dict(grid_prompts=6, budget_images=51_200), "paper": dict(grid_prompts=6)},
            seeds=True,
        ),
    ]
}


def _table1_rows(p: Mapping[str, Any]) -> None:
    from ..flops import table1_models

    names = list(table1_models(p["preset"]))
    unknown = [r for r in p["rows"] if r not in names]
    if unknown:
        raise ParameterError(f"'rows' of preset {p['preset']!r} are {', '.join(names)} ([] = all); got {unknown}")


def _table1_levels(p: Mapping[str, Any]) -> None:
    if not p["noise_levels"] and not p["blur_levels"]:
        raise ParameterError("set at least one of 'noise_levels' and 'blur_levels' for the FID sanity curve")


NOTEBOOKS["05_table1"] = _training_spec(
    name="05_table1",
    title="Table 1: layered vs single-resolution models on FLOPs, FID, KID, IS and text alignment",
    params={
        "flops_preset": Param("str", "preset whose FLOPs are compared with Table 1", choices=tuple(PRESETS)),
        "rules": Param("list[str]", "schedule rules, each applied to single and layered rows alike",
                       choices=tuple(TABLE1_RULES)),
        "rows": Param("list[str]", "Table 1 rows to train and score by name, e.g. ['single32', 'layered32'] "
                      "(a pair's claims need both); [] = all five", nonempty=False),
        "noise_levels": Param("list[float]", "noise std of the FID sanity curve", low=0.0, high=4.0, nonempty=False),
        "blur_levels": Param("list[float]", "down-up factors of the FID sanity curve", low=1.0, high=64.0,
                             nonempty=False),
    },
    profiles={
        "smoke": dict(flops_preset="paper", rules=["paper", "none"], rows=[], noise_levels=[0.2], blur_levels=[4.0]),
        "quick": dict(flops_preset="paper", rules=["paper"], rows=[], noise_levels=[0.05, 0.1, 0.2, 0.4],
                      blur_levels=[2.0, 4.0]),
        "default": dict(flops_preset="paper", rules=["paper", "none"], rows=[], noise_levels=[0.05, 0.1, 0.2, 0.4],
                        blur_levels=[2.0, 4.0]),
        "paper": dict(flops_preset="paper", rules=["paper"], rows=[], noise_levels=[0.05, 0.1, 0.2, 0.4],
                      blur_levels=[2.0, 4.0, 8.0]),
    },
    cross_checks=(_table1_rows, _table1_levels),
    seeds=True,
    curve=True,
)


def resolve_names(only: Sequence[str] | None, registry: Mapping[str, NotebookSpec] = NOTEBOOKS) -> list[str]:
    """Notebook names from ``--only`` arguments (full names or unique prefixes such as ``01``)."""
    if not only:
        return list(registry)
    names = []
    for o in only:
        hits = [n for n in registry if n == o or n.startswith(o)]
        if len(hits) != 1:
            why = "matches several" if hits else "matches none"
            raise ParameterError(f"--only {o!r} {why} of the notebooks: {', '.join(registry)}")
        if hits[0] not in names:
            names.append(hits[0])
    return names
