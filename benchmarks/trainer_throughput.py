"""Training throughput: ``prunefuse.train.train`` against the loop a user would otherwise write.

The reference is the usual SVP-style recipe: a torchvision-style Dataset that turns each
uint8 HWC array into a PIL image, ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip`` +
``ToTensor`` + ``Normalize`` per image, a ``DataLoader`` (batch 128, shuffle, ``num_workers``
workers, ``pin_memory`` on CUDA) and plain SGD (momentum 0.9, weight decay 5e-4) in fp32.
``prunefuse.train.train`` keeps the images as one uint8 tensor on the device and augments
whole batches (bf16 autocast and channels_last on CUDA only). Both train copies of the same
initialization, on the same images and batch size, for ``--epochs`` epochs after a warm-up
epoch; the whole call is timed (worker start-up included). Fastest of ``--repeats``.

Headline: prunefuse / reference images per second; the goal on CPU is >= 1.1x.

    python benchmarks/trainer_throughput.py                          # resnet20, synthetic
    python benchmarks/trainer_throughput.py --data fashion-mnist --arch resnet56 --prune 0.5
    python benchmarks/trainer_throughput.py --device cuda --images 50000 --workers 4
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
import torch.nn.functional as F
from _common import add_common_args, setup, table, timed
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from prunefuse.data import load_dataset
from prunefuse.models import build_model, count_params
from prunefuse.prune import prune_at_init
from prunefuse.train import train

GOAL = 1.1  # prunefuse must be at least this many times faster on CPU


class ArrayImages(Dataset):
    """What torchvision's CIFAR10 does: HWC uint8 arrays, PIL conversion per item."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.data = x.permute(0, 2, 3, 1).contiguous().numpy()  # N, H, W, C
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def reference_train(model, loader, dev, epochs: int, lr: float) -> None:
    """The plain loop: DataLoader batches, fp32, SGD momentum 0.9, weight decay 5e-4."""
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet20", help="architecture trained by both loops")
    ap.add_argument("--prune", type=float, default=None,
                    help="train the prune_at_init version at this ratio instead of the dense net")
    ap.add_argument("--data", default="synthetic", choices=["synthetic", "fashion-mnist"])
    ap.add_argument("--images", type=int, default=2560, help="training images per epoch")
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per run")
    ap.add_argument("--batch", type=int, default=128, help="batch size (both loops)")
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader num_workers")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs; the fastest is kept")
    ap.add_argument("--lr", type=float, default=0.05, help="constant learning rate (both loops)")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")  # jit-trace deprecation notices from torch-pruning

    if args.data == "synthetic":
        ds = load_dataset("synthetic", num_train=args.images, num_test=1)
    else:
        ds = load_dataset("fashion-mnist", max_train=args.images, max_test=1)
    x, y = ds.x_train, ds.y_train
    init = build_model(args.arch, num_classes=ds.num_classes, seed=0)
    name = args.arch
    if args.prune is not None:
        init, _ = prune_at_init(init, args.prune, torch.zeros(1, *x.shape[1:]))
        name = f"{args.arch} p={args.prune:g}"

    tf = transforms.Compose([
        transforms.RandomCrop(ds.image_size, padding=ds.padding),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(ds.mean, ds.std),
    ])
    loader = DataLoader(ArrayImages(x, y, tf), batch_size=args.batch, shuffle=True,
                        num_workers=args.workers, pin_memory=dev.type == "cuda")
    ref_model, pf_model = copy.deepcopy(init), copy.deepcopy(init)

    def run_ref(epochs: int):
        return lambda: reference_train(ref_model, loader, dev, epochs, args.lr)

    def run_pf(epochs: int):
        return lambda: train(pf_model, x, y, mean=ds.mean, std=ds.std, epochs=epochs,
                             padding=ds.padding, batch_size=args.batch, lr=args.lr,
                             schedule="constant", device=dev, progress=False)

    run_ref(1)()  # warm-up epochs: allocator, oneDNN/cuDNN primitives, page cache
    run_pf(1)()
    seen = args.images * args.epochs
    sides = [("reference (DataLoader+PIL)", run_ref(args.epochs)),
             ("prunefuse.train", run_pf(args.epochs))]
    runs: dict[str, list] = {label: [] for label, _ in sides}
    # Interleave the two so that a burst of foreign load does not hit one side only.
    for _ in range(max(1, args.repeats)):
        for label, fn in sides:
            runs[label].append(timed(fn, dev))
    rows = []
    for label, _ in sides:
        sec, _, load = min(runs[label], key=lambda r: r[0])
        rows.append({"loop": label, "seconds": sec, "images/s": seen / sec, "load": load})
    print(f"{name} ({count_params(init):,} params) on {args.images} {ds.name} images x "
          f"{args.epochs} epoch(s), batch {args.batch}, reference num_workers={args.workers}; "
          f"fastest of {args.repeats}; load = other processes' CPU load (cores)")
    print(table(rows, [("loop", ""), ("seconds", ".2f"), ("images/s", ",.0f"), ("load", ".1f")]))
    ratio = rows[1]["images/s"] / rows[0]["images/s"]
    goal = f"goal on CPU >= {GOAL}x: {'MET' if ratio >= GOAL else 'NOT MET'}"
    print(f"HEADLINE prunefuse.train / reference = {ratio:.2f}x images/s"
          + (f"; {goal}" if dev.type == "cpu" else " (CPU goal not applicable)"))


if __name__ == "__main__":
    main()
