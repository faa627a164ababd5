"""One machine per block: a block's runs are only ever paired with runs of the same machine.

Float rounding differs between CPU instruction sets and training amplifies it, and seconds
from two machines do not compare, so every run of a block (prunefuse.comparisons) must run on
one machine. A batch resumed on another machine finishes an incomplete block by running all
of its arms again there: the block's finished runs from the other machine are moved aside
(``set_aside/``, kept, never read by the artefacts), never paired across machines. A complete
block stays as it is, whichever machine ran it.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from ..device import cpu_description
from .records import SET_ASIDE, is_done, machine_of, read_config


def this_machine(threads: int | None = None) -> str:
    """This machine, as :func:`machine_of` names it for a run with ``threads`` torch threads
    (default: ``OMP_NUM_THREADS``, else torch's current count)."""
    if threads is None:
        threads = int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    return machine_of({"cpu": cpu_description(), "threads": threads,
                       "torch_version": torch.__version__})


def set_aside_foreign(runs: list, runs_dir: str | os.PathLike, *, machine: str,
                      log: Callable[[str], None] = print) -> list[Path]:
    """Move aside the finished runs of every incomplete block that ran on another machine.

    Args:
        runs: planned runs (:class:`prunefuse.grid.Run`, with ``block``); runs without a
            block are left alone.
        runs_dir: the batch's ``runs/`` folder.
        machine: the machine the batch runs on now (:func:`this_machine`).
        log: one line per run moved.

    Returns:
        Where each moved run now lies (``<batch>/set_aside/<run_id>.<n>``).
    """
    runs_dir = Path(runs_dir)
    blocks: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        if run.block is not None:
            blocks[run.block].append(run.run_id)
    moved = []
    for block, ids in blocks.items():
        done = [rid for rid in ids if is_done(runs_dir / rid)]
        if len(done) == len(ids):
            continue
        foreign = [rid for rid in done
                   if machine_of(read_config(runs_dir / rid)) != machine]
        for rid in foreign:
            dest_root = runs_dir.parent / SET_ASIDE
            dest_root.mkdir(exist_ok=True)
            n = 0
            while (dest := dest_root / f"{rid}.{n}").exists():
                n += 1
            shutil.move(str(runs_dir / rid), dest)
            moved.append(dest)
            log(f"block {block}: {rid} ran on another machine and the block is incomplete; "
                f"moved to {dest}, the block runs again here")
    return moved


__all__ = ["SET_ASIDE", "machine_of", "this_machine", "set_aside_foreign"]
