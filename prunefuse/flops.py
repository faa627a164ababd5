"""Cost accounting in MACs (docs/method.md, "Cost accounting").

Caveat first: fvcore counts one fused multiply-add as one "flop". We store what it returns as
**MACs** and derive FLOPs = 2 x MACs in exactly one place, :func:`macs_to_flops`.

The ledger convention: training one sample for one epoch costs 3 x forward MACs (forward plus
a backward about twice as expensive); scoring one pool sample costs 1 x forward MACs; KD adds
one teacher forward per training sample and epoch; evaluating one test image costs 1 x
forward MACs.

Which category each piece of a run's work is charged to, and in which round, is the one
charging rule of :mod:`prunefuse.charges`.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn

TRAIN_FACTOR = 3  # forward + backward, in forward-MAC units per sample-epoch
SELECTION = ("selector_training", "pool_scoring")  # to choose the labeled set
FUSION = ("fusion_source", "teacher_forward")  # PruneFuse's extra work for the fused target
CATEGORIES = SELECTION + FUSION + ("target_training", "evaluation")


def macs_to_flops(macs: int | float) -> int | float:
    """FLOPs = 2 x MACs. The only place in the package where the factor 2 appears."""
    return 2 * macs


@dataclass(frozen=True)
class MacsReport:
    """Forward MACs of one input, by operator, and the ops fvcore could not count."""

    total: int
    by_operator: dict[str, int]
    unsupported_ops: dict[str, int]


def macs_report(model: nn.Module, example_input: torch.Tensor) -> MacsReport:
    """Count forward MACs with fvcore in eval mode, without changing the model.

    Args:
        model: any module; it is deep-copied, so its mode and parameters are untouched.
        example_input: one batch; MACs are reported for the whole batch.

    Returns:
        A :class:`MacsReport`. Ops fvcore skips (element-wise adds, ReLU) are listed in
        ``unsupported_ops`` with their call counts, not silently dropped from view.
    """
    probe = copy.deepcopy(model).eval()
    # fvcore logs a warning per unsupported op and per uncalled module; we record them instead.
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jit deprecation notices and tracer warnings
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(probe, example_input.to(_device_of(probe)))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = int(analysis.total())
            by_op = {k: int(v) for k, v in analysis.by_operator().items()}
            unsupported = dict(analysis.unsupported_ops())
    finally:
        logger.setLevel(level)
    return MacsReport(total=total, by_operator=by_op, unsupported_ops=unsupported)


def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Forward MACs of ``model`` on ``example_input`` (fvcore, eval mode).

    Args:
        model: the network.
        example_input: a batch; pass one sample (batch 1) for per-sample MACs.

    Returns:
        Total multiply-accumulates for the batch, as an int.
    """
    return macs_report(model, example_input).total


def macs_per_sample(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Forward MACs for one ``(C, H, W)`` image."""
    return count_macs(model, torch.zeros(1, *image_shape))


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def training_macs(forward_macs: int, samples: int, epochs: int) -> int:
    """MACs of training on ``samples`` images for ``epochs`` epochs: :data:`TRAIN_FACTOR` forward
    MACs per image-epoch (docs/method.md, "Cost accounting")."""
    return TRAIN_FACTOR * forward_macs * samples * epochs


@dataclass
class CostLedger:
    """MACs and wall-clock seconds spent, per category of :data:`CATEGORIES`.

    The MACs it is given come from the charging rule (:mod:`prunefuse.charges`, which counts
    training with :func:`training_macs`); the ledger only adds them up, with the seconds.
    """

    macs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))

    def add_macs(self, category: str, macs: int) -> int:
        """Record ``macs`` already counted by the rule (:mod:`prunefuse.charges`)."""
        return self._add(category, macs)

    def add_seconds(self, category: str, seconds: float) -> None:
        self._check(category)
        self.seconds[category] += float(seconds)

    @contextmanager
    def timed(self, category: str) -> Iterator[None]:
        """Add the wall-clock time of the ``with`` body to ``category``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_seconds(category, time.perf_counter() - start)

    def _add(self, category: str, macs: int) -> int:
        self._check(category)
        self.macs[category] += int(macs)
        return int(macs)

    @staticmethod
    def _check(category: str) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category={category!r}: must be one of {CATEGORIES}")

    def total(self, categories: tuple[str, ...]) -> tuple[int, float]:
        """(MACs, seconds) spent on ``categories``: :data:`SELECTION` (choosing samples:
        training the selector and scoring the pool) or :data:`FUSION` (the fusion source not
        needed for selection, plus the KD teacher's forwards)."""
        return sum(self.macs[c] for c in categories), sum(self.seconds[c] for c in categories)

    def to_dict(self) -> dict:
        """JSON-ready view, with FLOPs derived from MACs."""
        total = sum(self.macs.values())
        (sel_macs, sel_seconds), (fus_macs, fus_seconds) = self.total(SELECTION), self.total(FUSION)
        return {
            "macs": dict(self.macs),
            "seconds": dict(self.seconds),
            "total_macs": total,
            "total_flops": macs_to_flops(total),
            "selection_macs": sel_macs,
            "selection_flops": macs_to_flops(sel_macs),
            "selection_seconds": sel_seconds,
            "fusion_macs": fus_macs,
            "fusion_seconds": fus_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CostLedger:
        return cls(macs={**dict.fromkeys(CATEGORIES, 0), **d["macs"]},
                   seconds={**dict.fromkeys(CATEGORIES, 0.0), **d["seconds"]})
