"""SGD's per-parameter loop against its multi-tensor (``foreach``) and ``fused`` updates, in
the trainer's setting (momentum 0.9, weight decay 5e-4): a narrow pruned network has as many
parameter tensors as the dense one, so a per-tensor loop costs it the same host time.

For the dense network and its p=0.5 prune it times ``--steps`` whole SGD steps (forward,
backward, update; batch ``--batch``) and, separately, the update alone, with each optimizer
variant. The repeats are interleaved (repeat 1 of every model and variant, then repeat 2,
...) and the median is kept; "load" is the other processes' CPU load (cores).

    python benchmarks/optimizer_step.py
    python benchmarks/optimizer_step.py --arch resnet20 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import torch
import torch.nn.functional as F
from _common import add_common_args, setup, table, timed

from prunefuse.models import build_model
from prunefuse.prune import prune_at_init

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet56", help="dense architecture")
    ap.add_argument("--batch", type=int, default=128, help="images per step")
    ap.add_argument("--steps", type=int, default=4, help="SGD steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed runs; median kept")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace notices from torch-pruning

    dense = build_model(args.arch, 10, seed=0)
    pruned = prune_at_init(dense, 0.5, torch.zeros(1, 3, 32, 32))[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(dev)
    jobs = {}
    for name, model in (("dense", dense), ("p=0.5", pruned)):
        model.to(dev).train()
        for variant, kw in VARIANTS.items():
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                  weight_decay=5e-4, **kw)

            def step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()

            def steps(step=step):
                for _ in range(args.steps):
                    step()

            def updates(opt=opt):
                for _ in range(args.steps):
                    opt.step()

            step()  # warm-up: gradients and momentum buffers exist from here on
            jobs[(name, variant)] = {"step": steps, "update": updates}
    times: dict = {key: {"step": [], "update": [], "step cpu": [], "update cpu": [],
                   "load": []} for key in jobs}
    for _ in range(max(1, args.repeats)):
        for key, fns in jobs.items():
            for part in ("step", "update"):
                wall, cpu, load = timed(fns[part], dev)
                times[key][part].append(wall / args.steps)
                times[key]["load"].append(load)
                times[key][f"{part} cpu"].append(cpu / args.steps)
    rows = []
    for (name, variant), t in times.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        rows.append({"model": name, "optimizer": variant, "step ms": 1e3 * med["step"],
                     "step cpu ms": 1e3 * med["step cpu"], "update cpu ms": 1e3 * med["update cpu"],
                     "load": med["load"]})
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["optimizer"] == "loop")
        r["step x"] = base["step ms"] / r["step ms"]
        r["cpu x"] = base["step cpu ms"] / r["step cpu ms"]
    print(f"{args.arch} and its p=0.5 prune, batch {args.batch}, SGD momentum 0.9 + weight "
          f"decay; ms per step, median of {args.repeats} interleaved repeats of {args.steps} "
          "steps; x = loop / this (wall, then CPU time)")
    print(table(rows, [("model", ""), ("optimizer", ""), ("step ms", ".1f"), ("step x", ".2f"),
                       ("step cpu ms", ".1f"), ("cpu x", ".2f"), ("update cpu ms", ".2f"),
                       ("load", ".1f")]))
    pruned = [r for r in rows if r["model"] == "p=0.5" and r["optimizer"] != "loop"]
    print(f"HEADLINE {args.arch} p=0.5 selector, whole SGD step against the per-parameter loop: "
          + ", ".join(f"{r['optimizer']} {r['step x']:.2f}x wall ({r['cpu x']:.2f}x CPU)"
                      for r in pruned)
          + f"; foreign load {statistics.median(r['load'] for r in rows):.1f} cores")

if __name__ == "__main__":
    main()
