"""Notebook 04, model stacking (section 3.2, Table A.2, Fig. A.7): stacked vs randomly initialised models,
compared on FID and text alignment across training seeds, under two budget conventions:

- *equal images for the new model*: the stacked model trains ``B`` images after its initialisation, like the
  random one (the paper's comparison: every stage trained 500k steps);
- *equal total images*: the random model trains ``2B``, the stacked model's ``B`` plus its source's ``B``
  (a fair price for the source's training).

The paper's sentence ("we observed an increase in FID when using randomly initialized models. Despite this,
... enhanced text-image alignment when the models were pre-loaded") reads both ways on FID, so both readings
are judged from the same paired difference. The stacking itself is ``ldlib.stacking``; the runs are trained
by ``ldlib.reproduction.study.Study.replicate(levels, init_from=...)``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..evaluation import Evaluation
from .recorder import Recorder
from .study import compare, record_scores

#: the two readings of the paper's FID sentence: (claim suffix, stacking expected to give the better FID?)
FID_READINGS = (("stacking lowers FID (random models' FID rose)", True),
                ("stacking raises FID (fidelity traded for alignment)", False))


def record_stacking(rec: Recorder, evals: Mapping[str, Sequence[Evaluation]],
                    pairs: Sequence[tuple[str, str, str]]) -> str:
    """Table A.2 / Fig. A.7: each (stacked, random, convention) pair compared on alignment (where measured) and
    on FID under both readings; ``evals`` holds one evaluation per training seed for every model."""
    for name, evs in evals.items():
        record_scores(rec, name, evs)
    found = []
    for stacked, fresh, convention in pairs:
        arms = (stacked, evals[stacked]), (fresh, evals[fresh])
        if all(e.alignment is not None for e in (*evals[stacked], *evals[fresh])):
            found.append(compare(rec, f"{stacked} has better alignment than {fresh} ({convention})",
                                 "pre-loaded models showed enhanced text-image alignment (§3.2, Fig. A.7)",
                                 *arms, "alignment", True))
        for reading, stacked_better in FID_READINGS:
            found.append(compare(rec, f"{stacked} vs {fresh} ({convention}): {reading}",
                                 "\"we observed an increase in FID when using randomly initialized models\" "
                                 "(§3.2, Table A.2); read both ways", *arms, "fid", stacked_better))
    return "; ".join(found)
