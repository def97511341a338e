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


AGREES, DISAGREES, UNRESOLVED = "agrees", "disagrees", "unresolved"


def verdict_of(agrees: bool | None) -> str:
    """A claim's verdict word: ``agrees`` True, False or None (our measurement cannot decide)."""
    return UNRESOLVED if agrees is None else AGREES if agrees else DISAGREES


@dataclass
class Claim:
    """A qualitative statement of the paper checked by a computation: ``agrees`` is our finding, or
    ``agrees is None`` when our measurement cannot decide it (confidence intervals overlap)."""

    key: str
    paper_says: str
    we_find: str
    agrees: bool | None

    @property
    def verdict(self) -> str:
        return verdict_of(self.agrees)


class Recorder:
    """Collects a notebook's metrics, claims and figures; writes nothing when ``output_dir`` is empty
    (interactive use)."""

    def __init__(self, output_dir: str | os.PathLike | None, notebook: str):
        self.output_dir = Path(output_dir) if output_dir else None
        self.notebook = notebook
        self.metrics: list[Metric] = []
        self.claims: list[Claim] = []
        self.figures: list[str] = []
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

    def claim(self, key: str, paper_says: str, we_find: str, agrees: bool | None) -> Claim:
        """Record a checked claim; ``agrees=None`` means unresolved at our sample size."""
        c = Claim(key, paper_says, we_find, None if agrees is None else bool(agrees))
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

    def table(self) -> str:
        """The recorded metrics as a Markdown table (ours, paper's, verdict)."""
        return metrics_table([asdict(m) for m in self.metrics])

    def save(self) -> Path | None:
        if self.output_dir is None:
            return None
        payload = {
            "notebook": self.notebook,
            "metrics": [asdict(m) for m in self.metrics],
            "claims": [asdict(c) for c in self.claims],
            "figures": self.figures,
        }
        path = self.output_dir / "metrics.json"
        atomic_write_text(path, json.dumps(payload, indent=2, default=json_default))
        return path


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


def claims_table(claims: Sequence[dict]) -> str:
    rows = ["| claim | the paper says | we find | verdict |", "|---|---|---|---|"]
    for c in claims:
        rows.append(f"| {_cell(c['key'])} | {_cell(c['paper_says'])} | {_cell(c['we_find'])} | {verdict_of(c['agrees'])} |")
    return "\n".join(rows)
