"""Drawing a budget of pool indices: the check every selection rule applies to its budget,
and the uniform random draw (the ``random`` score, and k-centers' first pick when there is no
labeled set)."""

from __future__ import annotations

import torch


def check_budget(n: int, budget: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget={budget!r}: must be an int")
    if n == 0:
        raise ValueError("pool: the unlabeled pool is empty; nothing left to select")
    if not 0 <= budget <= n:
        raise ValueError(f"budget={budget}: must be in [0, {n}] (the pool size)")


def random(n: int, budget: int, seed: int) -> torch.Tensor:
    """``budget`` distinct indices from ``range(n)``, uniformly, from ``seed``."""
    check_budget(n, budget)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:budget]
