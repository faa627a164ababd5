"""One whole training run of the paper's protocol, timed: the dense network and its
``prune_at_init`` selectors (the headline: seconds for one 181-epoch training on 25,000 images).

Each model trains from its initialization with ``prunefuse.train.train`` exactly as a run
does: the SVP schedule over ``--epochs`` epochs, batch 128, random crop + flip, on
``--images`` images (bf16 autocast and channels_last on CUDA; ``--compile`` adds
torch.compile). Reported per model: parameters, forward MACs per image (fvcore), total
seconds of the call (compilation included), the steady images/s (median epoch after the
first), peak memory (GPU allocator per model on CUDA; on CPU the process's RSS high-water
mark so far, which only grows from row to row) and the last epoch's
training accuracy. No warm-up run: the first epoch's start-up cost is part of a real run.

Headline: seconds per full training of each model, and the dense / pruned ratio.

    python benchmarks/full_training.py --device cuda        # the headline: 181 x 25,000
    python benchmarks/full_training.py                      # CPU default: 2 epochs x 1,024
    python benchmarks/full_training.py --device cuda --compile --ratios 0.5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings

import torch
from _common import add_common_args, setup, table

from prunefuse.data import load_dataset
from prunefuse.flops import count_macs
from prunefuse.models import build_model, count_params
from prunefuse.prune import prune_at_init
from prunefuse.train import train

PROTOCOL = {"epochs": 181, "images": 25_000}  # one training of the paper's protocol
CPU = {"epochs": 2, "images": 1024}  # the same run would take hours on a 2-core CPU


def _peak_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet56", help="dense architecture")
    ap.add_argument("--ratios", type=float, nargs="*", default=[0.5],
                    help="pruning ratios p of the selectors timed after the dense net")
    ap.add_argument("--no-dense", action="store_true", help="time the pruned selectors only")
    ap.add_argument("--data", default="synthetic", help="registered dataset name")
    ap.add_argument("--images", type=int, default=None,
                    help="training images (default: 25,000 on CUDA, 1,024 on CPU)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs, SVP schedule (default: 181 on CUDA, 2 on CPU)")
    ap.add_argument("--batch", type=int, default=128, help="batch size")
    ap.add_argument("--compile", action="store_true", help="train with torch.compile")
    ap.add_argument("--seed", type=int, default=0, help="initialization and training seed")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace deprecation notices from fvcore/torch-pruning
    sizes = PROTOCOL if dev.type == "cuda" else CPU
    images = sizes["images"] if args.images is None else args.images
    epochs = sizes["epochs"] if args.epochs is None else args.epochs
    if images < 2 or epochs < 1:
        ap.error(f"--images {images} --epochs {epochs}: need at least 2 images and 1 epoch")

    kw = {} if args.data != "synthetic" else {"num_train": images, "num_test": 1}
    ds = load_dataset(args.data, max_train=images, **kw)
    if ds.num_train < images:
        ap.error(f"--images {images}: dataset {args.data!r} has only {ds.num_train}")
    example = torch.zeros(1, ds.in_channels, ds.image_size, ds.image_size)
    dense = build_model(args.arch, ds.num_classes, ds.in_channels, seed=args.seed)
    models = [] if args.no_dense else [(args.arch, dense)]
    models += [(f"{args.arch} p={p:g}", prune_at_init(dense, p, example)[0]) for p in args.ratios]
    if not models:
        ap.error("nothing to time: --no-dense with no --ratios")

    rows = []
    for name, model in models:
        macs = count_macs(model, example)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        start = time.perf_counter()
        hist = train(model, ds.x_train, ds.y_train, mean=ds.mean, std=ds.std, epochs=epochs,
                     padding=ds.padding, batch_size=args.batch, seed=args.seed, device=dev,
                     compile=args.compile, progress=False)
        seconds = time.perf_counter() - start
        steady = [r["images_per_s"] for r in hist[1:]] or [hist[0]["images_per_s"]]
        rows.append({"model": name, "params": count_params(model), "MACs/img": macs,
                     "seconds": seconds, "first epoch s": hist[0]["seconds"],
                     "img/s": statistics.median(steady), "peak MB": _peak_mb(dev),
                     "train acc": hist[-1]["train_acc"]})
        print(f"  {name}: {seconds:.1f} s", flush=True)

    print(f"{epochs} epochs (SVP schedule) on {images:,} {ds.name} images, batch {args.batch}, "
          f"device {dev}{', torch.compile' if args.compile else ''}; img/s = median epoch "
          f"after the first; peak MB = "
          + ("GPU allocator, per model" if dev.type == "cuda" else "process RSS high-water mark"))
    print(table(rows, [("model", ""), ("params", ",d"), ("MACs/img", ",.0f"),
                       ("seconds", ".1f"), ("first epoch s", ".2f"), ("img/s", ",.0f"),
                       ("peak MB", ",.0f"), ("train acc", ".3f")]))
    parts = [f"{r['model']} {r['seconds']:.1f} s ({r['img/s']:,.0f} img/s)" for r in rows]
    ratio = ""
    if not args.no_dense and len(rows) > 1:
        ratio = "; dense / pruned wall-clock " + ", ".join(
            f"{r['model'].split()[-1]} {rows[0]['seconds'] / r['seconds']:.2f}x" for r in rows[1:])
    print(f"HEADLINE one {epochs}-epoch training on {images:,} images: " + "; ".join(parts)
          + ratio)


if __name__ == "__main__":
    main()
