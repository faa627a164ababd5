"""Selection cost of PruneFuse's pruned selector against the dense selector, MACs next to
wall-clock (docs/method.md, "Step 2: select" and "Cost accounting").

For the dense network (default resnet56) and its ``prune_at_init`` versions at
p = 0.5/0.6/0.7/0.8 it measures: parameters; forward MACs per 32x32 sample (fvcore, eval
mode); wall-clock of scoring a pool of ``--pool`` synthetic images with ``score_pool`` (after
a warm-up pass); wall-clock of one epoch of selector training on ``--train`` images with
``prunefuse.train.train`` (batch 128, after a warm-up epoch). Ratios are dense / pruned.
Each timing is the fastest of ``--repeats`` runs; "load" is the CPU load (in cores) that
other processes put on the machine during that run.

Headline: selection wall-clock ratio (training + scoring) at p=0.5 against the MACs ratio;
the goal is a wall-clock ratio of at least 80% of the MACs ratio.

    python benchmarks/selection_cost.py                       # CPU defaults, a few minutes
    python benchmarks/selection_cost.py --pool 50000 --train 10000 --device cuda  # paper scale
"""

from __future__ import annotations

import argparse
import warnings

import torch
from _common import add_common_args, best_of, setup, table

from prunefuse.data import load_dataset
from prunefuse.device import resolve_eval_batch
from prunefuse.flops import count_macs
from prunefuse.models import build_model, count_params
from prunefuse.prune import prune_at_init
from prunefuse.select import score_pool
from prunefuse.train import train

GOAL = 0.8  # wall-clock ratio must reach this fraction of the MACs ratio


def measure(model, ds, dev, args) -> dict:
    """Params, MACs per sample, scoring and training seconds of one selector."""
    shape = (1, ds.in_channels, ds.image_size, ds.image_size)
    row = {"params": count_params(model), "MACs/img": count_macs(model, torch.zeros(shape))}
    model.to(dev)
    pool = ds.x_train[: args.pool]
    x, y = ds.x_train[: args.train], ds.y_train[: args.train]
    kw = {"mean": ds.mean, "std": ds.std}
    sb = {} if args.score_batch is None else {"batch_size": args.score_batch}

    def score():
        score_pool(model, pool, **kw, **sb, device=dev)

    def fit():
        train(model, x, y, **kw, epochs=1, batch_size=args.batch, schedule="constant",
              lr=0.01, device=dev, compile=args.compile, progress=False)

    score_pool(model, pool[: min(len(pool), 2 * args.batch)], **kw, **sb, device=dev)  # warm-up
    row["score s"], row["score cpu"], row["score load"] = best_of(score, dev, args.repeats)
    train(model, x[: 4 * args.batch], y[: 4 * args.batch], **kw, epochs=1,
          batch_size=args.batch, device=dev, compile=args.compile,
          progress=False)  # warm-up (and, with --compile, compilation)
    row["train s"], row["train cpu"], row["train load"] = best_of(fit, dev, args.repeats)
    return row


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
    ap.add_argument("--repeats", type=int, default=2, help="timed runs; the fastest is kept")
    ap.add_argument("--seed", type=int, default=0, help="model initialization seed")
    ap.add_argument("--compile", action="store_true",
                    help="train with torch.compile (compilation happens in the warm-up)")
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
    rows = [{"selector": name, **measure(m, ds, dev, args)} for name, m in selectors]

    d = rows[0]
    for r in rows:
        r["MACs x"] = d["MACs/img"] / r["MACs/img"]
        r["score x"] = d["score s"] / r["score s"]
        r["train x"] = d["train s"] / r["train s"]
        r["select x"] = (d["score s"] + d["train s"]) / (r["score s"] + r["train s"])
        r["of MACs x"] = r["select x"] / r["MACs x"]
        r["cpu x"] = (d["score cpu"] + d["train cpu"]) / (r["score cpu"] + r["train cpu"])
        r["load"] = max(r["score load"], r["train load"])
    sb = resolve_eval_batch(torch.device(dev), args.score_batch)
    print(f"pool {args.pool} images scored (score_pool batch {sb}"
          f"{'' if args.score_batch else ', the library default'}), {args.train} images x 1 "
          f"epoch trained (batch {args.batch}{', torch.compile' if args.compile else ''}); "
          f"s = wall seconds, fastest of {args.repeats}; "
          "x = dense / this; "
          "select = score + train; cpu x = the same ratio in process CPU seconds; "
          "load = other processes' CPU load (cores, max of the two)")
    print(table(rows, [("selector", ""), ("params", ",d"), ("MACs/img", ",d"), ("MACs x", ".2f"),
                       ("score s", ".2f"), ("score x", ".2f"), ("train s", ".2f"),
                       ("train x", ".2f"), ("select x", ".2f"), ("of MACs x", ".0%"),
                       ("cpu x", ".2f"), ("load", ".1f")]))
    if len(rows) < 2:
        return
    half = next((r for r in rows[1:] if r["selector"] == "p=0.5"), rows[1])
    frac = half["of MACs x"]
    print(f"HEADLINE {half['selector']}: wall-clock ratio {half['select x']:.2f}x (scoring "
          f"{half['score x']:.2f}x, training {half['train x']:.2f}x) vs MACs ratio "
          f"{half['MACs x']:.2f}x = {frac:.0%} of the MACs ratio; goal >= {GOAL:.0%}: "
          f"{'MET' if frac >= GOAL else 'NOT MET'} (CPU-time ratio {half['cpu x']:.2f}x = "
          f"{half['cpu x'] / half['MACs x']:.0%}; foreign load {half['load']:.1f} cores)")


if __name__ == "__main__":
    main()
