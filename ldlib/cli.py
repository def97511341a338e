"""The ``ldlib`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .experiments import NOTEBOOKS, PROFILES, ParameterError


def _reproduce(args: argparse.Namespace) -> int:
    from .runner import PROJECT_ROOT, reproduce

    results = reproduce(
        args.profile,
        only=args.only,
        overrides=args.param,
        results_dir=args.results or PROJECT_ROOT / "results",
        notebooks_dir=args.notebooks or PROJECT_ROOT / "notebooks",
        seed=args.seed,
        progress=not args.quiet,
    )
    failed = [r for r in results if not r.ok]
    total = sum(r.wall_s for r in results)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {total:.1f}s")
    for r in failed:
        print(f"  {r.name}: {r.error.splitlines()[0] if r.error else 'failed'} (see {r.folder})")
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    for spec in NOTEBOOKS.values():
        print(f"{spec.name}: {spec.title}")
        for name, p in spec.all_params().items():
            per_profile = "  ".join(f"{prof}={spec.profiles[prof].get(name, '(runner)')}" for prof in PROFILES)
            print(f"    {name}: {p.doc}; {p.allowed()}\n        {per_profile}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from .runner import PROJECT_ROOT, write_summary

    folder = Path(args.results or PROJECT_ROOT / "results") / args.profile
    if not folder.is_dir():
        print(f"no results for profile {args.profile!r} in {folder}; run `ldlib reproduce --profile {args.profile}`",
              file=sys.stderr)
        return 2
    print(write_summary(folder))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ldlib", description="Layered diffusion (arXiv 2407.06079), reproduced.")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="run the notebooks headless and write results/<profile>/")
    rep.add_argument("--profile", choices=PROFILES, default="default")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="notebook names or unique prefixes (e.g. 01)")
    rep.add_argument("-p", "--param", action="append", default=[], metavar="[NOTEBOOK.]NAME=VALUE",
                     help="override a parameter (Python literal), for all selected notebooks that have it")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--results", type=Path, help="results folder (default: the clone's results/)")
    rep.add_argument("--notebooks", type=Path, help="notebooks folder (default: the clone's notebooks/)")
    rep.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    rep.set_defaults(func=_reproduce)

    lst = sub.add_parser("list", help="list the notebooks, their parameters and per-profile values")
    lst.set_defaults(func=_list)

    summ = sub.add_parser("summary", help="rebuild results/<profile>/summary.md from existing results")
    summ.add_argument("--profile", choices=PROFILES, default="default")
    summ.add_argument("--results", type=Path)
    summ.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, FileNotFoundError, RuntimeError) as exc:
        print(f"ldlib: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
