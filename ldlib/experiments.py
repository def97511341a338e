"""The reproduction's notebooks, their parameters, and the values each profile gives them.

Every notebook has a cell tagged ``parameters`` whose names must equal the ones declared here (a test checks
it). ``ldlib reproduce`` validates a whole run against these declarations before any notebook starts, so a
typo or a bad value fails at once with a message naming the parameter and what it accepts.

Profiles: ``smoke`` runs the whole suite in minutes (CI), ``default`` in about an hour on a 2-core CPU, and
``paper`` at the paper's resolutions (a GPU for the training notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .config import PRESETS
from .data import EXAMPLE_IMAGES
from .noise import ANALYSIS_KINDS

PROFILES = ("smoke", "default", "paper")


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


NOTEBOOKS: dict[str, NotebookSpec] = {
    spec.name: spec
    for spec in [
        NotebookSpec(
            name="01_noise_scaling",
            title="Noise scaling: sinc vs bilinear vs independent noise (section 2.2, Fig. A.2, Table A.1)",
            params={
                "top_resolution": Param("int", "side of the top-resolution noise, pixels", low=8, high=2048),
                "factors": Param("list[int]", "downsampling factors to analyse", choices=(2, 4, 8, 16)),
                "n_fields": Param("int", "independent noise fields drawn", low=8, high=100_000),
                "kinds": Param("list[str]", "noise kinds to compare", choices=ANALYSIS_KINDS),
            },
            profiles={
                "smoke": dict(top_resolution=64, factors=[2, 4], n_fields=64,
                              kinds=["sinc", "bilinear", "bilinear_raw", "independent"]),
                "default": dict(top_resolution=256, factors=[2, 4], n_fields=512,
                                kinds=["sinc", "bilinear", "bilinear_raw", "independent"]),
                "paper": dict(top_resolution=512, factors=[2, 4], n_fields=512,
                              kinds=["sinc", "bilinear", "bilinear_raw", "independent"]),
            },
            cross_checks=(_divisible_top,),
        ),
        NotebookSpec(
            name="02_schedule_shifting",
            title="Cosine schedule shifting per resolution (section 2.3, Figs. A.3-A.4)",
            params={
                "resolutions": Param("list[int]", "pyramid resolutions, base first, pixels", low=8, high=2048),
                "images": Param("list[str]", "example photographs to noise", choices=tuple(EXAMPLE_IMAGES)),
                "timesteps": Param("list[float]", "t values shown in the image grid", low=0.0, high=1.0),
                "n_t": Param("int", "points on the t grid of the survival curves", low=3, high=1000),
                "n_noise": Param("int", "noise draws averaged in the survival curves", low=1, high=1000),
            },
            profiles={
                "smoke": dict(resolutions=[32, 64, 128], images=["astronaut", "coffee"],
                              timesteps=[0.2, 0.5, 0.8], n_t=11, n_noise=1),
                "default": dict(resolutions=[128, 256, 512], images=["astronaut", "coffee", "chelsea", "rocket"],
                                timesteps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9], n_t=41, n_noise=4),
                "paper": dict(resolutions=[128, 256, 512], images=["astronaut", "coffee", "chelsea", "rocket"],
                              timesteps=[0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9], n_t=101, n_noise=8),
            },
            cross_checks=(_pyramid_resolutions,),
        ),
    ]
}


_PROMPTS = ["a large red circle", "a small blue striped square", "a large green triangle above a small yellow circle",
            "a large purple striped square left of a small orange triangle"]
NOTEBOOKS["05_table1"] = NotebookSpec(
    name="05_table1",
    title="Table 1: FLOPs of layered vs single-resolution models, and a trained layered model's samples",
    params={
        "flops_preset": Param("str", "preset whose FLOPs are compared with Table 1", choices=tuple(PRESETS)),
        "preset": Param("str", "preset of the model trained here", choices=tuple(PRESETS)),
        "levels": Param("int", "resolutions K of the trained layered model", low=1, high=3),
        "steps": Param("int", "training steps", low=1),
        "batch_size": Param("int", "images per step", low=1),
        "lr": Param("float", "AdamW learning rate", low=0.0, high=1.0),
        "data_size": Param("int", "images in the procedural shapes set", low=8),
        "text_encoder": Param("str", "caption encoder", choices=("minilm", "hash")),
        "prompts": Param("list[str]", "prompts of the sample grid"),
        "sample_steps": Param("int", "DDIM steps", low=1, high=1000),
        "guidance": Param("float", "classifier-free guidance scale", low=0.0, high=50.0),
    },
    profiles={
        "smoke": dict(flops_preset="paper", preset="smoke", levels=3, steps=30, batch_size=8, lr=1e-3, data_size=64,
                      text_encoder="minilm", prompts=_PROMPTS[:2], sample_steps=8, guidance=3.0),
        "default": dict(flops_preset="paper", preset="cpu16", levels=3, steps=600, batch_size=32, lr=5e-4,
                        data_size=2048, text_encoder="minilm", prompts=_PROMPTS, sample_steps=50, guidance=3.0),
        "paper": dict(flops_preset="paper", preset="paper", levels=3, steps=20000, batch_size=32, lr=1e-4,
                      data_size=4096, text_encoder="minilm", prompts=_PROMPTS, sample_steps=100, guidance=3.0),
    },
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
