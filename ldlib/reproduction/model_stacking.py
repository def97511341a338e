"""Notebook 04, model stacking (section 3.2, Table A.2, Fig. A.7): stacked vs randomly initialised models at
equal budget, compared on FID and text alignment. The stacking itself is ``ldlib.stacking``; the runs are
trained by ``ldlib.reproduction.study.Study.train(levels, init_from=...)``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..evaluation import Evaluation
from .recorder import Recorder
from .study import compare, record_scores


def record_stacking(rec: Recorder, evals: Mapping[str, Evaluation], pairs: Sequence[tuple[str, str]]) -> str:
    """Table A.2 / Fig. A.7: stacked vs randomly initialised models at equal budget, FID and alignment."""
    for name, ev in evals.items():
        record_scores(rec, name, ev)
    found = []
    for stacked, fresh in pairs:
        found.append(compare(rec, f"{stacked} has better alignment than {fresh}",
                             "pre-loaded models showed enhanced text-image alignment (§3.2, Fig. A.7)",
                             (stacked, evals[stacked]), (fresh, evals[fresh]), "alignment", True))
        found.append(compare(rec, f"{stacked} has worse FID than {fresh}",
                             "stacking traded fidelity for alignment: FID rose (§3.2, Table A.2; the sentence is "
                             "ambiguous about which model's FID rose)",
                             (stacked, evals[stacked]), (fresh, evals[fresh]), "fid", False))
    return "; ".join(found)
