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

from dataclasses import replace
from typing import Mapping, Sequence

from ..evaluation import Evaluation
from .recorder import Recorder
from .study import Budget, Study, compare, record_scores

#: the two readings of the paper's FID sentence: (claim suffix, stacking expected to give the better FID?)
FID_READINGS = (("stacking lowers FID (random models' FID rose)", True),
                ("stacking raises FID (fidelity traded for alignment)", False))


def equal_total(study: Study) -> Budget:
    """The random models' budget under *equal total images* for one stacking round: twice the study's."""
    return replace(study.budget, images=2 * study.budget.images)


def trained_arms(study: Study, resolutions: Sequence[int]) -> tuple[dict[str, list[Evaluation]], list[tuple[str, str, str]]]:
    """Table A.2's models, each trained once per training seed of ``study`` and scored with its protocol: at the
    2- and 3-resolution targets (``resolutions``, the preset's, base first) a random model at the study's budget
    B, one at :func:`equal_total` (2B), and the stacked ones (from the base model; at 3 resolutions (a) from the
    stacked and (b) from the random 2-resolution model), each trained B images after its initialisation.
    Returns the evaluations by model name (in that order) and the (stacked, random, convention) pairs
    :func:`record_stacking` compares ((a)'s lineage saw 3B: it has no equal-total twin)."""
    double, res = equal_total(study), resolutions
    base = study.replicate(1)
    random2, random2_total = study.replicate(2), study.replicate(2, budget=double)
    stacked2 = study.replicate(2, init_from=base, label="stacked")
    random3, random3_total = study.replicate(3), study.replicate(3, budget=double)
    stacked3_a = study.replicate(3, init_from=stacked2, label="stacked-a")
    stacked3_b = study.replicate(3, init_from=random2, label="stacked-b")
    b2 = double.images
    runs = {f"random {res[1]}": random2, f"random {res[1]} ({b2} images)": random2_total,
            f"stacked {res[1]} (from {res[0]})": stacked2, f"random {res[2]}": random3,
            f"random {res[2]} ({b2} images)": random3_total, f"stacked {res[2]} (a: from stacked {res[1]})": stacked3_a,
            f"stacked {res[2]} (b: from random {res[1]})": stacked3_b}
    names = list(runs)
    same, total = "equal images for the new model", f"equal total images: random trains {b2}"
    pairs = [(names[2], names[0], same), (names[2], names[1], total), (names[5], names[3], same),
             (names[6], names[3], same), (names[6], names[4], total)]
    return {name: study.evaluate(arm) for name, arm in runs.items()}, pairs


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
