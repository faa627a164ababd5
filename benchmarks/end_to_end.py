"""Wall-clock of a small PruneFuse pipeline, built directly from the library (docs/method.md,
steps 1 to 4): where do the seconds go?

Fashion-MNIST subset (padded to 32x32, 3 channels), resnet20 pruned at p=0.5 with
``prune_at_init``; a random initial labeled set; ``--rounds`` active-learning rounds, each
training the selector from the same pruned initialization, scoring the unlabeled pool
(``score_pool``, no augmentation) and adding ``--budget`` samples by ``--score``; then
``fuse`` and training the fused target with KD from the trained selector (lambda 0.5, T 4).
Timings go through ``CostLedger.timed``; MACs follow the ledger convention (training 3x
forward MACs per sample-epoch, scoring and teacher forwards 1x). "load" is the CPU load
(cores) other processes put on the machine during each stage.

    python benchmarks/end_to_end.py                               # CPU, about a minute
    python benchmarks/end_to_end.py --rounds 3 --compile          # does compile pay per round?
    python benchmarks/end_to_end.py --pool 50000 --initial 1000 --budget 4000 --rounds 5 \\
        --selector-epochs 181 --target-epochs 181 --device cuda --data cifar10
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
from _common import LoadMeter, add_common_args, setup, table

from prunefuse.data import load_dataset
from prunefuse.flops import CostLedger, count_macs, training_macs
from prunefuse.fuse import fuse
from prunefuse.models import build_model
from prunefuse.prune import prune_at_init
from prunefuse.select import score_pool, select
from prunefuse.train import evaluate, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="fashion-mnist", help="registered dataset name")
    ap.add_argument("--arch", default="resnet20", help="dense target architecture")
    ap.add_argument("--ratio", type=float, default=0.5, help="pruning ratio p")
    ap.add_argument("--pool", type=int, default=6000, help="training images (the whole pool)")
    ap.add_argument("--test", type=int, default=2000, help="test images")
    ap.add_argument("--initial", type=int, default=1000, help="initial random labeled images")
    ap.add_argument("--budget", type=int, default=1000, help="images added per round")
    ap.add_argument("--rounds", type=int, default=1, help="selection rounds")
    ap.add_argument("--score", default="least_confidence",
                    help="least_confidence, entropy, margin, kcenter, random")
    ap.add_argument("--selector-epochs", type=int, default=5, help="selector epochs per round")
    ap.add_argument("--target-epochs", type=int, default=5, help="fused target epochs")
    ap.add_argument("--seed", type=int, default=0, help="init, initial set and training seed")
    ap.add_argument("--compile", action="store_true",
                    help="train with torch.compile; reports how many graphs were compiled")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace deprecation notices from fvcore/torch-pruning

    overhead: dict[str, float] = {}
    meter = LoadMeter()  # other processes' CPU load during each stage
    t0 = time.perf_counter()
    ds = load_dataset(args.data, max_train=args.pool, max_test=args.test)
    kw = {"mean": ds.mean, "std": ds.std}
    train_kw = {**kw, "padding": ds.padding, "device": dev, "progress": False, "seed": args.seed,
                "compile": args.compile}
    overhead["load data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    example = torch.zeros(1, ds.in_channels, ds.image_size, ds.image_size)
    dense_init = build_model(args.arch, ds.num_classes, ds.in_channels, seed=args.seed)
    pruned_init, index_map = prune_at_init(dense_init, args.ratio, example)
    macs_sel, macs_tgt = count_macs(pruned_init, example), count_macs(dense_init, example)
    overhead["prune + count MACs"] = time.perf_counter() - t0

    ledger = CostLedger()
    order = torch.randperm(ds.num_train, generator=torch.Generator().manual_seed(args.seed))
    labeled = order[: args.initial].tolist()
    selector = None
    round_seconds = []
    for _ in range(args.rounds):
        x, y = ds.x_train[labeled], ds.y_train[labeled]
        selector = copy.deepcopy(pruned_init)  # retrained from theta_p every round [choice]
        before = ledger.seconds["selector_training"]
        with meter("selector_training"), ledger.timed("selector_training"):
            train(selector, x, y, epochs=args.selector_epochs, **train_kw)
        round_seconds.append(ledger.seconds["selector_training"] - before)
        ledger.add_macs("selector_training",
                        training_macs(macs_sel, len(labeled), args.selector_epochs))
        taken = set(labeled)
        pool_idx = torch.tensor([i for i in range(ds.num_train) if i not in taken])
        with meter("pool_scoring"), ledger.timed("pool_scoring"):
            out = score_pool(selector, ds.x_train[pool_idx], **kw, device=dev)
            lab_feats = (score_pool(selector, x, **kw, device=dev).features
                         if args.score == "kcenter" else None)
            pick = select(args.score, out, lab_feats, min(args.budget, len(pool_idx)), args.seed)
        ledger.add_macs("pool_scoring",
                        macs_sel * (len(pool_idx) + (len(labeled) if lab_feats is not None else 0)))
        labeled += pool_idx[pick].tolist()

    t0 = time.perf_counter()
    fused = fuse(dense_init, selector, index_map)
    overhead["fuse"] = time.perf_counter() - t0
    x, y = ds.x_train[labeled], ds.y_train[labeled]
    with meter("target_training"), ledger.timed("target_training"):
        train(fused, x, y, epochs=args.target_epochs, teacher=selector, **train_kw)
    ledger.add_macs("target_training", training_macs(macs_tgt, len(labeled), args.target_epochs))
    ledger.add_macs("teacher_forward", macs_sel * len(labeled) * args.target_epochs)
    t0 = time.perf_counter()
    acc = evaluate(fused, ds.x_test, ds.y_test, **kw, device=dev)["test_acc"]
    overhead["evaluate target"] = time.perf_counter() - t0

    stages = ("selector_training", "pool_scoring", "target_training")
    rows = [{"stage": k.replace("_", " "), "seconds": ledger.seconds[k],
             "GMACs": ledger.macs[k] / 1e9, "load": meter.load(k)} for k in stages]
    rows[-1]["stage"] = "target training (with KD teacher)"
    rows[-1]["GMACs"] += ledger.macs["teacher_forward"] / 1e9  # the teacher runs inside it
    rows += [{"stage": k, "seconds": v, "GMACs": float("nan"), "load": float("nan")}
             for k, v in overhead.items()]
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share"] = r["seconds"] / total
    busy = sum(meter.foreign.values()) / sum(meter.wall.values())
    rows.append({"stage": "total", "seconds": total, "GMACs": sum(ledger.macs.values()) / 1e9,
                 "share": 1.0, "load": busy})
    print(f"{ds.describe()}; {args.arch} p={args.ratio:g} selector "
          f"({macs_sel / 1e6:.1f} MMACs/img) -> fused {args.arch} "
          f"({macs_tgt / 1e6:.1f} MMACs/img); {args.rounds} round(s) of {args.score}, "
          f"{args.initial} -> {len(labeled)} labeled; selector "
          f"{args.selector_epochs} ep, target {args.target_epochs} ep with KD")
    print(table(rows, [("stage", ""), ("seconds", ".1f"), ("share", ".0%"), ("GMACs", ",.1f"),
                       ("load", ".1f")]))
    print("selector training per round: " + ", ".join(f"{s:.1f}" for s in round_seconds) + " s")
    if args.compile:
        from torch._dynamo.utils import counters

        print(f"torch.compile: {counters['stats']['unique_graphs']} graphs compiled in all "
              f"(selector and target; a round that reuses the selector's graphs compiles none)")
    print(f"HEADLINE end-to-end {total:.1f} s: selector training "
          f"{ledger.seconds['selector_training']:.1f} s, scoring "
          f"{ledger.seconds['pool_scoring']:.1f} s, target training "
          f"{ledger.seconds['target_training']:.1f} s; fused target test accuracy {acc:.1%} "
          f"(other processes' load {busy:.1f} cores)")


if __name__ == "__main__":
    main()
