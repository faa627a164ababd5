"""One experiment, end to end, as a run record: the active-learning rounds with a selector,
then the target at each evaluated budget (docs/method.md, "Step 1: prune at initialization"
to "Step 5: report", and the baselines that share the runner). The steps themselves, what they
train and what they charge, are :class:`prunefuse.steps.Experiment`'s; this module checks a
run before it starts, runs the steps in order and commits the record after each.

Selectors: ``prunefuse`` (the dense target pruned at init, ratio p), ``dense`` (the target
itself selects: baseline AL), ``svp`` (a small proxy architecture), ``random``; or no
selection at all, with a reused selection (``selection_from``) or a given labeled set
(``labels_file``).

PruneFuse V2 (``t_sync > 0``, our interpretation; docs/method.md, "Where we had to choose"):
after every ``t_sync``-th round but the last, the target trained at that budget is also the
dense network the next selector is derived from (``v2_derive``: gather or re-prune). That
training is needed to select, so the ledger charges it to ``selector_training``. The derived
selector (and, for re-prune, its new index map) is the start of every later selector until
the next sync; ``index_map_round_XX.json`` records the map in use from round XX + 1 on.
``v2_loop="authors"`` (with ``t_sync=1``, ``v2_derive="reprune"``) is the round of the
authors' code: the selector, trained from the re-pruned net, selects as ours does, but the
fusion source and teacher is that selector trained further (warm) on the new labels, not a
new training from the re-pruned start (docs/method.md, "Readings").

Resumable: every step commits ``state.json`` last, atomically; a re-run of the same config
continues after the last committed step and ends with the same indices and metrics (on CPU)
as an uninterrupted run. A finished run (``DONE``) is skipped.
"""
from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data import ImageDataset
from ..data.fingerprint import check_unchanged, fingerprint
from ..device import cpu_description, device_name, resolve_device
from ..flops import CostLedger
from ..models import build_model, check_model, count_params
from .config import (
    PARAMS,
    ConfigError,
    check_sizes,
    labeled_counts,
    make_config,
    run_id,
    selection_keys,
    validate,
)
from .records import (
    CONFIG,
    DEFAULT_OUT,
    LEDGER,
    METRICS,
    STATE,
    atomic_write_json,
    atomic_write_text,
    committed_steps,
    finished_at,
    index_map_path,
    is_done,
    mark_done,
    read_config,
    read_jsonl,
    read_selection,
    read_selections,
    read_state,
    run_lock,
    selection_path,
    sweep_partial_writes,
    write_scores,
)
from .steps import Experiment, initial_labels, load_data


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _write_static(exp: Experiment) -> None:
    """config.json (the config and where and how the run computes) and the index map."""
    cfg = exp.cfg
    record = {
        "config": cfg, "run_id": exp.dir.name, "package_version": __version__,
        "git_commit": _git_commit(), "torch_version": torch.__version__,
        "python": platform.python_version(), "device": str(exp.device),
        "device_name": device_name(exp.device), "threads": torch.get_num_threads(),
        "cpu": cpu_description(),
        "pool_size": exp.pool_size, "test_size": exp.data.num_test,
        # Where the images were read and which files: path, size, sha256; and the tensors'
        # fingerprint, which a rerun's data must match (prunefuse.fingerprint).
        "data": exp.data.source, "data_fingerprint": fingerprint(exp.data),
        # The per-channel normalization every image went through ((x / 255 - mean) / std),
        # computed from the pool where the data are the user's own (image folders).
        "normalization": {"mean": list(exp.data.mean), "std": list(exp.data.std),
                          "image_shape": list(exp.data.x_train.shape[1:])},
        "target": {"arch": cfg["arch"], "params": count_params(exp.dense_init),
                   "macs_per_sample": exp.target_macs},
        "selector_model": None if exp.selector_init is None else {
            "params": count_params(exp.selector_init), "macs_per_sample": exp.selector_macs},
    }
    atomic_write_json(exp.dir / CONFIG, record)
    if exp.index_map is not None:
        atomic_write_json(index_map_path(exp.dir), exp.index_map)


def _selection_record(cfg: dict[str, Any]) -> tuple[Path, dict]:
    """The source run of ``selection_from``, checked: a run record whose selection parameters
    equal this run's (:func:`prunefuse.config.selection_keys`) and whose every selection round
    is committed."""
    source = Path(cfg["selection_from"])
    where = f"selection_from={cfg['selection_from']!r}"
    try:
        src = read_config(source)["config"]
    except FileNotFoundError:
        raise ConfigError(f"{where}: no run record there (no {CONFIG}); give the folder of a "
                          "run that has finished its selection") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{where}: its {CONFIG} is unreadable ({err!r})") from None
    for key in selection_keys(cfg):
        if src.get(key, PARAMS[key].default) != cfg[key]:
            raise ConfigError(f"{where}: its {key}={src.get(key)!r} differs from this run's "
                              f"{cfg[key]!r}; the run reusing a selection must match it")
    if not is_done(source):
        steps = committed_steps(source)
        done = sum(f"round_{r}" in steps for r in range(1, len(cfg["budgets"]) + 1))
        if done < len(cfg["budgets"]):
            raise ConfigError(f"{where}: its selection is unfinished ({done} of "
                              f"{len(cfg['budgets'])} rounds); finish that run first")
    return source, src


def _labels_in(cfg: dict[str, Any]) -> list[int]:
    """The whole numbers of ``cfg["labels_file"]``, in file order (:func:`read_labels_file`
    checks them against the pool and the budget); ConfigError in one line if there are none."""
    where = f"labels_file={cfg['labels_file']!r}"
    try:
        words = Path(cfg["labels_file"]).read_text().split()
    except OSError as err:
        raise ConfigError(f"{where}: unreadable ({err.strerror or err}); give a text file of "
                          "pool indices, one per line") from None
    values = []
    for word in words:
        try:
            values.append(float(word))
        except ValueError:
            raise ConfigError(f"{where}: {word!r} is not an index; the file holds pool "
                              "indices, one integer per line") from None
    if not values or any(v != int(v) for v in values):
        raise ConfigError(f"{where}: expected whole-number pool indices, one per line "
                          f"({'empty file' if not values else 'found fractions'})")
    return [int(v) for v in values]


def read_labels_file(cfg: dict[str, Any], pool_size: int) -> list[int]:
    """The pool indices of ``cfg["labels_file"]`` (whitespace-separated integers, as SVP's
    ``labeled_*.index`` files hold them), sorted, checked against the pool and the budget.

    Raises:
        ConfigError: one line naming labels_file and what is wrong with it.
    """
    where = f"labels_file={cfg['labels_file']!r}"
    labels = _labels_in(cfg)
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: {len(labels) - len(set(labels))} indices appear twice; "
                          "each image is labeled once")
    out = [i for i in labels if not 0 <= i < pool_size]
    if out:
        raise ConfigError(f"{where}: index {out[0]} is outside the pool of {pool_size} images "
                          f"(allowed: 0 to {pool_size - 1})")
    n = labeled_counts(cfg, pool_size)[-1]
    if n != len(labels):
        raise ConfigError(f"{where}: holds {len(labels)} labels, {len(labels) / pool_size:.6g} "
                          f"of the {pool_size}-image pool, but budgets={cfg['budgets']} gives "
                          f"{n}; set budgets={len(labels) / pool_size:.6g}")
    return sorted(labels)


def _check_labels_unchanged(cfg: dict[str, Any], run_dir: Path) -> None:
    """A run's id names its ``labels_file`` by path: refuse to resume, or to report as
    finished, a run whose file now holds other labels than the set it committed."""
    committed = selection_path(run_dir, 0)
    if not cfg["labels_file"] or not committed.exists():
        return
    try:
        now = sorted(_labels_in(cfg))
    except ConfigError:
        return  # unreadable or malformed: preflight says what is wrong, in one line
    if now != json.loads(committed.read_text())["labeled"]:
        raise ConfigError(f"labels_file={cfg['labels_file']!r}: holds other labels than the "
                          f"{run_dir} run trained on (a run's id names the file, not what it "
                          f"holds); save the new labels under another name, or remove that run "
                          f"folder to train on them")


def preflight(cfg: dict[str, Any], data: bool = True) -> ImageDataset | None:
    """Every check of a validated config that needs more than the config itself, before any
    folder is created or any training starts: the device is usable, ``selection_from`` is a
    finished run with the same selection keys, the data is there and large enough for the
    budgets (docs/method.md, "Protocol"), and the architectures offer ``features`` and ``fc``
    (:func:`prunefuse.models.check_model`).

    Args:
        cfg: a config from :func:`prunefuse.config.make_config`.
        data: also load the dataset (downloading it if allowed) and check the pool's size.

    Returns:
        The loaded dataset (``data=True``), for :class:`prunefuse.steps.Experiment` to reuse; else None.

    Raises:
        ConfigError: one line naming the parameter and what is wrong.
    """
    try:
        resolve_device(cfg["device"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg["selection_from"]:
        _selection_record(cfg)
    if not data:
        return None
    ds = load_data(cfg)
    check_sizes(cfg, ds.num_train)
    if cfg["labels_file"]:
        read_labels_file(cfg, ds.num_train)
    example = torch.zeros(1, *ds.image_shape)
    archs = [cfg["arch"]] + ([cfg["proxy_arch"]] if cfg["selector"] == "svp" else [])
    for arch in archs:
        try:
            check_model(build_model(arch, ds.num_classes, ds.in_channels, seed=0), arch,
                        ds.num_classes, example)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return ds


def run_experiment(config: dict[str, Any] | None = None, *, out: str | Path = DEFAULT_OUT,
                   profile: str | None = None, progress: bool = True,
                   log: Callable[[str], None] | None = None, **overrides) -> Path:
    """Run (or resume, or skip if done) one experiment and return its record folder.

    One process at a time computes a run: it holds the lock of :func:`prunefuse.runs.run_lock`
    on the folder, and a second process on the same run raises
    :class:`prunefuse.runs.RunBusyError` naming the holder.

    Args:
        config: parameters (see :data:`prunefuse.config.PARAMS`); merged with ``overrides``.
        out: parent folder; the run lives in ``out/<run_id>``.
        profile: ``paper``, ``cpu``, ``demo`` or ``smoke`` defaults under the given keys.
        progress: tqdm bars.
        log: called with one line when the run starts, resumes or is skipped, after each
            committed step, and when it finishes (the CLI prints it and appends it to
            ``log.txt``); None for silence.

    Returns:
        The run folder, holding config.json, metrics.jsonl, selections/, ledger.json,
        index_map.json (PruneFuse), state.json and DONE. With ``selection_from``, the
        target rows carry the selection cost of the reused selection (the ledger holds what
        this run spent: no selection).

    Raises:
        ConfigError: a bad parameter, an unusable device, missing or too few data, or a
            ``selection_from`` that is missing, unfinished or of another selection; raised
            by :func:`preflight` before the run folder is created. Also data that differ
            from those an existing run folder of the same parameters was made with
            (:mod:`prunefuse.fingerprint`): that run is neither resumed nor reported as
            finished.
    """
    cfg = make_config(profile, **{**(config or {}), **overrides})
    run_dir = Path(out) / run_id(cfg)
    say = log or (lambda line: None)
    _check_labels_unchanged(cfg, run_dir)
    if (run_dir / CONFIG).exists():  # started or finished: on the data it was made with only
        check_unchanged(read_config(run_dir), load_data(cfg), run_dir)
    if is_done(run_dir):
        say(f"skipped: finished {finished_at(run_dir)}, records in {run_dir}")
        return run_dir
    exp = Experiment(cfg, run_dir, progress, data=preflight(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        if is_done(run_dir):  # finished by the process that held the lock before us
            say(f"skipped: finished {finished_at(run_dir)}, records in {run_dir}")
        else:
            _run(exp, say)
    return run_dir


def _run(exp: Experiment, say: Callable[[str], None]) -> None:
    """The rounds and targets of :func:`run_experiment`, resuming after the last commit."""
    cfg, run_dir = exp.cfg, exp.dir
    sweep_partial_writes(run_dir)  # a killed run's half-written files; the lock is ours
    state = read_state(run_dir)
    if state is None:
        _write_static(exp)
        state = {"steps": [], "n_metrics": 0, "charged": [], "last_selector": None,
                 "ledger": CostLedger().to_dict()}
    n_steps = 1 + len(cfg["budgets"]) + len(cfg["eval_budgets"])
    if state["steps"]:
        say(f"resuming after {len(state['steps'])} of {n_steps} steps (last: "
            f"{state['steps'][-1]}); the results equal an uninterrupted run's")
    else:
        say(f"starting: {n_steps} steps (initial set, {len(cfg['budgets'])} selection rounds, "
            f"{len(cfg['eval_budgets'])} targets) on {exp.data.describe()}, {exp.device}")
    ledger = CostLedger.from_dict(state["ledger"])
    exp.use_v2_base(state.get("v2_base"))
    metrics = read_jsonl(run_dir / METRICS)[: state["n_metrics"]]
    source = None
    if cfg["selection_from"]:
        source = read_selections(_selection_record(cfg)[0])
    elif cfg["labels_file"]:  # a given labeled set: round 0 labels it, round 1 adds nothing
        source = [{"labeled": read_labels_file(cfg, exp.pool_size)}, {"added": [], "metrics": {}}]

    def commit(step: str, what: str) -> None:
        state["steps"].append(step)
        state["n_metrics"] = len(metrics)
        state["ledger"] = ledger.to_dict()
        atomic_write_text(run_dir / METRICS,
                          "".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))
        atomic_write_json(run_dir / LEDGER, state["ledger"])
        atomic_write_json(run_dir / STATE, state)  # the commit point
        say(f"step {len(state['steps'])}/{n_steps} {step}: {what}")

    counts = labeled_counts(cfg, exp.pool_size)
    if source is not None:
        labeled = source[0]["labeled"]
    else:
        labeled = initial_labels(exp.pool_size, counts[0], cfg["seed"])
    if "round_0" not in state["steps"]:
        atomic_write_json(selection_path(run_dir, 0), {"round": 0, "added": labeled,
                                                       "labeled": labeled})
        commit("round_0", f"{len(labeled)} labels from labels_file" if cfg["labels_file"]
               else f"{len(labeled)} random initial labels")
    labeled = read_selection(run_dir, 0)["labeled"]
    for r, budget in enumerate(cfg["budgets"], start=1):
        step = f"round_{r}"
        if step not in state["steps"]:
            if source is not None:
                added = source[r]["added"]
                row = {k: v for k, v in source[r].get("metrics", {}).items()}
                row.update(kind="round", round=r,
                           reused_from=str(cfg["selection_from"] or cfg["labels_file"]))
            else:
                added, row, scores = exp.select_round(r, labeled, counts[r] - len(labeled), state,
                                                      ledger)
                if scores is not None:
                    write_scores(run_dir, r, scores["values"], scores["picks"])
            new_labeled = sorted(labeled + added)
            atomic_write_json(selection_path(run_dir, r),
                              {"round": r, "budget": budget, "added": added,
                               "labeled": new_labeled, "metrics": row})
            metrics.append(row)
            commit(step, f"{len(new_labeled)} labeled ({100 * budget:g}% of the pool)")
        labeled = read_selection(run_dir, r)["labeled"]
        if budget in cfg["eval_budgets"] and f"target_{r}" not in state["steps"]:
            target = exp.train_target(budget, labeled, r, state, ledger)
            if source is not None:  # the cost of the selection this target was trained on
                reused = source[r].get("metrics", {})
                for key in ("cumulative_selection_macs", "cumulative_selection_seconds"):
                    target[key] = reused.get(key, target[key])
            metrics.append(target)
            commit(f"target_{r}", f"test accuracy {100 * target['final_test_acc']:.2f}% at "
                   f"{100 * budget:g}%")
    mark_done(run_dir)
    say(f"finished: records in {run_dir}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file: a flat object of parameters, or a run's ``config.json``.

    A ``"profile"`` key names the profile whose defaults the file's parameters override
    (``paper``, ``cpu``, ``demo``, ``smoke``); it is returned with the parameters, for
    :func:`prunefuse.config.make_config` to take as its ``profile`` argument.

    Raises:
        ConfigError: one line naming the file and what is wrong with it: missing, a
            directory, unreadable, not JSON (with line and column), or not a JSON object.
    """
    where = f"config file {str(path)!r}"
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{where}: is a directory; give a JSON file of parameters")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = (f"; to set the run parameter {path.name!r}, write {path.name}=VALUE"
                if path.name in PARAMS else "")
        raise ConfigError(f"{where}: no such file{hint}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where}: cannot be read as UTF-8 text ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}: invalid JSON at line {err.lineno}, column {err.colno}: "
                          f"{err.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a run's config.json: its parameters
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object of parameters such as "
                          f'{{"ratio": 0.5, "seed": 1}}, got a JSON {_json_type(data)}')
    return data


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


__all__ = ["run_experiment", "load_config_file", "preflight", "validate"]
