"""``results/<profile>/report.html``: one page a reader can open to see what was reproduced.

Built from the same files as ``summary.md`` (each notebook's ``metrics.json`` and ``provenance.json``): a
tally of the paper's claims by verdict (empirical claims apart from analytic checks), then per notebook its
checked claims (agrees / disagrees / no effect / unresolved), its numbers with 95% intervals beside the paper's (labelled reference), its figures, and a link
to the executed notebook. Figures are linked relative to the page, so the page works wherever the results
folder is copied, and the repository stores each PNG once.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping

from ..runtime.files import atomic_write_text, read_json
from .parameters import INDICATIVE, NOTEBOOKS, NotebookSpec
from .recorder import (ANALYTIC, EMPIRICAL, MIN_SEEDS_TO_DECIDE, UNRESOLVED, VERDICT_LEGEND, VERDICTS, claim_verdict,
                       fmt, fmt_ci, in_paper_units, protocol_line, verdict_text)

#: the figure of every empirical claim's paired difference (:func:`write_claims_figure`), beside summary.md
CLAIMS_FIGURE = "claims.png"

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: .5em .8em; }
.protocol { font-size: 13px; color: #555; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.agrees { background: #e3f4e3; } .disagrees { background: #fbe3e3; } .unresolved { background: #f6f0d8; }
.no-effect { background: #e6ecf6; }
.ref { color: #666; font-style: italic; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .figs figure { margin: 0; max-width: 34em; }
.figs img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 12px; color: #555; }
.tally span { display: inline-block; padding: .2em .6em; margin-right: .5em; border-radius: 3px; }
"""

# Lets a headless browser (and a reader) see how many figures actually loaded.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
"""


def _css(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _claims(claims: list[dict]) -> str:
    rows = "".join(
        f'<tr class="{_css(claim_verdict(c))}"><td>{html.escape(c["key"])}</td><td>{c.get("kind", EMPIRICAL)}</td>'
        f'<td>{html.escape(c["paper_says"])}</td><td>{html.escape(c["we_find"])}</td>'
        f'<td><b>{html.escape(verdict_text(c))}</b></td></tr>' for c in claims)
    return ("<table><tr><th>claim</th><th>kind</th><th>the paper says</th><th>we find</th><th>verdict</th></tr>"
            f"{rows}</table>")


def tally(claims: list[dict]) -> dict[str, dict[str, int]]:
    """Claims counted by kind (analytic checks apart from empirical claims), then by verdict."""
    out = {kind: dict.fromkeys(VERDICTS, 0) for kind in (EMPIRICAL, ANALYTIC)}
    for c in claims:
        out[c.get("kind", EMPIRICAL)][claim_verdict(c)] += 1
    return out


def too_few_seeds(claims: list[dict]) -> int:
    """The unresolved claims whose paired difference rests on fewer than ``MIN_SEEDS_TO_DECIDE`` training seeds:
    unresolved for that alone, whatever their interval (``recorder.judge_difference``)."""
    return sum(1 for c in claims if c.get("kind", EMPIRICAL) == EMPIRICAL and claim_verdict(c) == UNRESOLVED
               and (c.get("effect") or {}).get("seeds", MIN_SEEDS_TO_DECIDE) < MIN_SEEDS_TO_DECIDE)


_TALLY_LABELS = ((EMPIRICAL, "Empirical claims (trained models)"),
                 (ANALYTIC, "Analytic checks (true by construction or exact computation)"))


def _too_few_text(kind: str, few: int) -> str:
    return (f" ({few} of the unresolved rest on fewer than {MIN_SEEDS_TO_DECIDE} training seeds)"
            if kind == EMPIRICAL and few else "")


def _tally_html(claims: list[dict]) -> str:
    counts, few = tally(claims), too_few_seeds(claims)
    lines = []
    for kind, label in _TALLY_LABELS:
        spans = "".join(f"<span class='{_css(v)}'>{n} {v}</span>" for v, n in counts[kind].items())
        lines.append(f"<p class=tally>{label}, {sum(counts[kind].values())}: {spans}"
                     f"{html.escape(_too_few_text(kind, few))}</p>")
    return "".join(lines)


def tally_markdown(claims: list[dict]) -> list[str]:
    """The tally of :func:`tally` as Markdown lines, one per kind of claim, for ``summary.md``, with the
    empirical claims unresolved for want of training seeds (:func:`too_few_seeds`)."""
    counts, few = tally(claims), too_few_seeds(claims)
    return [f"- {label}, {sum(counts[kind].values())}: " + ", ".join(f"{n} {v}" for v, n in counts[kind].items())
            + _too_few_text(kind, few) for kind, label in _TALLY_LABELS]


def _metrics(metrics: list[dict]) -> str:
    rows = []
    for m in metrics:
        ci = fmt_ci(m.get("ci"))
        paper = fmt(m.get("paper")) + (f" ({m['source']})" if m.get("source") and m.get("paper") is not None else "")
        rows.append(f"<tr><td>{html.escape(m['key'])}</td><td class=num>{fmt(m['value'])} {html.escape(m.get('unit', ''))}"
                    f"</td><td class=num>{ci}</td><td class='num ref'>{html.escape(paper)}</td><td>{m['verdict']}</td>"
                    f"<td>{html.escape(m.get('note', ''))}</td></tr>")
    return ("<table><tr><th>quantity</th><th>ours</th><th>95% CI</th><th>paper (reference)</th><th>verdict</th>"
            f"<th>note</th></tr>{''.join(rows)}</table>")


def _notebook_names(profile_dir: Path) -> list[str]:
    """The notebooks with results in ``profile_dir`` (a failed run's folder ends in ``.failed``)."""
    return sorted(p.name for p in profile_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not p.name.endswith(".failed")) if profile_dir.exists() else []


def write_claims_figure(profile_dir: Path) -> Path | None:
    """``claims.png`` in ``profile_dir``: every claim judged on a paired difference (``Claim.effect``), in
    the paper's units and coloured by verdict (``plots.claims_forest``), labelled with its notebook's number.
    Removed, and None returned, when no claim has one (results written before claims kept their numbers), so
    no stale figure outlives its results."""
    import matplotlib.pyplot as plt

    from .plots import claims_forest

    rows = []
    for name in _notebook_names(profile_dir):
        for c in read_json(profile_dir / name / "metrics.json").get("claims", []):
            units = in_paper_units(c["effect"]) if c.get("effect") else None
            if units is not None:
                rows.append((name[:2], c["key"], claim_verdict(c), units))
    path = profile_dir / CLAIMS_FIGURE
    if not rows:
        path.unlink(missing_ok=True)
        return None
    fig = claims_forest(rows)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def build_report(profile_dir: Path, registry: Mapping[str, NotebookSpec] = NOTEBOOKS) -> str:
    """The report's HTML for the results in ``profile_dir``."""
    profile = profile_dir.name
    names = _notebook_names(profile_dir)
    claims = []
    status_rows, sections = [], []
    for name in names:
        folder = profile_dir / name
        prov, metrics = read_json(folder / "provenance.json"), read_json(folder / "metrics.json")
        git = prov.get("git") or {}
        commit = (git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")
        failed = (profile_dir / f"{name}.failed").exists()
        status = "last run failed; older results shown" if failed else prov.get("status", "?")
        status_rows.append(f"<tr><td><a href='{name}/{name}.ipynb'>{name}</a></td><td>{html.escape(status)}</td>"
                           f"<td>{commit}</td><td>{prov.get('started_utc', '—')}</td>"
                           f"<td class=num>{prov.get('wall_time_s', '—')} s</td></tr>")
        if not metrics:
            continue
        claims += metrics.get("claims", [])
        title = registry[name].title if name in registry else name
        figs = "".join(f"<figure><a href='{name}/{f}'><img src='{name}/{f}' alt='{html.escape(f)}' loading='eager'></a>"
                       f"<figcaption>{html.escape(f)}</figcaption></figure>" for f in metrics.get("figures", []))
        sections.append(
            f"<section id='{name}'><h2>{html.escape(name)}</h2><p>{html.escape(title)} — "
            f"<a href='{name}/{name}.ipynb'>executed notebook</a>, <a href='{name}/metrics.json'>metrics.json</a></p>"
            + (f"<p class=protocol>{html.escape(protocol_line(metrics['protocol']))}</p>" if metrics.get("protocol") else "")
            + (f"<h3>The paper's claims, checked</h3>{_claims(metrics['claims'])}" if metrics.get("claims") else "")
            + (f"<h3>Numbers</h3>{_metrics(metrics['metrics'])}" if metrics.get("metrics") else "")
            + (f"<h3>Figures</h3><div class=figs>{figs}</div>" if figs else "") + "</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ldlib reproduction report: {profile}</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head>
<body>
<h1>Layered Diffusion, reproduced: profile <code>{profile}</code></h1>
{f'<p class=warn><b>Indicative results</b> ({html.escape(INDICATIVE[profile])}).</p>' if profile in INDICATIVE else ''}
<p>Khwaja et al., <i>Layered Diffusion Model for One-Shot High Resolution Text-to-Image Synthesis</i>
(arXiv 2407.06079). Every number here was computed by the linked notebook; the paper's numbers appear only in
the column <i>paper (reference)</i>. {html.escape(VERDICT_LEGEND)}</p>
{_tally_html(claims)}
{_claims_figure_html(profile_dir)}
<table><tr><th>notebook</th><th>status</th><th>commit</th><th>started (UTC)</th><th>wall time</th></tr>
{''.join(status_rows)}</table>
{''.join(sections)}
</body></html>
"""


def _claims_figure_html(profile_dir: Path) -> str:
    if not (profile_dir / CLAIMS_FIGURE).exists():
        return ""
    return (f"<figure><a href='{CLAIMS_FIGURE}'><img src='{CLAIMS_FIGURE}' alt='every empirical claim' "
            "style='max-width:100%' loading='eager'></a><figcaption>Each empirical claim's paired difference "
            "with its 95% interval, divided by the paper's effect size and signed so that right is the paper's "
            "direction; shaded: within &plusmn;1, no effect of the paper's size.</figcaption></figure>")


def write_report(profile_dir: Path, registry: Mapping[str, NotebookSpec] = NOTEBOOKS) -> Path:
    """``report.html`` in ``profile_dir``, with the claims figure (:func:`write_claims_figure`) rebuilt first."""
    write_claims_figure(profile_dir)
    path = profile_dir / "report.html"
    atomic_write_text(path, build_report(profile_dir, registry))
    return path


# ------------------------------------------------------------------------------------ headless browser


def find_chromium() -> str | None:
    """A headless-capable Chromium (Debian: ``apt-get install chromium``), or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(args: list[str], timeout: float = 90) -> str:
    """Run headless Chromium with ``args`` in a fresh profile and return what it printed (e.g. ``--dump-dom``)."""
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found: install it (Debian: apt-get install chromium) to render pages headless")
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state shared with the user's browser
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1800, timeout: float = 90) -> Path:
    """A PNG of ``page`` as headless Chromium draws it."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    chromium([f"--screenshot={png}", f"--window-size={width},{height}", Path(page).resolve().as_uri()], timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
