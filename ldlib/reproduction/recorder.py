"""What a notebook reports: metrics (with the paper's number beside ours), claims, and figures.

A notebook makes one :class:`Recorder` with the ``output_dir`` the runner injected and calls
:meth:`Recorder.metric`, :meth:`Recorder.claim` and :meth:`Recorder.figure`; :meth:`Recorder.save` writes
``metrics.json``. ``ldlib.reproduction.runner`` adds the provenance record and builds ``summary.md`` from these files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..runtime.files import atomic_write_text, json_default

MATCHES = "matches"
DIFFERS = "differs"
NO_PAPER = "no paper number"


@dataclass
class Metric:
    """One reproduced number. ``ci`` is a (low, high) confidence interval; ``paper`` the paper's number
    for the same quantity (None if the paper has none) and ``source`` where it is printed. The verdict is
    'matches' when the paper's number lies in our interval or within ``tolerance`` of our value."""

    key: str
    value: float
    ci: tuple[float, float] | None = None
    paper: float | None = None
    source: str = ""
    tolerance: float | None = None
    unit: str = ""
    note: str = ""
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        self.value = float(self.value)
        if self.ci is not None:
            self.ci = (float(self.ci[0]), float(self.ci[1]))
        self.verdict = self._verdict()

    def _verdict(self) -> str:
        if self.paper is None:
            return NO_PAPER
        if self.ci is not None and self.ci[0] <= self.paper <= self.ci[1]:
            return MATCHES
        if self.tolerance is not None and abs(self.value - self.paper) <= self.tolerance:
            return MATCHES
        return DIFFERS


AGREES, DISAGREES, NO_EFFECT, UNRESOLVED = "agrees", "disagrees", "no effect", "unresolved"
#: A claim's verdict: the interval of our paired difference excludes 0 on the paper's side (agrees) or on the
#: other (disagrees), lies within +-delta of 0 (no effect of the paper's size), or is too wide (unresolved).
VERDICTS = (AGREES, DISAGREES, NO_EFFECT, UNRESOLVED)
#: Analytic checks hold by construction or exact computation; empirical claims rest on trained models.
ANALYTIC, EMPIRICAL = "analytic", "empirical"
#: delta where the paper prints no number for an effect: 10% of the compared value.
DEFAULT_DELTA = 0.10
#: Training seeds a verdict other than unresolved needs. With one seed the interval is the sample bootstrap's
#: alone: it leaves out the spread between training runs (another initialisation and data order), which the
#: protocol's interval nests the bootstrap inside, so it cannot decide a claim however narrow it is.
MIN_SEEDS_TO_DECIDE = 2
#: How a claim's verdict is read, for the reader of summary.md and report.html alike.
VERDICT_LEGEND = ("An empirical claim agrees when the 95% interval of our paired difference excludes 0 on the "
                  "paper's side, disagrees when it excludes 0 on the other side, shows no effect when it lies "
                  "within ±δ of 0 (δ the paper's own relative effect, 10% where it prints none), and is unresolved "
                  "otherwise (with the number of seeds the measured spread says would decide it); a claim resting "
                  f"on fewer than {MIN_SEEDS_TO_DECIDE} training seeds is unresolved whatever its interval, since "
                  "the sample bootstrap alone leaves out the spread between training runs. Analytic checks "
                  "(true by construction or exact computation) are counted apart.")


def verdict_of(agrees: bool | None) -> str:
    """The verdict word of a claim known only by ``agrees`` (True, False, None = cannot decide)."""
    return UNRESOLVED if agrees is None else AGREES if agrees else DISAGREES


def agrees_of(verdict: str) -> bool | None:
    """``agrees`` of a verdict: True, False (disagrees, or no effect of the size the paper reports), None
    only for unresolved."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    return None if verdict == UNRESOLVED else verdict == AGREES


@dataclass(frozen=True)
class Judgement:
    """A paired difference judged against the paper: its verdict, when unresolved how many training seeds the
    measured spread says would decide it (:func:`seeds_to_reach`), and the numbers it was judged on
    (``effect``: what :attr:`Claim.effect` stores, read by :func:`in_paper_units`)."""

    verdict: str
    seeds_to_resolve: int | None = None
    effect: dict | None = None


def judge_difference(diff: float, ci: tuple[float, float], paper_sign: int, scale: float,
                     delta: float = DEFAULT_DELTA, seeds: int = 1) -> Judgement:
    """Judge ``diff`` = a - b with its 95% interval ``ci`` where the paper says ``sign(a - b) == paper_sign``;
    ``delta`` is the paper's own relative effect (or :data:`DEFAULT_DELTA`), taken of ``scale`` (the value
    the effect is relative to, e.g. b's FID). An interval that excludes 0 decides the sign; else one inside
    +-delta*|scale| says there is no effect of the paper's size; else the claim is unresolved. So is any
    difference measured on fewer than :data:`MIN_SEEDS_TO_DECIDE` training ``seeds`` (its interval, the sample
    bootstrap's, leaves out the training-seed spread), with the seeds that would decide it if the training
    spread were no larger than the sample spread (a lower bound)."""
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign}")
    lo, hi = ci
    band = delta * abs(scale)
    effect = {"diff": float(diff), "ci": [float(lo), float(hi)], "paper_sign": paper_sign, "margin": float(band),
              "seeds": seeds}
    if seeds >= MIN_SEEDS_TO_DECIDE:
        if lo > 0 or hi < 0:
            return Judgement(AGREES if (1 if lo > 0 else -1) == paper_sign else DISAGREES, effect=effect)
        if -band <= lo and hi <= band:
            return Judgement(NO_EFFECT, effect=effect)
    half = (hi - lo) / 2
    targets = [abs(diff)] if diff != 0 else []  # a half-width below |diff| decides the sign
    if abs(diff) < band:  # one below band - |diff| fits the interval inside +-band: no effect
        targets.append(band - abs(diff))
    return Judgement(UNRESOLVED, seeds_to_reach(half, seeds, max(targets)) if targets else None, effect)


def in_paper_units(effect: dict) -> tuple[float, float, float] | None:
    """A judged difference (:attr:`Judgement.effect`) and its 95% interval signed so that > 0 is the paper's
    direction and divided by the margin (delta times the compared value: the paper's own effect size, or
    :data:`DEFAULT_DELTA`'s): 0 is no difference, 1 an effect as large as the paper's. The verdict reads off
    it: an interval above 0 agrees, below 0 disagrees, inside [-1, 1] shows no effect. None when the margin
    is 0 (nothing to measure against)."""
    if not effect.get("margin"):
        return None
    sign, margin = effect["paper_sign"], effect["margin"]
    lo, hi = sorted(v * sign / margin for v in effect["ci"])
    return effect["diff"] * sign / margin, lo, hi


def seeds_to_reach(half: float, seeds: int, target: float, most: int = 10_000) -> int:
    """The training seeds at which a 95% half-width ``half``, measured with ``seeds`` seeds, shrinks to
    ``target`` if the spread between seeds stays as measured. From two seeds on the interval is Student's t
    across seeds (``metrics.across_seeds``): half = t(0.975, n - 1) s / sqrt(n), so the quantile shrinks with
    n too (4.30 at 3 seeds, 2.26 at 10); scaling ``half`` by sqrt(seeds / n) alone asks several times too
    many seeds of a 3-seed interval (48 against 13 in the tests). One seed: the interval is the sample
    bootstrap's (half = 1.96 s), training-seed spread unmeasured, so the estimate takes the seeds' standard
    deviation to be that s, a lower bound, and asks for at least :data:`MIN_SEEDS_TO_DECIDE` seeds. At most
    ``most``."""
    if target <= 0 or (half <= target and seeds >= MIN_SEEDS_TO_DECIDE):
        return seeds
    from scipy import stats

    # the seeds' standard deviation: measured from two seeds on, else taken to be the sample bootstrap's
    s = half * math.sqrt(seeds) / stats.t.ppf(0.975, seeds - 1) if seeds >= 2 else half / 1.96
    # t > 1.96 always, so the n the normal quantile asks for is a lower bound: start the search there
    n = min(most, max(seeds + 1, MIN_SEEDS_TO_DECIDE, math.floor((1.96 * s / target) ** 2)))
    while n < most and stats.t.ppf(0.975, n - 1) * s / math.sqrt(n) > target:
        n += 1
    return n


def seed_interval(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """The mean of one number per training seed and its 95% Student's t interval across them (None for one
    seed: its spread across seeds is unmeasured)."""
    if not len(values):
        raise ValueError("one value per training seed needed, got none")
    mean = float(sum(values) / len(values))
    if len(values) < 2:
        return mean, None
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


@dataclass
class Claim:
    """A statement of the paper checked by a computation. ``verdict`` is one of :data:`VERDICTS`;
    ``agrees`` follows from it (None only for unresolved); ``kind`` says whether it is an analytic check
    (true by construction or exact computation) or an empirical claim; ``seeds_to_resolve`` (unresolved
    empirical claims) is the number of training seeds the measured spread says would decide it; ``effect``
    (claims judged on a paired difference) the numbers behind the verdict (:attr:`Judgement.effect`)."""

    key: str
    paper_says: str
    we_find: str
    agrees: bool | None
    verdict: str = ""
    kind: str = EMPIRICAL
    seeds_to_resolve: int | None = None
    effect: dict | None = None

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = verdict_of(self.agrees)
        self.agrees = agrees_of(self.verdict)
        if self.kind not in (ANALYTIC, EMPIRICAL):
            raise ValueError(f"kind must be {ANALYTIC} or {EMPIRICAL}, got {self.kind!r}")


class Recorder:
    """Collects a notebook's metrics, claims and figures; writes nothing when ``output_dir`` is empty
    (interactive use)."""

    def __init__(self, output_dir: str | os.PathLike | None, notebook: str):
        self.output_dir = Path(output_dir) if output_dir else None
        self.notebook = notebook
        self.metrics: list[Metric] = []
        self.claims: list[Claim] = []
        self.figures: list[str] = []
        #: how the notebook's numbers were measured (reference, samples, sampler, seeds, budgets), saved with them
        self.protocol: dict = {}
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def metric(self, key: str, value: float, **kwargs) -> Metric:
        if any(m.key == key for m in self.metrics):
            raise ValueError(f"metric {key!r} recorded twice")
        m = Metric(key, value, **kwargs)
        if not math.isfinite(m.value):
            raise ValueError(f"metric {key!r} is not finite: {m.value}")
        self.metrics.append(m)
        return m

    def claim(self, key: str, paper_says: str, we_find: str, agrees: bool | None = None, *, verdict: str = "",
              kind: str = EMPIRICAL, seeds_to_resolve: int | None = None, effect: dict | None = None) -> Claim:
        """Record a checked claim, by its ``verdict`` (one of :data:`VERDICTS`) or, for a yes/no check, by
        ``agrees`` (None = unresolved). ``kind``: :data:`ANALYTIC` or :data:`EMPIRICAL`; ``effect``: the
        judged difference (:attr:`Judgement.effect`), drawn in the report's claims figure."""
        if not verdict and agrees is not None:
            agrees = bool(agrees)
        c = Claim(key, paper_says, we_find, agrees, verdict, kind, seeds_to_resolve, effect)
        self.claims.append(c)
        return c

    def figure(self, fig, name: str, dpi: int = 110) -> Path | None:
        """Save ``fig`` as ``<name>.png``, show it in the notebook, and close it."""
        import matplotlib.pyplot as plt

        path = None
        if self.output_dir is not None:
            path = self.output_dir / f"{name}.png"
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
            self.figures.append(path.name)
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(fig)
        except ImportError:
            pass
        plt.close(fig)
        return path

    def protocol_text(self) -> str:
        """The protocol as one line of Markdown ("Protocol: reference: ...; generated: ..."), empty when unset."""
        return protocol_line(self.protocol)

    def table(self) -> str:
        """The recorded metrics as a Markdown table (ours, paper's, verdict)."""
        return metrics_table([asdict(m) for m in self.metrics])

    def save(self) -> Path | None:
        if self.output_dir is None:
            return None
        payload = {
            "notebook": self.notebook,
            "protocol": self.protocol,
            "metrics": [asdict(m) for m in self.metrics],
            "claims": [asdict(c) for c in self.claims],
            "figures": self.figures,
        }
        path = self.output_dir / "metrics.json"
        atomic_write_text(path, json.dumps(payload, indent=2, default=json_default))
        return path


def protocol_line(protocol: dict) -> str:
    """``{"generated": 1000, ...}`` as "Protocol: generated: 1000; ..." ('' for none)."""
    return "Protocol: " + "; ".join(f"{k}: {v}" for k, v in protocol.items()) + "." if protocol else ""


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.{digits}g}"


def fmt_ci(ci, scale: float = 1.0) -> str:
    """A (low, high) interval as text, '—' when there is none."""
    return f"[{fmt(ci[0] * scale)}, {fmt(ci[1] * scale)}]" if ci else "—"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def metrics_table(metrics: Sequence[dict]) -> str:
    rows = ["| quantity | ours | 95% CI | paper (reference) | verdict | note |", "|---|---|---|---|---|---|"]
    for m in metrics:
        ci = fmt_ci(m.get("ci"))
        unit = f" {m['unit']}" if m.get("unit") else ""
        paper = fmt(m.get("paper")) + (f" ({m['source']})" if m.get("source") and m.get("paper") is not None else "")
        rows.append(f"| {_cell(m['key'])} | {fmt(m['value'])}{unit} | {ci} | {_cell(paper)} | {m['verdict']} "
                    f"| {_cell(m.get('note', ''))} |")
    return "\n".join(rows)


def claim_verdict(c: dict) -> str:
    """The verdict of a recorded claim (``metrics.json`` written before verdicts had four words: from ``agrees``)."""
    return c.get("verdict") or verdict_of(c.get("agrees"))


def verdict_text(c: dict) -> str:
    """The verdict with what would decide an unresolved claim."""
    v = claim_verdict(c)
    n = c.get("seeds_to_resolve")
    return f"{v} (~{n} seeds would decide it)" if v == UNRESOLVED and n else v


def claims_table(claims: Sequence[dict]) -> str:
    rows = ["| claim | kind | the paper says | we find | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        rows.append(f"| {_cell(c['key'])} | {c.get('kind', EMPIRICAL)} | {_cell(c['paper_says'])} "
                    f"| {_cell(c['we_find'])} | {verdict_text(c)} |")
    return "\n".join(rows)
