"""Command line: ``prunefuse run | demo | report | reproduce``. Thin: parsing, then library
calls. A user's error is one line and exit code 2 (``--debug`` adds the traceback)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from . import __version__
from .batch.demo import DEMO_METHODS, run_demo  # noqa: F401 (run_demo: also prunefuse.cli.run_demo)
from .run.config import (
    PARAMS,
    PROFILES,
    ConfigError,
    describe_params,
    describe_profiles,
    make_config,
    parse_override,
    profile_summary,
    run_id,
)
from .run.records import DEFAULT_OUT, DEMO_OUT, LOG, DiskFullError, RunBusyError, batch_out

DESCRIPTION = """PruneFuse: prune a dense CNN at initialization, let the small pruned network
choose which samples to label (active learning), fuse it back into the dense network and
train that with knowledge distillation; with dense active learning, SVP and random selection
as baselines. Every run writes a record; tables and figures are made from records.

  prunefuse demo                        the main job: four methods on Fashion-MNIST, CPU
  prunefuse run --profile cpu ratio=0.7 one experiment (run --help: every parameter)
  prunefuse report runs/                mean and std over seeds of the records under runs/
  prunefuse reproduce --profile smoke   every table and figure of the paper, from scratch
"""

def _cmd_run(args: argparse.Namespace) -> int:
    from .run.experiment import load_config_file, preflight, run_experiment

    config = load_config_file(args.config) if args.config else {}
    profile = args.profile
    if "profile" in config:
        from_file = config.pop("profile")
        if profile is not None and profile != from_file:
            raise ConfigError(f"--profile {profile} contradicts \"profile\": {from_file!r} in "
                              f"{args.config}; give one of them")
        profile = from_file
    config.update(dict(parse_override(o) for o in args.overrides))
    if profile is None and not set(PARAMS) <= set(config):  # a run's config.json has them all
        raise ConfigError(f"--profile: required, one of {sorted(PROFILES)} ("
                          + "; ".join(profile_summary(p) for p in PROFILES)
                          + "), or a \"profile\" key in the config file")
    cfg = make_config(profile, **config)
    if args.dry_run:
        preflight(cfg, data=False)
        print(json.dumps(cfg, indent=2))
        print(f"run id: {run_id(cfg)}")
        return 0
    check_out_folder(args.out)
    run_dir = Path(args.out) / run_id(cfg)
    # Printed with the run's first line, once its checks have passed: a refused run prints
    # its one error line and nothing else.
    header = [f"profile {profile or '(none: every parameter given)'}, run {run_dir}"]
    log = _log_to(run_dir)

    def log_with_header(line: str) -> None:
        while header:
            print(header.pop(), flush=True)
        log(line)

    try:
        run_experiment(cfg, out=args.out, progress=not args.no_progress, log=log_with_header)
    except KeyboardInterrupt:
        if run_dir.is_dir():
            _log_to(run_dir)("interrupted")
        print(f"prunefuse run: interrupted; run the same command again to resume after the "
              f"last committed step ({run_dir})", file=sys.stderr)
        return 130
    except BaseException as err:
        if run_dir.is_dir() and not isinstance(err, (ConfigError, RunBusyError)):
            with open(run_dir / LOG, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} failed:\n{traceback.format_exc()}")
        raise
    _log_to(run_dir)(result_line(run_dir))
    return 0


def check_out_folder(path: str | Path, flag: str = "--out") -> None:
    """Refuse, in one line, an output folder that is a file or lies under one (before any
    compute: ``mkdir`` would fail only after the first step)."""
    for p in (Path(path), *Path(path).parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == Path(path) else f"lies under the file {p}"
            raise ConfigError(f"{flag} {path}: {what}; give a folder (created if needed)")


def flag_as_parameter(argv: list[str]) -> str | None:
    """The one-line hint for a run parameter written as an option (``--ratio 0.5``), or
    None: parameters are ``key=value`` words."""
    for i, tok in enumerate(argv):
        name, eq, value = tok.partition("=")
        key = name[2:].replace("-", "_")
        if name.startswith("--") and key in PARAMS:
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "VALUE")
            return f"{name}: run parameters are key=value words, not options; write {key}={value}"
    return None


def _log_to(run_dir: Path):
    """A ``log`` for :func:`run_experiment`: print each line and append it, timestamped, to
    the run's ``log.txt`` (the same file the executors of ``reproduce`` append to)."""
    def log(line: str) -> None:
        print(line, flush=True)
        with open(run_dir / LOG, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    return log


def result_line(run_dir: Path) -> str:
    """One line: the final test accuracy at the last evaluated budget and the selection cost
    behind it (docs/method.md, "Cost accounting")."""
    from .run.records import METRICS, read_jsonl

    targets = [m for m in read_jsonl(run_dir / METRICS) if m.get("kind") == "target"]
    last = targets[-1]
    return (f"result: test accuracy {100 * last['final_test_acc']:.2f}% at budget "
            f"{100 * last['budget']:g}% of the pool ({last['labeled']} labeled images); "
            f"selection {last['cumulative_selection_macs'] / 1e9:.3f} GMACs, "
            f"{last['cumulative_selection_seconds']:.1f} s")


def _cmd_demo(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(o) for o in args.overrides)
    check_out_folder(args.out)
    run_demo(args.out, progress=not args.no_progress, **overrides)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .run.records import find_runs, write_report

    problems: list[str] = []
    if args.strict:
        find_runs(args.root, problems=problems)
        for line in problems:
            print(f"prunefuse report: error: {line}", file=sys.stderr)
        if problems:
            print(f"prunefuse report: error: {len(problems)} record(s) cannot be read; nothing "
                  "written (--strict)", file=sys.stderr)
            return 2
    paths = write_report(args.root, args.out, problems=problems)
    for line in problems:
        print(f"prunefuse report: warning: {line}", file=sys.stderr)
    print(Path(paths["markdown"]).read_text())
    for p in paths.values():
        print(p)
    return 0


def _executor(args: argparse.Namespace):
    """The executor ``--executor`` names, built from its own options; another executor's
    option is refused."""
    from .batch.executors import EXECUTORS

    cls = EXECUTORS[args.executor]
    mine = {o.flag for o in cls.options}
    given = {o.flag: (o.arg, getattr(args, o.arg)) for c in EXECUTORS.values() for o in c.options
             if getattr(args, o.arg) is not None}
    foreign = sorted(set(given) - mine)
    if foreign:
        owners = {o.flag: n for n, c in EXECUTORS.items() for o in c.options}
        raise ConfigError("; ".join(f"{f}: only with --executor {owners[f]}" for f in foreign))
    try:
        return cls(**dict(given.values()))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _describe_cost(the_plan, images_per_second: float | None) -> str:
    from .data import dataset_options
    from .run.estimate import describe_cost, measure_images_per_second, plan_cost

    if images_per_second is None:
        cfg = make_config(the_plan.profile, **the_plan.runs[0].config)
        images_per_second = measure_images_per_second(
            cfg["arch"], cfg["dataset"], batch_size=cfg["batch_size"],
            data_root=cfg["data_root"], options=dataset_options(cfg))
    elif not images_per_second > 0:
        raise ConfigError(f"--images-per-second {images_per_second:g}: must be > 0")
    return describe_cost(plan_cost(the_plan, images_per_second=images_per_second),
                         images_per_second)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .batch.execute import NotebookRunError
    from .batch.grid import describe_plan, plan
    from .batch.reproduce import reproduce

    overrides = dict(parse_override(o) for o in args.overrides)
    only = [a.strip() for a in args.only.split(",")] if args.only else None
    if args.extended:
        from .analysis.artefacts import ARTEFACTS
        from .batch.grid import default_artefacts

        base = default_artefacts(args.profile)
        extra = [a for a in default_artefacts(args.profile, extended=True) if a not in base]
        if not extra:
            raise ConfigError(f"--extended: the {args.profile} grid has no optional runs; "
                              "--profile paper and cpu have")
        only = sorted(set(only or base) | set(extra),
                      key=list(ARTEFACTS).index)
    out = args.out or batch_out(args.profile)
    check_out_folder(out)  # a dry run names the folders of the real one: refuse them alike
    if args.figures:
        check_out_folder(args.figures, "--figures")
    if args.dry_run:
        the_plan = plan(args.profile, overrides=overrides, artefacts=only)
        print(describe_plan(the_plan))
        print(_describe_cost(the_plan, args.images_per_second))
        return 0
    if args.records:
        from .batch.reproduce import rebuild

        result = rebuild(args.profile, args.records, out, figures=args.figures,
                         overrides=overrides, artefacts=only,
                         command="prunefuse " + " ".join(sys.argv[1:]) if sys.argv[1:] else None)
        return 0 if result["built"] else 2
    executor = _executor(args)
    try:
        reproduce(args.profile, out, figures=args.figures, overrides=overrides, artefacts=only,
                  run_figures=not args.runs_only, executor=executor,
                  command="prunefuse " + " ".join(sys.argv[1:]))
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


def _cmd_notebooks(args: argparse.Namespace) -> int:
    """Copy the shipped notebooks into DIR, then say how to use them."""
    import shlex

    from .batch.execute import copy_notebooks

    copied = copy_notebooks(args.dir, force=args.force)
    print(f"copied {len(copied)} notebooks into {args.dir}")
    print("next, in that folder (records and figures land in its runs/):")
    print(f"  cd {shlex.quote(str(args.dir))}")
    print("  prunefuse reproduce --profile smoke  # minutes: the records most table and figure "
          "notebooks read by default (each one's `records` parameter names its command)")
    print("  jupyter lab                          # quickstart.ipynb needs nothing before it: "
          "seconds on the smoke profile")
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    """The labeling loop (prunefuse.label): start, next, add, fit; one summary line each."""
    from .run import label

    if args.step == "start":
        params = dict(parse_override(o) for o in args.overrides)
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        meta = label.start(args.project, images=args.images, labels=args.labels,
                           classes=classes, **params)
        if not classes:  # the classes are those the labels given show: say so
            print(f"classes from the labels given: {meta['classes']}; a class no label shows "
                  "yet needs --classes (all of them, in order) from the start")
        print(f"project {args.project}: {len(meta['images'])} images, "
              f"{'x'.join(map(str, meta['image_shape']))}, classes {meta['classes']}, "
              f"{len(label.labels(args.project))} labeled; next: prunefuse label next "
              f"{args.project} --size N")
    elif args.step == "next":
        r = label.next_batch(args.project, size=args.size, image_url=args.image_url)
        if r.get("pending") and r["size"] != args.size:
            print(f"round {r['round']} is still to label ({r['size']} images, not --size "
                  f"{args.size}): label it first; the next round takes the new size")
        how = "at random (no labels yet)" if r["selector"] is None else \
            f"by {r['selector']['score']} of the pruned selector ({r['macs'] / 1e9:.3f} GMACs, " \
            f"{r['seconds']:.1f} s)"
        print(f"round {r['round']}: {r['size']} images to label, chosen {how}: {r['csv']} "
              f"(fill its label column) or {r['tasks']} (Label Studio import); then "
              f"prunefuse label add {args.project} FILE")
    elif args.step == "add":
        c = label.add_labels(args.project, args.file, relabel=args.relabel)
        print(f"{c['added']} labels added, {c['relabeled']} replaced, {c['unchanged']} "
              f"unchanged; {c['labeled']} labeled in all")
    else:
        card = label.fit(args.project, holdout=args.holdout)
        print(f"model: {Path(args.project) / label.MODEL} ({card['arch']}, {card['labels']} "
              f"labels); accuracy {100 * card['holdout']['accuracy']:.2f}% on "
              f"{card['holdout']['images']} held-out labels")
    return 0


def load_plugin(name: str) -> None:
    """Import a module that registers datasets (:func:`prunefuse.data.register_dataset`) and
    architectures (:func:`prunefuse.models.register_model`): a module name, looked up from
    the working directory first, or the path of a ``.py`` file (:func:`prunefuse.plugins.load`);
    the kernels the command starts load it too (``$PRUNEFUSE_PLUGINS``)."""
    from .plugins import PluginError, export, load

    try:
        load(name)
    except PluginError as err:
        raise ConfigError(str(err)) from None
    export()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunefuse", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prunefuse {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, not just its one line")
    plug = argparse.ArgumentParser(add_help=False, parents=[common])
    plug.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                      help="import this module (a name, or a .py file) first: it registers "
                      "datasets and architectures (README, \"Your data, your model\"); "
                      "repeatable")
    sub = parser.add_subparsers(dest="command", required=True)
    head = "parameters (key=value; lists as 0.1,0.2 or JSON), with their values "
    epilog = (head + "under --profile paper:\n" + describe_params("paper")
              + "\n\nthe other profiles change from paper:\n" + describe_profiles())
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", parents=[plug], help="run or resume one experiment",
                         epilog=epilog, formatter_class=fmt)
    run.add_argument("config", nargs="?", help="JSON file of parameters (optional); a "
                     "\"profile\" key in it stands for --profile")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--profile", choices=sorted(PROFILES), help="required (or in the config "
                     "file): the defaults under the parameters given; listed below")
    run.add_argument("--out", default=DEFAULT_OUT,
                     help=f"parent folder of run records (default {DEFAULT_OUT})")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and id")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", parents=[plug], help="the main job: PruneFuse vs dense "
                          "AL, SVP, random on Fashion-MNIST (CPU; minutes)",
                          description="Four runs under the demo profile: "
                          + "; ".join(", ".join(f"{k}={v}" for k, v in m.items())
                                      for m in DEMO_METHODS)
                          + ". Parameters given (key=value) apply to all four.",
                          epilog=head + "under the demo profile:\n" + describe_params("demo"),
                          formatter_class=fmt)
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    demo.add_argument("--out", default=DEMO_OUT, help=f"record folder (default {DEMO_OUT})")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", parents=[plug],
                            help="aggregate run records: mean/std over seeds")
    report.add_argument("root", help="folder containing run records")
    report.add_argument("--out", help="where to write results.csv, summary.csv, summary.md")
    report.add_argument("--strict", action="store_true", help="fail (exit 2, nothing written) "
                        "if any record cannot be read; by default it is skipped with a warning")
    report.set_defaults(func=_cmd_report)

    from .analysis.artefacts import ARTEFACTS
    from .batch.executors import EXECUTORS
    from .batch.grid import GRIDS, default_artefacts

    rep = sub.add_parser("reproduce", parents=[plug], help="regenerate every table and "
                         "figure of the paper: plan the runs, execute the notebooks with "
                         "papermill", epilog=epilog,
                         formatter_class=fmt)
    rep.add_argument("overrides", nargs="*", metavar="key=value",
                     help="run parameters for every run (e.g. device=cuda); not the grid's keys")
    rep.add_argument("--profile", required=True, choices=sorted(GRIDS),
                     help="grid and run defaults: " + "; ".join(
                         profile_summary(p) for p in sorted(GRIDS)))
    rep.add_argument("--out", help="batch folder: runs/, notebooks/, figures/ (default "
                     f"{batch_out('PROFILE')})")
    rep.add_argument("--figures", help="write tables and figures here instead of OUT/figures")
    rep.add_argument("--only", help="comma-separated artefacts (and their runs): "
                     + ", ".join(ARTEFACTS))
    optional = {p: [a for a in default_artefacts(p, extended=True)
                    if a not in default_artefacts(p)] for p in sorted(GRIDS)}
    rep.add_argument("--extended", action="store_true", help="also the grid's optional "
                     "artefacts and their runs (" + "; ".join(
                         f"{p}: {', '.join(a)}" for p, a in optional.items() if a)
                     + "); see --dry-run for their cost")
    rep.add_argument("--runs-only", action="store_true", help="execute the runs, not the "
                     "artefact notebooks")
    rep.add_argument("--records", metavar="DIR", help="build every artefact (the optional ones "
                     "too) and report.html from the finished runs in DIR, never training; an "
                     "artefact that lacks a run is named with its missing runs and skipped; "
                     "nothing is written into DIR")
    rep.add_argument("--dry-run", action="store_true", help="print the planned runs, their "
                     "MACs and hours per artefact and in total, and exit")
    rep.add_argument("--images-per-second", type=float, help="dry run: training images per "
                     "second of the profile's target on the machine that will run the grid "
                     "(default: measured here with a few training steps)")
    rep.add_argument("--executor", choices=list(EXECUTORS), default="local",
                     help="where the runs execute (default local): " + "; ".join(
                         f"{n}, {c.summary}" for n, c in EXECUTORS.items())
                     + " (docs/cluster.md)")
    seen = set()
    for cls in EXECUTORS.values():
        for o in cls.options:
            if o.flag in seen:
                continue
            seen.add(o.flag)
            users = [n for n, c in EXECUTORS.items() if o in c.options]
            text = f"{'/'.join(users)}: {o.help}"
            if o.type is bool:
                rep.add_argument(o.flag, dest=o.arg, action="store_true", default=None, help=text)
            else:
                rep.add_argument(o.flag, dest=o.arg, type=o.type, help=text)
    rep.set_defaults(func=_cmd_reproduce)

    lab = sub.add_parser("label", parents=[plug], help="label your own images: the pruned "
                         "selector picks each batch, you label it (CSV or Label Studio), then "
                         "fit the dense model (docs/labeling.md)")
    steps = lab.add_subparsers(dest="step", required=True)
    st = steps.add_parser("start", parents=[common], help="start a project from a folder or "
                          "CSV of images", epilog="parameters (key=value): arch, ratio, score, "
                          "selector_epochs, target_epochs, batch_size, schedule, kd_lambda, "
                          "image_size, channels, seed, device; as in `prunefuse run --help`")
    st.add_argument("project", help="project folder (created)")
    st.add_argument("overrides", nargs="*", metavar="key=value")
    st.add_argument("--images", required=True, help="folder of images, or CSV of path[,label]")
    st.add_argument("--labels", help="CSV of path,label already known")
    st.add_argument("--classes", help="class names, comma-separated (default: those of the "
                    "labels given)")
    nx = steps.add_parser("next", parents=[common], help="train the pruned selector on the "
                          "labels so far and write the next batch to label")
    nx.add_argument("project")
    nx.add_argument("--size", type=int, required=True, help="images in the batch")
    nx.add_argument("--image-url", default="", help="prefix of data.image in the Label Studio "
                    "tasks, e.g. /data/local-files/?d= (default: the file path)")
    ad = steps.add_parser("add", parents=[common], help="add labels from a CSV (path,label) or "
                          "a Label Studio JSON export")
    ad.add_argument("project")
    ad.add_argument("file")
    ad.add_argument("--relabel", action="store_true", help="let a label replace an earlier one")
    ft = steps.add_parser("fit", parents=[common], help="fuse, train the dense model with KD on "
                          "the labels, export it with a model card")
    ft.add_argument("project")
    ft.add_argument("--holdout", type=float, default=0.2, help="share of the labels held out "
                    "to measure accuracy (default 0.2)")
    lab.set_defaults(func=_cmd_label)

    nbs = sub.add_parser("notebooks", parents=[common], help="copy the notebooks (quickstart, "
                         "explore, experiment, every table and figure) into a folder of your "
                         "own, to open with Jupyter")
    nbs.add_argument("dir", metavar="DIR", help="folder to copy them into (created if needed)")
    nbs.add_argument("--force", action="store_true", help="replace notebooks already in DIR")
    nbs.set_defaults(func=_cmd_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``prunefuse`` command (``argv``: its words, default ``sys.argv[1:]``); returns the
    exit code. Ctrl-C before a command starts its work is one line, exit 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("prunefuse: interrupted; nothing was running yet", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    hint = flag_as_parameter(argv)
    if hint and argv and argv[0] in ("run", "demo", "reproduce"):
        print(f"prunefuse {argv[0]}: error: {hint}", file=sys.stderr)
        return 2
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in w and not w.startswith("-")
                                                    for w in extra):
        args.overrides += extra  # key=value words on both sides of an option
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "config", None) and "=" in args.config:
        args.overrides.insert(0, args.config)  # `prunefuse run key=value` without a file
        args.config = None
    try:
        for plugin in getattr(args, "plugin", []):
            load_plugin(plugin)
        return args.func(args)
    except KeyboardInterrupt:  # run and reproduce say how to resume; elsewhere nothing is half done
        print(f"prunefuse {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, RunBusyError) as err:  # one line, no traceback
        if args.debug:
            traceback.print_exc()
        print(f"prunefuse {args.command}: error: {err}", file=sys.stderr)
        return 3 if isinstance(err, RunBusyError) else 2
    except DiskFullError as err:  # nothing lost: the same command resumes once there is space
        if args.debug:
            traceback.print_exc()
        print(f"prunefuse {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
