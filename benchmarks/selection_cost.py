"""Selection cost of PruneFuse's pruned selector against the dense selector, MACs next to
wall-clock (docs/method.md, "Step 2: select" and "Cost accounting").

For the dense network (default resnet56) and its ``prune_at_init`` versions at
p = 0.5/0.6/0.7/0.8 it measures: parameters; forward MACs per 32x32 sample (fvcore, eval
mode); wall-clock and CPU time of scoring a pool of ``--pool`` synthetic images with
``score_pool``, once per forward path in ``--backends`` (prunefuse.infer: ``model`` = the
model's own forward, ``folded`` = BatchNorm folded); one epoch of selector
training on ``--train`` images with ``prunefuse.train.train`` (batch 128). Ratios are
dense / pruned. Every job runs once as a warm-up; then the repeats are interleaved (repeat 1
of every selector and job, then repeat 2, ...) and the median is kept, so a change in the
machine's load hits dense and pruned alike. "load" is the CPU load (in cores) that other
processes put on the machine.

Headlines, at p=0.5, against the MACs ratio: pool scoring should reach 80% of it for
resnet56 and 70% for resnet20; selector training 70% for resnet56.

    python benchmarks/selection_cost.py                       # CPU defaults, a few minutes
    python benchmarks/selection_cost.py --pool 50000 --train 10000 --device cuda  # paper scale
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import torch
from _common import add_common_args, setup, table, timed

from prunefuse.data import load_dataset
from prunefuse.device import resolve_eval_batch
from prunefuse.flops import count_macs
from prunefuse.infer import BACKENDS
from prunefuse.models import build_model, count_params
from prunefuse.prune import prune_at_init
from prunefuse.select import score_pool
from prunefuse.train import train

# Fraction of the MACs ratio (dense / p=0.5) that the wall-clock ratio should reach.
GOALS = {"score": {"resnet56": 0.8, "resnet20": 0.7}, "train": {"resnet56": 0.7}}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(selectors, ds, dev, args) -> list[dict]:
    """Params, MACs per sample, and the median scoring (per backend) and training seconds of
    every selector, the repeats interleaved: repeat 1 of every selector and backend, then
    repeat 2, ..., so a change in the machine's load hits all of them alike."""
    shape = (1, ds.in_channels, ds.image_size, ds.image_size)
    pool = ds.x_train[: args.pool]
    x, y = ds.x_train[: args.train], ds.y_train[: args.train]
    kw = {"mean": ds.mean, "std": ds.std}
    sb = {} if args.score_batch is None else {"batch_size": args.score_batch}
    rows, runs = [], []
    for name, model in selectors:
        rows.append({"selector": name, "params": count_params(model),
                     "MACs/img": count_macs(model, torch.zeros(shape))})
        model.to(dev)
        # score_pool builds its forward path (prunefuse.infer.FastForward) per call, as once
        # per round in a run: its build time is part of the figure.
        jobs = {f"score {b}": (lambda m=model, b=b: score_pool(m, pool, **kw, **sb, device=dev,
                                                                backend=b))
                for b in args.backends}
        jobs["train"] = (lambda m=model: train(
            m, x, y, **kw, epochs=1, batch_size=args.batch, schedule="constant", lr=0.01,
            device=dev, compile=args.compile, amp=args.bf16, progress=False))
        for job in jobs.values():
            job()  # warm-up (and, with --compile, compilation)
        runs.append(jobs)
    for _ in range(max(1, args.repeats)):
        for row, jobs in zip(rows, runs):
            for key, job in jobs.items():
                wall, cpu, load = timed(job, dev)
                row.setdefault(f"{key} s", []).append(wall)
                row.setdefault(f"{key} cpu", []).append(cpu)
                row.setdefault("loads", []).append(load)
    for row in rows:
        for key in [k for k in row if k.endswith((" s", " cpu"))]:
            row[key] = _median(row[key])
        row["load"] = _median(row.pop("loads"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet56", help="dense selector architecture")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8],
                    help="pruning ratios p (fraction of channels removed)")
    ap.add_argument("--pool", type=int, default=2048, help="images scored (pool size)")
    ap.add_argument("--train", type=int, default=1024, help="images in one training epoch")
    ap.add_argument("--batch", type=int, default=128, help="training batch size")
    ap.add_argument("--score-batch", type=int, default=None,
                    help="score_pool batch size (default: the library's)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs, interleaved across selectors; the median is kept")
    ap.add_argument("--backends", nargs="+", default=["model", "folded"],
                    choices=BACKENDS, help="score_pool forward paths to time (prunefuse.infer)")
    ap.add_argument("--seed", type=int, default=0, help="model initialization seed")
    ap.add_argument("--compile", action="store_true",
                    help="train with torch.compile (compilation happens in the warm-up)")
    ap.add_argument("--bf16", action="store_true",
                    help="train in bf16 autocast (cpu_precision=bf16, the cpu profile's); "
                         "scoring stays fp32, as in a run")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace deprecation notices from fvcore/torch-pruning

    ds = load_dataset("synthetic", num_train=max(args.pool, args.train), num_test=1)
    dense = build_model(args.arch, num_classes=ds.num_classes, seed=args.seed)
    example = torch.zeros(1, ds.in_channels, ds.image_size, ds.image_size)
    # Prune the untouched initialization before any selector is trained.
    selectors = [(f"{args.arch} dense", dense)]
    selectors += [(f"p={p:g}", prune_at_init(dense, p, example)[0]) for p in args.ratios]
    rows = measure(selectors, ds, dev, args)

    d = rows[0]
    cols = [("selector", ""), ("params", ",d"), ("MACs/img", ",d"), ("MACs x", ".2f")]
    for r in rows:
        r["MACs x"] = d["MACs/img"] / r["MACs/img"]
        for key in [f"score {b}" for b in args.backends] + ["train"]:
            r[f"{key} x"] = d[f"{key} s"] / r[f"{key} s"]
            r[f"{key} cpu x"] = d[f"{key} cpu"] / r[f"{key} cpu"]
    for key in [f"score {b}" for b in args.backends] + ["train"]:
        cols += [(f"{key} s", ".2f"), (f"{key} x", ".2f"), (f"{key} cpu", ".2f"),
                 (f"{key} cpu x", ".2f")]
    sb = resolve_eval_batch(torch.device(dev), args.score_batch)
    print(f"pool {args.pool} images scored (score_pool batch {sb}"
          f"{'' if args.score_batch else ', the library default'}) per forward backend, "
          f"{args.train} images x 1 epoch trained (batch {args.batch}"
          f"{', torch.compile' if args.compile else ''}{', bf16 autocast' if args.bf16 else ''}"
          "); s = wall seconds, median of "
          f"{args.repeats} interleaved repeats; x = dense / this; cpu = process CPU seconds "
          "(median); cpu x = the same ratio in CPU seconds; load = other processes' CPU load (cores, median)")
    print(table(rows, cols + [("load", ".1f")]))
    if len(rows) < 2:
        return
    half = next((r for r in rows[1:] if r["selector"] == "p=0.5"), rows[1])
    goals = [(f"score {b}", GOALS["score"].get(args.arch)) for b in args.backends]
    goals.append(("train", GOALS["train"].get(args.arch)))
    for key, goal in goals:
        frac, cfrac = half[f"{key} x"] / half["MACs x"], half[f"{key} cpu x"] / half["MACs x"]
        verdict = "no goal for this arch" if goal is None else (
            f"goal >= {goal:.0%}: {'MET' if frac >= goal else 'NOT MET'} on wall-clock, "
            f"{'MET' if cfrac >= goal else 'NOT MET'} on CPU time")
        print(f"HEADLINE {args.arch} {half['selector']} {key}: {half[f'{key} x']:.2f}x wall "
              f"({half[f'{key} cpu x']:.2f}x CPU) vs MACs {half['MACs x']:.2f}x = {frac:.0%} "
              f"({cfrac:.0%} CPU) of the MACs ratio; {verdict}; foreign load "
              f"{half['load']:.1f} cores")


if __name__ == "__main__":
    main()
