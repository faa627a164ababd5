"""Runs at once against threads per run: the grid's throughput on this machine.

A CPU grid spends most of its time training targets (``benchmarks/grid_time.py``). This
script measures that work the way a batch would do it: ``k`` processes at once, each
training the profile's target with ``t`` torch threads, for every ``k x t`` in ``--layouts``,
and prints the images per second of the whole machine (all processes together) and of each
process. The layout with the most images per second is the one to give
``prunefuse reproduce --slots``.

Each process trains the profile's target (``--profile``: architecture, batch size or
``--batch-size``, augmentation, ``cpu_precision``) on the bundled Fashion-MNIST subset for
``--images`` images after one warm-up epoch; every process of a layout starts together, and
the layout's time runs from the first start to the last finish.

    python benchmarks/slots.py                       # cpu profile, layouts 1x2 2x1 1x1
    python benchmarks/slots.py --layouts 1x4 2x2 4x1 --images 4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import header

WORKER = r"""
import json, sys, time, warnings
import torch
warnings.simplefilter("ignore")
threads, images, profile, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
batch = int(sys.argv[5])
torch.set_num_threads(threads)
from prunefuse.config import make_config
from prunefuse.data import load_dataset
from prunefuse.models import build_model
from prunefuse.train import train
cfg = make_config(profile, **({"batch_size": batch} if batch else {}))
ds = load_dataset(cfg["dataset"], max_train=images, max_test=1)
model = build_model(cfg["arch"], num_classes=ds.num_classes, seed=seed)
kw = dict(mean=ds.mean, std=ds.std, padding=ds.padding if cfg["augment"] else 0,
          batch_size=cfg["batch_size"], lr=0.05, schedule="constant", device="cpu",
          amp=cfg["cpu_precision"] == "bf16", progress=False)
train(model, ds.x_train[:256], ds.y_train[:256], epochs=1, **kw)  # warm-up
print("READY", flush=True)
sys.stdin.readline()  # start together
t0 = time.perf_counter()
train(model, ds.x_train, ds.y_train, epochs=1, **kw)
print(json.dumps({"seconds": time.perf_counter() - t0, "images": len(ds.x_train)}), flush=True)
"""


def run_layout(procs: int, threads: int, images: int, profile: str, batch: int = 0) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(images),
                                 profile, str(i), str(batch)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
               for i in range(procs)]
    for w in workers:
        line = w.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"worker failed to start: {line!r}")
    start = time.perf_counter()
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    results = [json.loads(w.stdout.readline()) for w in workers]
    wall = time.perf_counter() - start
    for w in workers:
        w.wait()
    total = sum(r["images"] for r in results)
    return {"layout": f"{procs} x {threads}", "processes": procs, "threads": threads,
            "wall s": wall, "machine img/s": total / wall,
            "per process img/s": sum(r["images"] / r["seconds"] for r in results) / procs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", help="run profile whose target is trained")
    ap.add_argument("--images", type=int, default=2048, help="training images per process")
    ap.add_argument("--layouts", nargs="+", default=["1x2", "2x1", "1x1"],
                    help="PROCESSESxTHREADS, each measured in turn")
    ap.add_argument("--batch-size", type=int, default=0, help="training batch; 0 = the "
                    "profile's")
    ap.add_argument("--repeats", type=int, default=2, help="rounds over all layouts; the "
                    "fastest of each layout is kept")
    args = ap.parse_args()
    import torch

    print(header(torch.device("cpu")))
    layouts = [tuple(int(v) for v in spec.lower().split("x")) for spec in args.layouts]
    best: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved, so a burst of foreign load hits every layout
        for procs, threads in layouts:
            row = run_layout(procs, threads, args.images, args.profile, args.batch_size)
            if row["layout"] not in best or row["wall s"] < best[row["layout"]]["wall s"]:
                best[row["layout"]] = row
    print(f"{args.profile} profile target, batch {args.batch_size or 'of the profile'}, "
          f"{args.images} images per process, one epoch after a warm-up; fastest of "
          f"{args.repeats}")
    print(f"{'layout (proc x thr)':<20} {'wall s':>8} {'machine img/s':>14} "
          f"{'per process img/s':>18}")
    for row in best.values():
        print(f"{row['layout']:<20} {row['wall s']:>8.1f} {row['machine img/s']:>14.0f} "
              f"{row['per process img/s']:>18.0f}")
    top = max(best.values(), key=lambda r: r["machine img/s"])
    print(f"HEADLINE most images per second: {top['layout']} ({top['machine img/s']:.0f} img/s)")


if __name__ == "__main__":
    main()
