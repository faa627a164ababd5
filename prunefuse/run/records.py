"""The run record: what a run folder holds, how it is written, and how it is read back.

Every other module names these files through the constants below and reads records through
the readers here. A run folder ``<out>/<run_id>/`` holds:

- ``config.json``: the parameters, seed, package version, git commit, torch and device;
- ``metrics.jsonl``: one JSON line per selection round and per target training;
- ``selections/round_RR.json`` (and ``round_RR.scores.npz``): the labeled set after each round;
- ``ledger.json``: MACs and seconds per cost category (docs/method.md, "Cost accounting");
- ``index_map.json``: the channels the pruned selector kept (PruneFuse runs);
- ``state.json``: the committed steps, written last at every step (the resume point);
- ``cache/``: trained selectors, keyed by their labeled set;
- ``log.txt``: output of each attempt under ``prunefuse reproduce``;
- ``DONE``: the completion marker, holding the time the run finished.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so
a killed run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from .legacy import config_value, fusion_macs

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SELECTIONS = "selections"
LEDGER = "ledger.json"
INDEX_MAP = "index_map.json"
STATE = "state.json"
CACHE = "cache"
LOG = "log.txt"
DONE = "DONE"
DEFAULT_OUT = "runs"  # where a single run's folder goes unless told (``prunefuse run --out``)
DEMO_OUT = f"{DEFAULT_OUT}/demo"  # ``prunefuse demo``'s records, unless told
# a report of finished runs (:func:`write_report`, the demo)
RESULTS_CSV, SUMMARY_CSV, SUMMARY_MD = "results.csv", "summary.csv", "summary.md"


def batch_out(profile: str) -> str:
    """Where ``prunefuse reproduce --profile PROFILE`` writes its batch unless told."""
    return f"{DEFAULT_OUT}/reproduce-{profile}"


def selector_file(key: str) -> str:
    """The name, in a run's ``cache/``, of the trained selector with key ``key``."""
    return f"selector-{key}.pt"


def v2_selector_file(round_: int) -> str:
    """The name, in a run's ``cache/``, of the selector V2 derived from round ``round_``'s target."""
    return f"v2-round_{round_:02d}.pt"

# A batch folder (``prunefuse reproduce``): the run folders, the executed artefact notebooks,
# the tables and figures, the plan and the report page.
BATCH_RUNS = "runs"
BATCH_NOTEBOOKS = "notebooks"
BATCH_FIGURES = "figures"
PLAN = "plan.json"
REPORT = "report.html"


def is_done(run_dir: str | os.PathLike) -> bool:
    """Whether the run in ``run_dir`` finished (its ``DONE`` marker exists)."""
    return (Path(run_dir) / DONE).exists()


def mark_done(run_dir: str | os.PathLike) -> Path:
    """Write the completion marker, the last file of a run."""
    return atomic_write_text(Path(run_dir) / DONE, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


def finished_at(run_dir: str | os.PathLike) -> str:
    """When the run finished (``DONE``'s timestamp, ISO 8601)."""
    return (Path(run_dir) / DONE).read_text().strip()


def read_state(run_dir: str | os.PathLike) -> dict | None:
    """The committed state of a run (``state.json``), or None before its first commit."""
    path = Path(run_dir) / STATE
    return json.loads(path.read_text()) if path.exists() else None


def committed_steps(run_dir: str | os.PathLike) -> list[str]:
    """The steps a run has committed (``round_0``, ``round_1``, ``target_1``, ...); ``[]`` when
    there is no state yet or it cannot be read (a run being written by another process)."""
    try:
        return list((read_state(run_dir) or {}).get("steps", []))
    except (OSError, ValueError):
        return []


def selection_path(run_dir: str | os.PathLike, round_: int) -> Path:
    """Where the labeled set after round ``round_`` is recorded."""
    return Path(run_dir) / SELECTIONS / f"round_{round_:02d}.json"


def index_map_path(run_dir: str | os.PathLike, round_: int | None = None) -> Path:
    """Where a PruneFuse run's index map is recorded: the initial one, or (V2) the one in use
    after round ``round_``'s sync."""
    name = INDEX_MAP if round_ is None else f"index_map_round_{round_:02d}.json"
    return Path(run_dir) / name


def selection_rounds(run_dir: str | os.PathLike) -> list[int]:
    """The rounds whose selection a run has recorded, round 0 (the initial set) first."""
    return sorted(int(p.name[6:8]) for p in (Path(run_dir) / SELECTIONS).glob("round_??.json"))


def read_selection(run_dir: str | os.PathLike, round_: int) -> dict:
    """Round ``round_``'s record: ``added`` and ``labeled`` dataset indices (and its metrics)."""
    return json.loads(selection_path(run_dir, round_).read_text())


def read_selections(run_dir: str | os.PathLike) -> list[dict]:
    """Every round's record of a run, round 0 (the initial set) first."""
    return [json.loads(p.read_text())
            for p in sorted((Path(run_dir) / SELECTIONS).glob("round_*.json"))]


def read_config(run_dir: str | os.PathLike) -> dict:
    """``config.json`` of a run: its parameters under ``config``, and what it ran on."""
    return json.loads((Path(run_dir) / CONFIG).read_text())


class DiskFullError(OSError):
    """A record could not be written because the disk (or the quota) is full: one line,
    ``disk full: <path>``. Nothing was lost: the file's previous version, if any, is
    untouched, so the same command resumes once there is space."""

    def __init__(self, path: str | os.PathLike, code: int = errno.ENOSPC):
        super().__init__(code, "disk full", str(path))

    def __str__(self) -> str:
        return f"disk full: {self.filename}"


_TMP_SUFFIX = ".tmp"


def _atomic(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; records are for colleagues too
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path, err.errno) from err
        raise
    return path


# What mkstemp names _atomic's temporary file: ".NAME." + 8 random characters + _TMP_SUFFIX.
_PARTIAL = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX) + "$")


def sweep_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Remove what a killed writer left: the temporary files of :func:`_atomic` under ``folder``.

    A write is a temporary file renamed over its target, so a kill at any moment leaves the
    target whole (old or new) and, at worst, one ``.NAME.<8 random characters>.tmp`` beside it
    (:data:`_PARTIAL`). Call this with
    the run's lock held, before resuming. Returns the paths removed.
    """
    gone = []
    for tmp in sorted(Path(folder).rglob(".*.tmp")):
        if tmp.is_file() and _PARTIAL.match(tmp.name):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for a moment, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


LOCK = ".lock"  # in each run folder: the fcntl lock of the process computing the run


class RunBusyError(RuntimeError):
    """Another process is computing this run (it holds the run folder's lock)."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike):
    """Hold the exclusive lock of a run folder while computing it.

    A POSIX ``fcntl`` lock on ``run_dir/.lock``: it works across machines on NFS, and the
    kernel releases it when the holder dies, even by SIGKILL, so a killed run never blocks
    its resume. The file names the holder (pid, host, start time) for the message.

    Raises:
        RunBusyError: another process holds the lock; the message names it.
    """
    import fcntl

    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
            raise RunBusyError(f"{run_dir}: another process is computing this run ({holder}); "
                               "wait for it to finish (the run is then skipped) or stop it "
                               "first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically. Serialized in memory first: torch's own writer reports a
    full disk as an unrelated ``unexpected pos`` error, a plain write as ENOSPC."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return _atomic(path, lambda f: f.write(buffer.getbuffer()))


def scores_path(run_dir: str | os.PathLike, round_: int) -> Path:
    """Where the scores behind round ``round_``'s selection are kept."""
    return Path(run_dir) / SELECTIONS / f"round_{round_:02d}.scores.npz"


def write_scores(run_dir: str | os.PathLike, round_: int, values, picks) -> Path:
    """Record the pool's scores of one round, compactly: ``values`` as float16, one per pool
    sample in pool order (the pool of round r is the sorted complement of round r-1's labeled
    set), and ``picks``, the positions in that order of the samples selected, in pick order."""
    import numpy as np

    def write(f):
        np.savez_compressed(f, values=values.float().cpu().numpy().astype(np.float16),
                            picks=picks.cpu().numpy().astype(np.int32))

    return _atomic(scores_path(run_dir, round_), write)


def read_scores(run_dir: str | os.PathLike, round_: int) -> dict | None:
    """The scores of round ``round_`` as numpy arrays: ``pool`` (dataset indices of the scored
    pool), ``values`` (float32) and ``picks`` (positions into ``pool``); None if the run did
    not record any (random selection, or a record older than score recording)."""
    import numpy as np

    path = scores_path(run_dir, round_)
    if not path.exists():
        return None
    with np.load(path) as z:
        values, picks = z["values"].astype(np.float32), z["picks"].astype(np.int64)
    before = read_selection(run_dir, round_ - 1)["labeled"]
    pool_size = read_config(run_dir)["pool_size"]
    pool = np.setdiff1d(np.arange(pool_size), np.asarray(before, dtype=np.int64))
    if pool.shape[0] != values.shape[0]:
        raise ValueError(f"{path}: {values.shape[0]} scores for a pool of {pool.shape[0]}")
    return {"pool": pool, "values": values, "picks": picks}


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a JSON-lines file; ``[]`` when it does not exist.

    Raises:
        ValueError: a line is not a JSON object (a truncated or hand-edited file), naming the
            file and the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {i} is not valid JSON ({err.msg}); truncated or "
                             "corrupt") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {i} is not a JSON object")
        rows.append(row)
    return rows


# Columns of the results table that hold a list per row (one value per evaluated epoch).
PER_EPOCH = ["epoch_acc_pct"]

# Target variants of the fusion / KD ablation (docs/method.md, "Step 3: fuse" and "Step 4:
# train with KD"), in legend order.
VARIANTS = ["scratch", "scratch + KD", "fused, no KD", "fused + KD (PruneFuse)"]


def variant(cfg: dict) -> str:
    """How a run's target starts and learns: one of :data:`VARIANTS`."""
    kd = cfg["kd_lambda"] > 0
    if cfg["target_init"] == "fused":
        return VARIANTS[3] if kd else VARIANTS[2]
    return VARIANTS[1] if kd else VARIANTS[0]


# The baselines' names, everywhere a table, figure, caption or claim names them (the study's
# arms take theirs from here too, prunefuse.comparisons).
SELECTOR_LABELS = {"dense": "dense AL", "random": "random"}


def pf_label(ratio: float) -> str:
    """PruneFuse's name at pruning ratio ``ratio`` in tables, legends and claims."""
    return f"PruneFuse p={ratio:g}"


def svp_label(proxy: str) -> str:
    """SVP's name with ``proxy`` as its selector, in tables, legends and claims."""
    return f"SVP ({proxy})"


def method_label(cfg: dict) -> str:
    """The method's name in tables and legends: ``PruneFuse p=0.5`` (fused + KD, as the paper
    runs it; other variants in brackets), ``SVP (resnet8)``, ``dense AL`` or ``random``."""
    sel = cfg["selector"]
    if sel == "prunefuse":
        v = variant(cfg)
        name = pf_label(cfg["ratio"]) + ("" if v == VARIANTS[3] else f" ({v})")
    elif sel == "svp":
        name = svp_label(cfg["proxy_arch"])
    else:
        name = SELECTOR_LABELS[sel]
    if config_value(cfg, "reading") != "ours":
        name += f" [{cfg['reading']}' reading]"
    if config_value(cfg, "report") == "best":
        name += f" ({BEST_LABEL})"
    return name


# How a best-over-epochs accuracy is labelled wherever it appears: the epoch was chosen by
# looking at the test set, so it is an optimistic estimate.
BEST_LABEL = "best epoch, selected on the test set"


def reported_acc(cfg: dict, target_row: dict) -> float:
    """The test accuracy a run's tables report (``report``): the best epoch's for ``best``,
    else the last epoch's (``both`` shows the best beside it, as ``best_acc_pct``)."""
    key = "best_test_acc" if config_value(cfg, "report") == "best" else "final_test_acc"
    return target_row[key]


def load_run(run_dir: str | os.PathLike) -> dict:
    """A run record as a dict: config.json's content plus metrics, ledger and DONE status.

    Raises:
        ValueError: a file of the record is not valid JSON, or config.json has no config;
            the message names the file.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); truncated "
                         "or corrupt") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{path}: not a run record (no \"config\" object)")
    record["metrics"] = read_jsonl(run_dir / METRICS)
    ledger = run_dir / LEDGER
    record["ledger"] = json.loads(ledger.read_text()) if ledger.exists() else None
    record["done"] = is_done(run_dir)
    record["finished"] = finished_at(run_dir) if record["done"] else None
    record["path"] = str(run_dir)
    return record


# A batch's folder for runs moved aside because their block must run again on another
# machine (prunefuse.blocks); find_runs never reads below it.
SET_ASIDE = "set_aside"


def find_runs(root: str | os.PathLike, done_only: bool = True,
              problems: list[str] | None = None) -> list[dict]:
    """Every run record under ``root`` (any depth, but not below a ``set_aside`` folder),
    finished ones only by default.

    A record that cannot be read (a truncated or empty ``metrics.jsonl``, bad JSON in
    ``config.json``), or a finished one with fewer target rows than its ``eval_budgets``, is
    left out and never silently: one line naming it goes to ``problems`` if given, else to
    :func:`warnings.warn`.

    Args:
        root: folder searched for ``config.json`` files.
        done_only: only runs with a ``DONE`` marker.
        problems: a list that receives one line per record left out.

    Returns:
        The records, as :func:`load_run` returns them, in path order.
    """
    runs = []
    for path in sorted(Path(root).rglob(CONFIG)):
        run_dir = path.parent
        if SET_ASIDE in run_dir.relative_to(root).parts[:-1]:
            continue  # moved aside from another machine (prunefuse.blocks): kept, never read
        done = is_done(run_dir)
        if not done and (done_only or not (run_dir / METRICS).exists()):
            continue
        try:
            run = load_run(run_dir)
            if done:
                _check_targets(run)
        except (OSError, ValueError, KeyError, TypeError) as err:
            line = f"skipped {run_dir}: {err}"
            if problems is None:
                warnings.warn(line, stacklevel=2)
            else:
                problems.append(line)
            continue
        runs.append(run)
    return runs


def _check_targets(run: dict) -> None:
    """A finished run has one target row per evaluated budget, each with its accuracy."""
    wanted = run["config"]["eval_budgets"]
    got = [m.get("budget") for m in run["metrics"] if m.get("kind") == "target"
           and m.get("final_test_acc") is not None]
    if sorted(got) != sorted(wanted):
        where = Path(run["path"]) / METRICS
        raise ValueError(f"finished ({DONE}) but {where} holds targets at budgets {got}, not at "
                         f"every one of eval_budgets {wanted}; empty or cut short")


PROVENANCE = ("run_id", "device", "threads", "cpu", "git_commit", "finished")


def provenance(run: dict) -> dict:
    """What a caption says about a run (:data:`PROVENANCE`), from a :func:`find_runs` record."""
    return dict(zip(PROVENANCE, (run["run_id"], run.get("device_name"), run.get("threads"),
                                 run.get("cpu"), run.get("git_commit"), run["finished"])))


def pool_draw_of(record: dict) -> str | None:
    """The first 12 hex digits of the sha256 of a run's drawn pool indices (``config.json``,
    ``data.pool``; the whole training set hashes its every index); None where the record
    does not name its draw (records older than the pool-per-seed design)."""
    digest = ((record.get("data") or {}).get("pool") or {}).get("indices_sha256")
    return digest[:12] if digest else None


def pool_draws_text(draws) -> str:
    """The pools some runs drew, per pool size, for a caption or the report page: how many
    distinct draws over how many seeds (``2 draws of 2 seeds at 4,000 images``), and how many
    runs' records do not name their draw. ``draws``: ``(pool size, draw or None, seed,
    run id)`` per run (:func:`pool_draw_of`); a run listed twice (one row per budget) counts
    once."""
    sizes: dict[int, tuple[set, set]] = {}
    unnamed = set()
    for size, draw, seed, rid in draws:
        if draw is None:
            unnamed.add(rid)
            continue
        named, seeds = sizes.setdefault(int(size), (set(), set()))
        named.add(draw)
        seeds.add(seed)
    parts = [f"{len(d)} draw{'s' if len(d) != 1 else ''} of {len(s)} seed"
             f"{'s' if len(s) != 1 else ''} at {n:,} images" for n, (d, s) in sorted(sizes.items())]
    if unnamed:
        parts.append(f"{len(unnamed)} run(s) whose record does not name its draw")
    return "; ".join(parts)


def machine_of(record: dict) -> str | None:
    """A run record's machine: its CPU (model, instruction set, cores), torch threads and
    torch version, as one string; None for a record that does not name its CPU. Two runs pair
    only when this is the same for both (prunefuse.blocks)."""
    if not record.get("cpu"):
        return None
    return f"{record['cpu']}; {record.get('threads')} thread(s); torch {record.get('torch_version')}"


def results_table(root: str | os.PathLike, done_only: bool = True,
                  problems: list[str] | None = None):
    """The tidy results table: one row per run and evaluated budget (pandas DataFrame).

    Every table, figure and report reads this. Accuracies are fractions in [0, 1]
    (``final_test_acc``, ``best_test_acc``) and the same in % (``acc_pct``, ``best_acc_pct``);
    ``epoch_acc_pct`` lists (epoch, accuracy in %) for the epochs the test set was evaluated
    after (``eval_every``) of the ``epochs_trained``; budgets as a fraction and in % of the
    pool; MACs are counts (fvcore: one multiply-add = one MAC) and seconds wall-clock.
    ``selection_*`` is cumulative up to that budget, ``target_training_*``
    is that budget's target training (with its KD teacher), ``fusion_*`` PruneFuse's extra
    work for the fused target. ``ratio`` is set for PruneFuse runs only, ``proxy_arch`` for
    SVP runs only; ``git_commit`` is the package's commit, ``finished`` when the run
    finished, ``machine`` where it ran (:func:`machine_of`; None where the record does not
    name its CPU) and ``pool_draw`` which pool it drew (:func:`pool_draw_of`). Records that
    cannot be read are left out as :func:`find_runs` says (``problems``).
    """
    import pandas as pd

    rows = []
    for run in find_runs(root, done_only, problems):
        cfg = run["config"]
        sel = run.get("selector_model") or {}
        for m in run["metrics"]:
            if m.get("kind") != "target":
                continue
            rows.append({
                "run_id": run["run_id"], "method": method_label(cfg), "variant": variant(cfg),
                "dataset": cfg["dataset"], "arch": cfg["arch"], "selector": cfg["selector"],
                "ratio": cfg["ratio"] if cfg["selector"] == "prunefuse" else None,
                "proxy_arch": cfg["proxy_arch"] if cfg["selector"] == "svp" else None,
                "score": cfg["score"], "target_init": cfg["target_init"],
                "kd_lambda": cfg["kd_lambda"], "selection_from": cfg["selection_from"],
                "seed": cfg["seed"], "budget": m["budget"],
                # a key a record lacks ran at its default (run.legacy)
                "fusion": config_value(cfg, "fusion"), "t_sync": config_value(cfg, "t_sync"),
                "v2_derive": config_value(cfg, "v2_derive"),
                "selector_init": config_value(cfg, "selector_init"),
                "budget_pct": round(100 * m["budget"], 6), "labeled": m["labeled"],
                "final_test_acc": m["final_test_acc"], "best_test_acc": m["best_test_acc"],
                "best_epoch": m.get("best_epoch"), "epochs_trained": len(m["epochs"]),
                "acc_pct": 100 * reported_acc(cfg, m), "best_acc_pct": 100 * m["best_test_acc"],
                "reported": config_value(cfg, "report"), "reading": config_value(cfg, "reading"),
                "target_epochs": cfg["target_epochs"], "kd_temperature": cfg["kd_temperature"],
                "kd_t2": config_value(cfg, "kd_t2"), "prune_steps": config_value(cfg, "prune_steps"),
                "epoch_acc_pct": [(e["epoch"], 100 * e["test_acc"]) for e in m["epochs"]
                                  if "test_acc" in e],
                "selection_macs": m["cumulative_selection_macs"],
                "selection_seconds": m["cumulative_selection_seconds"],
                "target_training_macs": m["target_training_macs"],
                "target_training_seconds": m["training_seconds"],
                "fusion_macs": fusion_macs(m),
                # like fusion_macs, the fusion source and the teacher's forwards (before the
                # teacher was timed apart, its seconds sat inside training_seconds)
                "fusion_seconds": m.get("fusion_source_seconds", 0.0)
                + m.get("teacher_forward_seconds", 0.0),
                "selector_params": sel.get("params"),
                "selector_macs_per_sample": sel.get("macs_per_sample"),
                "target_params": run["target"]["params"],
                "target_macs_per_sample": run["target"]["macs_per_sample"],
                **provenance(run),  # run_id keeps its place, first
                "machine": machine_of(run), "pool_draw": pool_draw_of(run),
            })
    return pd.DataFrame(rows)


SUMMARY_KEYS = ["dataset", "arch", "method", "score", "budget"]


def summarize(table):
    """Mean, std and n over seeds per dataset, target, method, score and budget."""
    if table.empty:
        return table
    table = table.assign(reported_acc=table["acc_pct"] / 100)
    g = table.groupby(SUMMARY_KEYS, dropna=False, sort=True)
    out = g.agg(
        acc_mean=("reported_acc", "mean"), acc_std=("reported_acc", "std"),
        best_acc_mean=("best_test_acc", "mean"), n_seeds=("seed", "nunique"),
        selection_macs=("selection_macs", "mean"), selection_seconds=("selection_seconds", "mean"),
        selector_params=("selector_params", "first"),
    ).reset_index()
    return out


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None,
                 problems: list[str] | None = None) -> dict[str, Path]:
    """Aggregate the runs under ``root`` into ``results.csv``, ``summary.csv`` and
    ``summary.md`` in ``out`` (default: ``root``). Returns the paths written.

    Records that cannot be read are left out, each named in ``problems`` (or warned about
    when it is None); see :func:`find_runs`."""
    out = Path(out or root)
    table = results_table(root, problems=problems).drop(columns=PER_EPOCH, errors="ignore")
    if table.empty:
        raise FileNotFoundError(f"root={str(root)!r}: no finished run records ({CONFIG} + "
                                f"{METRICS} + {DONE}) found under it")
    summary = summarize(table)
    paths = {"results": out / RESULTS_CSV, "summary": out / SUMMARY_CSV,
             "markdown": out / SUMMARY_MD}
    atomic_write_text(paths["results"], table.to_csv(index=False))
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    atomic_write_text(paths["markdown"], summary_markdown(summary) + "\n")
    return paths


def summary_markdown(summary) -> str:
    """Markdown table: accuracy as mean ± sd (%) with n (no sd for one seed), selection cost
    in GMACs and s."""
    from .stats import mean_sd_text

    lines = ["| dataset | target | method | score | budget (% of pool) | test acc (%) | n | "
             "selection (GMACs) | selection (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(
            f"| {r.dataset} | {r.arch} | {r.method} | {r.score} | {100 * r.budget:g} | "
            f"{mean_sd_text(100 * r.acc_mean, 100 * r.acc_std, r.n_seeds)} | {r.n_seeds} | "
            f"{r.selection_macs / 1e9:.3f} | {r.selection_seconds:.1f} |")
    return "\n".join(lines)
