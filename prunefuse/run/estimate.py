"""What a planned grid costs before it runs: runs, MACs by the ledger's formulas, hours.

Caveat first: the hours assume that every network of the grid trains at the same MACs per
second as the profile's target at the given images per second. Small networks usually run
below that rate (worse use of the hardware), so the hours are a lower bound for them.

The MACs are the ledger's: the one charging rule of :mod:`prunefuse.charges`.
"""

from __future__ import annotations

import functools
import time
from typing import Any


def dataset_shape(dataset: str, data_root: str | None = None,
                  options: dict | None = None) -> tuple[int, int, int, int, int, int]:
    """Images in the pool and the test set, classes, channels, height and width of ``dataset``
    (before ``max_train`` / ``max_test``): from its registration
    (:data:`prunefuse.data.DATASET_INFO`), else from the data itself, read from ``data_root``
    with the loader's ``options`` (a plugin or ``imagefolder``; loaded once per process).

    Raises:
        ConfigError: the data cannot be read (one line naming the dataset and data_root).
    """
    from ..data import DATASET_INFO

    i = DATASET_INFO.get(dataset)
    if i is not None:
        return i.num_train, i.num_test, i.num_classes, i.in_channels, i.image_size, i.image_size
    return _loaded_shape(dataset, data_root, tuple(sorted((options or {}).items())))


@functools.cache
def _loaded_shape(dataset: str, data_root: str | None, options: tuple) -> tuple:
    from .steps import load_data

    ds = load_data({"dataset": dataset, "data_root": data_root, **dict(options)})
    return (ds.num_train, ds.num_test, ds.num_classes, *ds.image_shape)


def config_shape(cfg: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    """:func:`dataset_shape` of a run config's dataset, read where the run reads it."""
    from ..data import dataset_options

    return dataset_shape(cfg["dataset"], cfg.get("data_root"), dataset_options(cfg))


@functools.cache
def forward_macs(arch: str, num_classes: int, in_channels: int, height: int, width: int,
                 ratio: float | None = None) -> int:
    """Forward MACs per ``height`` x ``width`` image of ``arch``, or of its pruning at
    ``ratio`` (fvcore, eval)."""
    import torch

    from ..flops import count_macs
    from ..models import build_model
    from ..prune import prune_at_init

    model = build_model(arch, num_classes, in_channels, seed=0)
    x = torch.zeros(1, in_channels, height, width)
    if ratio is not None:
        model, _ = prune_at_init(model, ratio, x)
    return count_macs(model, x)


def run_macs(cfg: dict[str, Any]) -> dict[str, int]:
    """The MACs a run will charge, by ledger category, from its validated config alone: the
    rule of :func:`prunefuse.charges.run_charges`, with per-image MACs counted by fvcore.

    Args:
        cfg: a config from :func:`prunefuse.config.make_config`.

    Returns:
        ``{category: MACs}`` over :data:`prunefuse.flops.CATEGORIES`.
    """
    from .charges import run_charges, totals

    n_train, n_test, *shape = config_shape(cfg)
    pool = min(n_train, cfg["max_train"] or n_train)
    n_test = min(n_test, cfg["max_test"] or n_test)
    tgt = forward_macs(cfg["arch"], *shape)
    sel = {"prunefuse": lambda: forward_macs(cfg["arch"], *shape, cfg["ratio"]),
           "dense": lambda: tgt, "svp": lambda: forward_macs(cfg["proxy_arch"], *shape),
           "random": lambda: 0}[cfg["selector"]]()
    return totals(run_charges(cfg, pool=pool, n_test=n_test, target_macs=tgt,
                              selector_macs=sel))


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
    from ..flops import training_macs
    from .config import make_config

    if not images_per_second > 0:
        raise ValueError(f"images_per_second={images_per_second!r}: must be > 0")
    # an artefact that needs no runs of its own (the claims) costs nothing
    out: dict[str, dict[str, float]] = {a: {"runs": 0, "macs": 0, "hours": 0.0}
                                        for a in the_plan.notebooks}
    macs_per_s = None
    for run in the_plan.runs:
        cfg = make_config(the_plan.profile, **run.config)
        if macs_per_s is None:
            macs_per_s = training_macs(forward_macs(cfg["arch"], *config_shape(cfg)[2:]),
                                       images_per_second, 1)
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
                              steps: int = 5, device: str | None = None,
                              data_root: str | None = None, options: dict | None = None) -> float:
    """Training images per second of ``arch`` on this machine: ``steps`` SGD steps on random
    images of ``dataset``'s shape (read from ``data_root`` with ``options`` when the dataset
    has no registered shape: :func:`dataset_shape`) after one warm-up step."""
    import torch
    import torch.nn.functional as F

    from ..device import resolve_device
    from ..models import build_model

    _, _, classes, ch, height, width = dataset_shape(dataset, data_root, options)
    dev = resolve_device(device)
    model = build_model(arch, classes, ch, seed=0).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, ch, height, width, device=dev)
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
