"""Table 1 at a profile's scale (section 4): single-resolution U-Nets at each target resolution and layered
models with the same base, trained on the same data with the same budget in images seen, then evaluated
with one protocol (FID, KID, IS-style, text alignment) and compared on FLOPs.

The rows follow the paper's: ``single<r0>`` (the base model, K = 1), ``single<r1>``, ``layered<r1>``,
``single<r2>``, ``layered<r2>`` for a preset's resolutions r0 < r1 < r2.

    ldlib.evaluation.data_spec -> train_rows (runs cache) -> evaluate_rows (an ldlib.evaluation.Evaluator)
    -> record_table1 / table_markdown
"""

from __future__ import annotations

from dataclasses import dataclass

from . import paper
from .config import DiffusionConfig, UNetConfig, get_preset, model_config
from .evaluation import Evaluation, Evaluator, Judge, better
from .flops import count_flops
from .results import Recorder, fmt, fmt_ci
from .runs import budget_config, trained_model
from .train import TrainResult

#: (kind, levels) of each row, in the paper's order.
ROWS = (("single", 1), ("single", 2), ("layered", 2), ("single", 3), ("layered", 3))


@dataclass
class Row:
    name: str
    model: UNetConfig
    flops: int
    run: TrainResult | None = None
    evaluation: Evaluation | None = None


def rows(preset: str) -> list[Row]:
    """The five models of Table 1 for ``preset``, with their forward FLOPs per image."""
    res = get_preset(preset).resolutions
    out = []
    for kind, levels in ROWS:
        cfg = model_config(preset, levels, single=kind == "single" and levels > 1)
        out.append(Row(f"{kind}{res[levels - 1]}", cfg, count_flops(cfg)))
    return out


# ----------------------------------------------------------------------------------------- training


def train_rows(preset: str, data: dict, budget_images: int, batch_size: int, lr: float, seed: int = 0,
               text_encoder: str = "minilm", progress: bool = True) -> list[Row]:
    """Train (or fetch from the run cache) every row with the same number of images seen."""
    training = budget_config(budget_images, batch_size, lr, seed, text_encoder)
    table = rows(preset)
    for row in table:
        diffusion = DiffusionConfig.paper(row.model.resolutions)
        row.run = trained_model(f"{preset}-{row.name}", row.model, diffusion, training, data, progress=progress)
    return table


# --------------------------------------------------------------------------------------- evaluation


def evaluate_rows(table: list[Row], evaluator: Evaluator, progress: bool = True) -> list[Row]:
    """Score every trained row with one protocol (each against the reference at its own resolution)."""
    for row in table:
        row.evaluation = evaluator(row.run)
    return table


# ---------------------------------------------------------------------------------------- reporting


def table_markdown(table: list[Row]) -> str:
    """Our Table 1 (value and 95% interval per metric) with the paper's row beside it, labelled."""
    head = ("| model | GFLOPs | FID | 95% CI | KID ×10³ | 95% CI | IS (EffNet) | 95% CI | alignment | 95% CI "
            "| *paper row* | *paper GFLOPs* | *paper FID* | *paper IS* |")
    lines = [head, "|" + "---|" * 14]
    for i, row in enumerate(table):
        ref_name, ref = list(paper.TABLE1.items())[i]
        s = row.evaluation.scores
        ev = row.evaluation
        lines.append(
            f"| {row.name} | {row.flops / 1e9:.3g} | {fmt(s.fid)} | {fmt_ci(s.fid_ci)} | {fmt(s.kid * 1e3)} "
            f"| {fmt_ci(s.kid_ci, 1e3)} | {fmt(s.inception_score)} | {fmt_ci(s.is_ci)} | {fmt(ev.alignment)} "
            f"| {fmt_ci(ev.alignment_ci)} | *{ref_name}* | *{ref['flops'] / 1e9:.4g}* | *{ref['fid']}* "
            f"| *{ref['is'][0]} ± {ref['is'][1]}* |")
    return "\n".join(lines)


def record_table1(rec: Recorder, table: list[Row], preset: str, judge: Judge | None = None,
                  floors: dict[int, tuple[float, float]] | None = None) -> str:
    """Metrics for every cell, the paper's Table 1 claims checked with our intervals, and a verdict text."""
    at_paper_scale = preset == "paper"
    for i, row in enumerate(table):
        ref_name = list(paper.TABLE1)[i]
        ref = paper.TABLE1[ref_name] if at_paper_scale else None
        s, ev = row.evaluation.scores, row.evaluation
        note = "" if at_paper_scale else f"paper's {ref_name} on COCO is not comparable at this scale"
        rec.metric(f"FID {row.name}", s.fid, ci=s.fid_ci, paper=ref and ref["fid"], source="Table 1", note=note)
        rec.metric(f"KID {row.name}", s.kid, ci=s.kid_ci)
        rec.metric(f"IS (EfficientNet-Lite0) {row.name}", s.inception_score, ci=s.is_ci,
                   note="not comparable to published Inception Scores")
        if ev.alignment is not None:
            rec.metric(f"alignment {row.name}", ev.alignment, ci=ev.alignment_ci, note=judge.label if judge else "")
    if judge is not None:
        rec.metric("alignment on real reference images (ceiling)", judge.ceiling, note=judge.label)
    for res, (fid, kid) in (floors or {}).items():
        rec.metric(f"FID floor: two halves of the reference @ {res}px", fid, note="noise floor at half the sample count")
        rec.metric(f"KID floor: two halves of the reference @ {res}px", kid)

    # rows come in the paper's order, so a layered row's single-resolution rival sits just before it
    paper_rows = list(paper.TABLE1.values())
    findings = []
    for i, layered in enumerate(table):
        if not layered.name.startswith("layered"):
            continue
        single, p_l, p_s = table[i - 1], paper_rows[i], paper_rows[i - 1]
        res, p_res = layered.model.resolutions[-1], p_l["resolution"]
        a, b = layered.evaluation.scores, single.evaluation.scores
        for metric, va, ca, vb, cb, pa, pb in (
            ("FID", a.fid, a.fid_ci, b.fid, b.fid_ci, p_l["fid"], p_s["fid"]),
            ("IS", a.inception_score, a.is_ci, b.inception_score, b.is_ci, p_l["is"][0], p_s["is"][0]),
        ):
            verdict = better(layered.evaluation, single.evaluation, metric.lower())
            word = {True: "better than", False: "worse than", None: "not distinguishable from"}[verdict]
            rec.claim(f"layered beats single on {metric} @ {res}px",
                      f"layered{p_res} {metric} {pa} vs single{p_res} {pb} (Table 1)",
                      f"layered{res} {fmt(va)} {fmt_ci(ca)} vs {single.name} {fmt(vb)} {fmt_ci(cb)}: {word}", verdict)
            findings.append(f"{metric} @ {res}px: layered {word} single ({fmt(va)} vs {fmt(vb)})")
    return "; ".join(findings)
