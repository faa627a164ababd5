"""Milliseconds per SGD step of a ResNet-20 on one Fashion-MNIST-sized batch (32 x 1 x 28 x 28),
fp32 against bf16 autocast on the CPU, at 1 and 2 torch threads: whether ``cpu_precision=bf16``
pays on this CPU (it does only with native bf16, AVX512-BF16 or AMX).

    python benchmarks/precision_step.py
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from prunefuse.models import build_model


def step_ms(threads: int, bf16: bool, steps: int = 10, warmup: int = 3) -> float:
    torch.set_num_threads(threads)
    model = build_model("resnet20", 10, 1, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
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
    print("threads  fp32 ms/step  bf16 ms/step  bf16/fp32")
    for threads in (1, 2):
        fp32, bf16 = step_ms(threads, False), step_ms(threads, True)
        print(f"{threads:>7}  {fp32:>12.0f}  {bf16:>12.0f}  {bf16 / fp32:>9.2f}")


if __name__ == "__main__":
    main()
