"""Command line: ``prunefuse run | demo | report``. Thin: parsing, then library calls."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import PROFILES, ConfigError, describe_params, make_config, parse_override, run_id

DEMO_METHODS = [
    {"selector": "prunefuse", "ratio": 0.5},
    {"selector": "dense"},
    {"selector": "svp"},
    {"selector": "random"},
]


def run_demo(out: str | Path = "runs/demo", *, progress: bool = True, **overrides) -> dict:
    """The main job: PruneFuse (p=0.5, fusion + KD) vs dense AL, SVP and random selection on
    the embedded default (Fashion-MNIST, ResNet-20, CPU-sized ``demo`` profile).

    Returns a dict with the run folders, the results table and the files written.
    """
    from .experiment import run_experiment
    from .plots import plot_accuracy_and_cost
    from .runs import atomic_write_text, results_table, summarize, summary_markdown

    out = Path(out)
    configs = [make_config("demo", **{**m, **overrides}) for m in DEMO_METHODS]
    started = time.perf_counter()
    dirs = []
    for i, cfg in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {run_id(cfg)}", flush=True)
        start = time.perf_counter()
        dirs.append(run_experiment(cfg, out=out, progress=progress))
        print(f"      done in {time.perf_counter() - start:.0f} s", flush=True)
    table = results_table(out)
    table = table[table["run_id"].isin([d.name for d in dirs])]
    summary = summarize(table)
    md = summary_markdown(summary)
    atomic_write_text(out / "summary.md", md + "\n")
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    figure = plot_accuracy_and_cost(table, out / "demo",
                                    title=f"{configs[0]['dataset']}, target {configs[0]['arch']}")
    atomic_write_text(out / "demo.caption.md", demo_caption(
        configs[0], table, time.perf_counter() - started))
    print(md)
    print(f"records: {out}/  figure: {figure[1]}")
    return {"runs": dirs, "table": table, "summary": summary, "figure": figure}


def demo_caption(cfg: dict, table, seconds: float) -> str:
    """What the demo figure shows and what its n can support."""
    import torch

    n = int(table.groupby("method")["seed"].nunique().min()) if not table.empty else 0
    budgets = ", ".join(f"{100 * b:g}%" for b in cfg["budgets"])
    return "\n".join([
        "# prunefuse demo: a one-seed cut of the CPU study", "",
        f"Profile `demo`: {cfg['dataset']} ({cfg['max_train']}-image pool, {cfg['max_test']} "
        f"test images), target {cfg['arch']}, {100 * cfg['initial_fraction']:g}% random initial "
        f"labels, budgets {budgets} of the pool, {cfg['target_epochs']} epochs per training "
        f"(batch {cfg['batch_size']}, {cfg['schedule']}), score {cfg['score']}. PruneFuse "
        f"p={cfg['ratio']:g} (fusion + KD) vs dense AL, SVP ({cfg['proxy_arch']} proxy) and "
        "random selection.",
        f"Seeds: n={n}. With n={n} no difference between methods is evidence: run-to-run "
        "spread at this size is a point or more. The evidence is the CPU study "
        "(`prunefuse reproduce --profile cpu`, figures/cpu in the repository).",
        "Left: final-epoch target test accuracy (%). Right: selection cost (GMACs) at the "
        "largest budget: the selectors trained on the earlier labeled sets and their pool "
        "passes (fvcore MACs, 3 per training image-epoch).",
        f"Hardware: {', '.join(sorted(set(map(str, table['device']))))}, "
        f"{torch.get_num_threads()} torch threads. This call took {seconds:.0f} s wall-clock "
        f"(runs already finished are not recomputed); built {time.strftime('%Y-%m-%d')}.", ""])


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiment import load_config_file, run_experiment

    config = load_config_file(args.config) if args.config else {}
    config.update(dict(parse_override(o) for o in args.overrides))
    cfg = make_config(args.profile, **config)
    if args.dry_run:
        print(json.dumps(cfg, indent=2))
        print(f"run id: {run_id(cfg)}")
        return 0
    path = run_experiment(cfg, out=args.out, progress=not args.no_progress)
    print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(o) for o in args.overrides)
    run_demo(args.out, progress=not args.no_progress, **overrides)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .runs import write_report

    paths = write_report(args.root, args.out)
    print(Path(paths["markdown"]).read_text())
    for p in paths.values():
        print(p)
    return 0


def _executor(args: argparse.Namespace):
    from .executors import LocalExecutor, RayExecutor

    ray_only = {"--ray-address": args.ray_address, "--num-gpus-per-run": args.num_gpus_per_run,
                "--cpus-per-run": args.cpus_per_run}
    try:
        if args.executor == "ray":
            if args.slots is not None:
                raise ValueError("--slots is for --executor local; Ray places runs by "
                                 "--num-gpus-per-run and --cpus-per-run")
            return RayExecutor(args.ray_address, num_gpus=args.num_gpus_per_run,
                               num_cpus=1.0 if args.cpus_per_run is None else args.cpus_per_run,
                               max_retries=2 if args.max_retries is None else args.max_retries)
        given = [k for k, v in ray_only.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --executor ray")
        return LocalExecutor(args.slots, max_retries=args.max_retries or 0,
                             keep_going=args.keep_going)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _describe_cost(the_plan, images_per_second: float | None) -> str:
    from .estimate import describe_cost, measure_images_per_second, plan_cost

    if images_per_second is None:
        cfg = make_config(the_plan.profile, **the_plan.runs[0].config)
        images_per_second = measure_images_per_second(cfg["arch"], cfg["dataset"],
                                                      batch_size=cfg["batch_size"])
    elif not images_per_second > 0:
        raise ConfigError(f"--images-per-second {images_per_second:g}: must be > 0")
    return describe_cost(plan_cost(the_plan, images_per_second=images_per_second),
                         images_per_second)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import NotebookRunError, describe_plan, plan, reproduce

    overrides = dict(parse_override(o) for o in args.overrides)
    only = [a.strip() for a in args.only.split(",")] if args.only else None
    if args.dry_run:
        the_plan = plan(args.profile, overrides=overrides, artefacts=only)
        print(describe_plan(the_plan))
        print(_describe_cost(the_plan, args.images_per_second))
        return 0
    out = args.out or f"runs/reproduce-{args.profile}"
    executor = _executor(args)
    try:
        reproduce(args.profile, out, figures=args.figures, overrides=overrides, artefacts=only,
                  run_figures=not args.runs_only, executor=executor)
    except NotebookRunError as err:
        print(f"prunefuse reproduce: error: {err}", file=sys.stderr)
        return 1
    except (ImportError, ConnectionError) as err:  # no ray, no cluster at --ray-address
        print(f"prunefuse reproduce: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunefuse reproduce: interrupted; the runs in flight were stopped. Run the same "
              f"command again to resume: finished runs are skipped ({out}).", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunefuse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    epilog = "parameters (key=value; lists as 0.1,0.2 or JSON):\n" + describe_params()
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="run or resume one experiment", epilog=epilog,
                         formatter_class=fmt)
    run.add_argument("config", nargs="?", help="JSON file of parameters (optional)")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--profile", choices=sorted(PROFILES), help="defaults: paper, demo, smoke")
    run.add_argument("--out", default="runs", help="parent folder of run records (default runs)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and id")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="the main job: PruneFuse vs dense AL, SVP, random on "
                          "Fashion-MNIST (CPU, about 5 minutes)", epilog=epilog,
                          formatter_class=fmt)
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    demo.add_argument("--out", default="runs/demo", help="record folder (default runs/demo)")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", help="aggregate run records: mean/std over seeds")
    report.add_argument("root", help="folder containing run records")
    report.add_argument("--out", help="where to write results.csv, summary.csv, summary.md")
    report.set_defaults(func=_cmd_report)

    from .reproduce import GRIDS

    rep = sub.add_parser("reproduce", help="regenerate every table and figure of the paper: "
                         "plan the runs, execute the notebooks with papermill", epilog=epilog,
                         formatter_class=fmt)
    rep.add_argument("overrides", nargs="*", metavar="key=value",
                     help="run parameters for every run (e.g. device=cuda); not the grid's keys")
    rep.add_argument("--profile", required=True, choices=sorted(GRIDS),
                     help="grid and run defaults: smoke (minutes), demo (CPU, tens of minutes), "
                     "paper (GPU)")
    rep.add_argument("--out", help="batch folder: runs/, notebooks/, figures/ (default "
                     "runs/reproduce-PROFILE)")
    rep.add_argument("--figures", help="write tables and figures here instead of OUT/figures")
    rep.add_argument("--only", help="comma-separated artefacts (and their runs): main_table, "
                     "figure3, figure4, figure5, ablation, cost")
    rep.add_argument("--runs-only", action="store_true", help="execute the runs, not the "
                     "artefact notebooks")
    rep.add_argument("--dry-run", action="store_true", help="print the planned runs, their "
                     "MACs and hours per artefact and in total, and exit")
    rep.add_argument("--images-per-second", type=float, help="dry run: training images per "
                     "second of the profile's target on the machine that will run the grid "
                     "(default: measured here with a few training steps)")
    rep.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local (default): runs on this machine, one per visible GPU (or "
                     "--slots); ray: one Ray task per run on a cluster (docs/cluster.md)")
    rep.add_argument("--slots", type=int, help="local: runs at once (default: one per visible "
                     "GPU, else 1)")
    rep.add_argument("--ray-address", help="ray: the cluster to join (auto, HOST:6379); default: "
                     "start a local one for this batch")
    rep.add_argument("--num-gpus-per-run", type=float, help="ray: GPUs per run, a fraction lets "
                     "small runs share one (0.5, 0.25); default 1 if the cluster has GPUs, else 0")
    rep.add_argument("--cpus-per-run", type=float, help="ray: CPUs per run (default 1)")
    rep.add_argument("--max-retries", type=int, help="extra attempts of a failed run (default: "
                     "2 with ray, 0 local); a retry resumes the run")
    rep.add_argument("--keep-going", action="store_true", help="local: finish the other runs "
                     "when one fails for good (ray always does)")
    rep.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None) and "=" in args.config:
        args.overrides.insert(0, args.config)  # `prunefuse run key=value` without a file
        args.config = None
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"prunefuse {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
