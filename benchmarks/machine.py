"""What the benchmark scripts in this folder share: the machine they ran on, and how a report is written."""

from __future__ import annotations

from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def save_report(out: str | Path, report: dict, markdown: str) -> None:
    """Write ``<out>.json`` (the numbers) and ``<out>.md`` (the table), and print the table."""
    import json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
