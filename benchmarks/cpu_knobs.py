"""CPU knobs behind the other benchmarks' numbers: the evaluation batch size of
``evaluate`` / ``score_pool`` (library default: 128 on CPU, 1024 on CUDA), and the
channels_last memory format for training (the trainer uses it on CUDA only) and for
forward-only passes (``evaluate`` / ``score_pool`` feed channels_last inputs on every device).

1. Forward-only passes over ``--images`` images with ``evaluate`` and ``score_pool`` at each
   batch size in ``--batches``.
2. SGD steps (forward, backward, momentum update; batch 128) on a fixed batch, contiguous vs
   channels_last model and input, for the dense net and its p=0.5 prune.
3. Forward-only passes in eval mode over ``--images`` images at batch 128, the model as it is
   (contiguous weights), with contiguous vs channels_last inputs.
4. SGD steps at ``--train-batch`` (contiguous), fp32 vs bf16 autocast: the run parameter
   ``cpu_precision``. bf16 pays where the CPU has native bf16 (AVX512-BF16, AMX); elsewhere
   it is emulated and slower.

Each figure is the fastest of ``--repeats`` runs, with the foreign load of that run.

    python benchmarks/cpu_knobs.py
    python benchmarks/cpu_knobs.py --arch resnet20 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
import torch.nn.functional as F
from _common import add_common_args, best_of, setup, table

from prunefuse.data import load_dataset
from prunefuse.models import build_model
from prunefuse.prune import prune_at_init
from prunefuse.select import score_pool
from prunefuse.train import evaluate


def sgd_steps(model, x, y, steps: int, amp: bool = False):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def run():
        for _ in range(steps):
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet56", help="dense architecture")
    ap.add_argument("--images", type=int, default=2048, help="images per forward-only pass")
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 256, 1024],
                    help="evaluation batch sizes to compare")
    ap.add_argument("--steps", type=int, default=6, help="SGD steps per timed run")
    ap.add_argument("--train-batch", type=int, default=32, help="batch of the fp32/bf16 "
                    "comparison (the cpu profile's)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs; the fastest is kept")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace deprecation notices from torch-pruning

    ds = load_dataset("synthetic", num_train=args.images, num_test=args.images)
    dense = build_model(args.arch, ds.num_classes, seed=0)
    pruned, _ = prune_at_init(dense, 0.5, torch.zeros(1, *ds.x_train.shape[1:]))
    nets = [(args.arch, dense.to(dev)), (f"{args.arch} p=0.5", pruned.to(dev))]
    kw = {"mean": ds.mean, "std": ds.std, "device": dev}

    rows = []
    for name, m in nets:
        evaluate(m, ds.x_test[:128], ds.y_test[:128], **kw, batch_size=128)  # warm-up
        for fn_name, fn in [("evaluate", lambda b, m=m: evaluate(m, ds.x_test, ds.y_test, **kw,
                                                                  batch_size=b)),
                            ("score_pool", lambda b, m=m: score_pool(m, ds.x_train, **kw,
                                                                      batch_size=b))]:
            for b in args.batches:
                sec, _, load = best_of(lambda f=fn, b=b: f(b), dev, args.repeats)
                rows.append({"model": name, "call": fn_name, "batch": b, "seconds": sec,
                             "images/s": args.images / sec, "load": load})
    fwd = rows
    print(f"1. forward-only over {args.images} images; fastest of {args.repeats}")
    print(table(rows, [("model", ""), ("call", ""), ("batch", "d"), ("seconds", ".2f"),
                       ("images/s", ",.0f"), ("load", ".1f")]))

    x = torch.randn(128, *ds.x_train.shape[1:], device=dev)
    y = torch.randint(0, ds.num_classes, (128,), device=dev)
    rows = []
    for name, m0 in nets:
        for fmt in (torch.contiguous_format, torch.channels_last):
            m = copy.deepcopy(m0).train().to(memory_format=fmt)
            run = sgd_steps(m, x.contiguous(memory_format=fmt), y, args.steps)
            sgd_steps(m, x.contiguous(memory_format=fmt), y, 2)()  # warm-up
            sec, _, load = best_of(run, dev, args.repeats)
            rows.append({"model": name, "format": str(fmt).split(".")[-1], "seconds": sec,
                         "images/s": 128 * args.steps / sec, "load": load})
    print(f"2. {args.steps} SGD steps of batch 128; fastest of {args.repeats}")
    print(table(rows, [("model", ""), ("format", ""), ("seconds", ".2f"), ("images/s", ",.0f"),
                       ("load", ".1f")]))
    train_rows, rows = rows, []
    images = torch.randn(args.images, *ds.x_train.shape[1:], device=dev)
    for name, m in nets:
        m.eval()
        for fmt in (torch.contiguous_format, torch.channels_last):
            xs = images.contiguous(memory_format=fmt)

            @torch.inference_mode()
            def forward(m=m, xs=xs):
                for start in range(0, xs.shape[0], 128):
                    m(xs[start : start + 128])

            forward()  # warm-up
            sec, _, load = best_of(forward, dev, args.repeats)
            rows.append({"model": name, "input": str(fmt).split(".")[-1], "seconds": sec,
                         "images/s": args.images / sec, "load": load})
    print(f"3. forward-only over {args.images} images, batch 128, eval mode; fastest of "
          f"{args.repeats}")
    print(table(rows, [("model", ""), ("input", ""), ("seconds", ".2f"), ("images/s", ",.0f"),
                       ("load", ".1f")]))
    cl_fwd = [rows[i + 1]["images/s"] / rows[i]["images/s"] for i in range(0, len(rows), 2)]
    rows = []
    xb, yb = x[: args.train_batch].contiguous(), y[: args.train_batch]
    for name, m0 in nets:
        for amp in (False, True):
            m = copy.deepcopy(m0).train()
            sgd_steps(m, xb, yb, 2, amp)()  # warm-up
            sec, _, load = best_of(sgd_steps(m, xb, yb, args.steps, amp), dev, args.repeats)
            rows.append({"model": name, "precision": "bf16" if amp else "fp32", "seconds": sec,
                         "images/s": xb.shape[0] * args.steps / sec, "load": load})
    print(f"4. {args.steps} SGD steps of batch {xb.shape[0]}, fp32 vs bf16 autocast; fastest "
          f"of {args.repeats}")
    print(table(rows, [("model", ""), ("precision", ""), ("seconds", ".2f"),
                       ("images/s", ",.0f"), ("load", ".1f")]))
    bf = [rows[i + 1]["images/s"] / rows[i]["images/s"] for i in range(0, len(rows), 2)]
    rows = train_rows
    fwd = [r for r in fwd if r["model"] == args.arch and r["call"] == "score_pool"]
    best = min(fwd, key=lambda r: r["seconds"])
    slow = max(r["seconds"] for r in fwd if r["batch"] == max(args.batches)) / best["seconds"]
    cl = [rows[i + 1]["images/s"] / rows[i]["images/s"] for i in range(0, len(rows), 2)]
    print(f"HEADLINE {args.arch} score_pool at batch {max(args.batches)} is {slow:.2f}x slower "
          f"than at batch {best['batch']}; channels_last training speed-up "
          + ", ".join(f"{n} {c:.2f}x" for (n, _), c in zip(nets, cl))
          + "; channels_last forward-only speed-up "
          + ", ".join(f"{n} {c:.2f}x" for (n, _), c in zip(nets, cl_fwd))
          + f"; bf16 autocast training speed-up (batch {xb.shape[0]}) "
          + ", ".join(f"{n} {c:.2f}x" for (n, _), c in zip(nets, bf)))


if __name__ == "__main__":
    main()
