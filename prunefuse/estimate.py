"""What a planned grid costs before it runs: runs, MACs by the ledger's formulas, hours.

Caveat first: the hours assume that every network of the grid trains at the same MACs per
second as the profile's target at the given images per second. Small networks usually run
below that rate (worse use of the hardware), so the hours are a lower bound for them.

The MACs follow docs/method.md, "Cost accounting", exactly as the ledger charges them:
3 x forward MACs per training image and epoch, 1 x per pool image scored (k-centers also
forwards the labeled set), 1 x per KD teacher forward and per test image evaluated.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

# Images in the pool and the test set, classes, channels, side, before max_train / max_test.
DATASET_SHAPES: dict[str, tuple[int, int, int, int, int]] = {
    "cifar10": (50_000, 10_000, 10, 3, 32), "cifar100": (50_000, 10_000, 100, 3, 32),
    "tiny-imagenet": (100_000, 10_000, 200, 3, 64), "fashion-mnist": (60_000, 10_000, 10, 3, 32),
    "synthetic": (512, 256, 10, 3, 32),
}


@functools.cache
def forward_macs(arch: str, num_classes: int, in_channels: int, image_size: int,
                 ratio: float | None = None) -> int:
    """Forward MACs per image of ``arch``, or of its pruning at ``ratio`` (fvcore, eval)."""
    import torch

    from .flops import count_macs
    from .models import build_model
    from .prune import prune_at_init

    model = build_model(arch, num_classes, in_channels, seed=0)
    x = torch.zeros(1, in_channels, image_size, image_size)
    if ratio is not None:
        model, _ = prune_at_init(model, ratio, x)
    return count_macs(model, x)


def _sizes(cfg: dict[str, Any], pool: int) -> list[int]:
    """|L_0|, |L_1|, ... as the runner makes them."""
    return [max(1, round(cfg["initial_fraction"] * pool))] + [round(b * pool)
                                                              for b in cfg["budgets"]]


def run_macs(cfg: dict[str, Any]) -> dict[str, int]:
    """The MACs a run will charge, by ledger category, from its validated config alone.

    Args:
        cfg: a config from :func:`prunefuse.config.make_config`.

    Returns:
        ``{category: MACs}`` over :data:`prunefuse.flops.CATEGORIES`.
    """
    from .flops import CATEGORIES, TRAIN_FACTOR
    from .select import SCORE_SPECS

    if cfg["dataset"] not in DATASET_SHAPES:
        raise ValueError(f"dataset={cfg['dataset']!r}: no known size; add it to "
                         "prunefuse.estimate.DATASET_SHAPES")
    n_train, n_test, classes, ch, side = DATASET_SHAPES[cfg["dataset"]]
    pool = min(n_train, cfg["max_train"] or n_train)
    n_test = min(n_test, cfg["max_test"] or n_test)
    shape = (classes, ch, side)
    tgt = forward_macs(cfg["arch"], *shape)
    sel = {"prunefuse": lambda: forward_macs(cfg["arch"], *shape, cfg["ratio"]),
           "dense": lambda: tgt, "svp": lambda: forward_macs(cfg["proxy_arch"], *shape),
           "random": lambda: 0}[cfg["selector"]]()
    spec = SCORE_SPECS[cfg["score"]]
    selects = spec.model and cfg["selection_from"] is None
    sizes = _sizes(cfg, pool)
    rounds = len(cfg["budgets"])
    es, et = cfg["selector_epochs"], cfg["target_epochs"]
    evaluated = [r for r, b in enumerate(cfg["budgets"], 1) if b in cfg["eval_budgets"]]
    macs = dict.fromkeys(CATEGORIES, 0)
    trained = set()  # labeled sets whose selector is trained (and tested) once

    def train_selector(n_round: int, category: str) -> None:
        if n_round not in trained:
            trained.add(n_round)
            macs[category] += TRAIN_FACTOR * sel * sizes[n_round] * es
            macs["evaluation"] += sel * n_test

    if selects:
        for r in range(rounds):
            train_selector(r, "selector_training")
            n = sizes[r]
            macs["pool_scoring"] += sel * (pool - n + (n if spec.labeled_features else 0))
    pf = cfg["selector"] == "prunefuse"
    t_sync = cfg["t_sync"]
    # the test set after every eval_every-th epoch and after the last one
    n_evals = math.ceil(et / cfg["eval_every"]) if cfg["eval_every"] else min(et, 1)
    for r in evaluated:
        n = sizes[r]
        sync = bool(t_sync) and r % t_sync == 0 and r < rounds
        if pf:
            later = selects and r < rounds
            train_selector(r, "selector_training" if later else "fusion_source")
        target, teacher = ("selector_training",) * 2 if sync else ("target_training",
                                                                    "teacher_forward")
        macs[target] += TRAIN_FACTOR * tgt * n * et
        if pf and cfg["kd_lambda"] > 0:
            macs[teacher] += sel * n * et
        macs["evaluation"] += tgt * n_test * n_evals
        if sync:  # the next round's selector, from the derived start, on the same set
            macs["selector_training"] += TRAIN_FACTOR * sel * n * es
            macs["evaluation"] += sel * n_test
    return macs


def plan_cost(the_plan, *, images_per_second: float) -> dict[str, dict[str, float]]:
    """Runs, MACs and hours per artefact of a :class:`prunefuse.reproduce.Plan`, and in total
    (each run counted once, however many artefacts it serves).

    Args:
        the_plan: from :func:`prunefuse.reproduce.plan`.
        images_per_second: training throughput of the profile's target architecture on the
            machine that will run the grid (images per second, forward and backward).

    Returns:
        ``{artefact or "total": {"runs": n, "macs": MACs, "hours": h}}``.
    """
    from .config import make_config

    if not images_per_second > 0:
        raise ValueError(f"images_per_second={images_per_second!r}: must be > 0")
    # an artefact that needs no runs of its own (the claims) costs nothing
    out: dict[str, dict[str, float]] = {a: {"runs": 0, "macs": 0, "hours": 0.0}
                                        for a in the_plan.notebooks}
    macs_per_s = None
    for run in the_plan.runs:
        cfg = make_config(the_plan.profile, **run.config)
        n_train, _, classes, ch, side = DATASET_SHAPES[cfg["dataset"]]
        if macs_per_s is None:
            macs_per_s = 3 * forward_macs(cfg["arch"], classes, ch, side) * images_per_second
        total = sum(run_macs(cfg).values())
        for key in [*run.artefacts, "total"]:
            row = out.setdefault(key, {"runs": 0, "macs": 0, "hours": 0.0})
            row["runs"] += 1
            row["macs"] += total
            row["hours"] = row["macs"] / macs_per_s / 3600
    return out


def describe_cost(cost: dict[str, dict[str, float]], images_per_second: float) -> str:
    """The table ``reproduce --dry-run`` prints."""
    lines = [f"cost at {images_per_second:g} training images/s of the target (MACs by the "
             "ledger's formulas; hours assume that MAC rate for every network):",
             f"  {'artefact':<18}{'runs':>6}{'PMACs':>12}{'hours':>10}"]
    for key, row in cost.items():
        lines.append(f"  {key:<18}{row['runs']:>6}{row['macs'] / 1e15:>12.4g}"
                     f"{row['hours']:>10.3g}")
    return "\n".join(lines)


def measure_images_per_second(arch: str, dataset: str, *, batch_size: int = 128,
                              steps: int = 5, device: str | None = None) -> float:
    """Training images per second of ``arch`` on this machine: ``steps`` SGD steps on random
    images of ``dataset``'s shape after one warm-up step."""
    import torch
    import torch.nn.functional as F

    from .device import resolve_device
    from .models import build_model

    _, _, classes, ch, side = DATASET_SHAPES[dataset]
    dev = resolve_device(device)
    model = build_model(arch, classes, ch, seed=0).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, ch, side, side, device=dev)
    y = torch.randint(0, classes, (batch_size,), device=dev)
    for i in range(steps + 1):
        if i == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return steps * batch_size / (time.perf_counter() - start)
