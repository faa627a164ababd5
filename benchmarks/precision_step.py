"""Milliseconds per SGD step of a network on one Fashion-MNIST-sized batch (batch x 1 x 28 x
28), fp32 against bf16 autocast on the CPU, at 1 and 2 torch threads: whether
``cpu_precision=bf16`` pays on this CPU. It does only with native bf16 (AVX512-BF16 or AMX);
elsewhere bf16 is emulated and slower.

    python benchmarks/precision_step.py
    python benchmarks/precision_step.py --arch resnet8 --steps 2
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _common import add_common_args, setup

from prunefuse.models import build_model


def step_ms(arch: str, threads: int, bf16: bool, batch: int, steps: int, warmup: int = 3) -> float:
    torch.set_num_threads(threads)
    model = build_model(arch, 10, 1, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet20", help="architecture (the cpu profile's target)")
    ap.add_argument("--batch", type=int, default=32, help="images per step (the cpu profile's)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps after 3 warm-up steps")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    print("threads  fp32 ms/step  bf16 ms/step  bf16/fp32")
    ratios = []
    for threads in (1, 2):
        fp32 = step_ms(args.arch, threads, False, args.batch, args.steps)
        bf16 = step_ms(args.arch, threads, True, args.batch, args.steps)
        ratios.append(bf16 / fp32)
        print(f"{threads:>7}  {fp32:>12.0f}  {bf16:>12.0f}  {bf16 / fp32:>9.2f}")
    print(f"HEADLINE bf16 autocast takes {min(ratios):.2f}-{max(ratios):.2f}x fp32's time per "
          f"{args.arch} step on this CPU ({'pays' if max(ratios) < 1 else 'does not pay'})")


if __name__ == "__main__":
    main()
