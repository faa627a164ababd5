"""One experiment, end to end: active-learning rounds with a selector, then the target at each
evaluated budget (docs/method.md, "Step 1: prune at initialization" to "Step 5: report", and
the baselines that share the runner).

Selectors: ``prunefuse`` (the dense target pruned at init, ratio p), ``dense`` (the target
itself selects: baseline AL), ``svp`` (a small proxy architecture), ``random``. Each round
the selector is retrained on the labeled set from the same initialization [choice] (or warm
started, or from a fresh random init per round: ``selector_init="fresh"``), scores the
unlabeled pool without augmentation, and the top samples are added. At each evaluated budget
the target is trained from the dense init (``scratch``) or from the fusion of the dense init
and the selector trained on that labeled set (``fused``, in the reading ``fusion``), with KD
from that selector when ``kd_lambda > 0``, recording test accuracy after every epoch.

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

import copy
import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .charges import is_sync, run_charges, step_charges
from .config import PARAMS, ConfigError, check_sizes, make_config, run_id, selection_keys, validate
from .data import DataError, ImageDataset, check_data
from .device import device_name, resolve_device
from .flops import CATEGORIES, CostLedger, count_macs, training_macs
from .fuse import derive_selector, fuse_variant, fused_conv_slices, gather
from .models import build_model, check_model, count_params
from .prune import prune_at_init
from .runs import (
    CACHE,
    CONFIG,
    LEDGER,
    METRICS,
    STATE,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
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
    write_scores,
)
from .select import SCORE_SPECS, score_pool, score_values, select
from .select import random as random_select
from .train import evaluate, train


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _key(indices: list[int]) -> str:
    return hashlib.sha1(json.dumps(sorted(indices)).encode()).hexdigest()[:16]


class Experiment:
    """State of one run; use :func:`run_experiment`."""

    def __init__(self, cfg: dict[str, Any], run_dir: Path, progress: bool,
                 data: ImageDataset | None = None):
        self.cfg, self.dir, self.progress = cfg, run_dir, progress
        self.device = resolve_device(cfg["device"])
        self.data = data if data is not None else _data(cfg)
        self.pool_size = self.data.num_train
        self.data_dev = self.data.to(self.device)
        shape = (self.data.in_channels, self.data.image_size, self.data.image_size)
        self.example = torch.zeros(1, *shape)
        nc, ch = self.data.num_classes, self.data.in_channels
        # theta_0: one dense init per seed, shared by the pruned selector and the target.
        self.dense_init = build_model(cfg["arch"], nc, ch, seed=cfg["seed"])
        self.index_map = None
        if cfg["selector"] == "prunefuse":
            self.selector_init, self.index_map = prune_at_init(
                self.dense_init, cfg["ratio"], self.example, steps=cfg["prune_steps"])
        elif cfg["selector"] == "dense":
            self.selector_init = self.dense_init
        elif cfg["selector"] == "svp":
            self.selector_init = build_model(cfg["proxy_arch"], nc, ch, seed=cfg["seed"])
        else:
            self.selector_init = None
        self.v2_base: str | None = None  # the file of the V2-derived selector start, if any
        self.target_macs = count_macs(self.dense_init, self.example)
        self.selector_macs = count_macs(self.selector_init, self.example) if self.selector_init else 0
        # The run's MACs, by round and step (prunefuse.charges); the steps book them.
        self.charges = run_charges(cfg, pool=self.pool_size, n_test=self.data.num_test,
                                   target_macs=self.target_macs, selector_macs=self.selector_macs)

    # -- records ---------------------------------------------------------------------------
    def write_static(self) -> None:
        cfg = self.cfg
        record = {
            "config": cfg, "run_id": self.dir.name, "package_version": __version__,
            "git_commit": _git_commit(), "torch_version": torch.__version__,
            "python": platform.python_version(), "device": str(self.device),
            "device_name": device_name(self.device), "threads": torch.get_num_threads(),
            "pool_size": self.pool_size, "test_size": self.data.num_test,
            # Where the images were read and which files: path, size, sha256.
            "data": self.data.source,
            "target": {"arch": cfg["arch"], "params": count_params(self.dense_init),
                       "macs_per_sample": self.target_macs},
            "selector_model": None if self.selector_init is None else {
                "params": count_params(self.selector_init), "macs_per_sample": self.selector_macs},
        }
        atomic_write_json(self.dir / CONFIG, record)
        if self.index_map is not None:
            atomic_write_json(index_map_path(self.dir), self.index_map)

    # -- training pieces -------------------------------------------------------------------
    def _train_kw(self) -> dict:
        c = self.cfg
        return dict(mean=self.data.mean, std=self.data.std, padding=self.data.padding,
                    augmentation=c["augment"], batch_size=c["batch_size"], lr=c["lr"],
                    momentum=c["momentum"], weight_decay=c["weight_decay"],
                    schedule=c["schedule"], eval_batch_size=c["eval_batch_size"],
                    compile=c["compile"], device=self.device, progress=self.progress,
                    amp=self._amp())

    def _amp(self) -> bool:
        """bf16 autocast for training and test evaluation: ``precision`` on CUDA,
        ``cpu_precision`` on the CPU."""
        key = "cpu_precision" if self.device.type == "cpu" else "precision"
        return self.cfg[key] == "bf16"

    def seed(self, stream: str, round_: int) -> int:
        """The one seed derivation of a run: ``selector`` (selector training, pool scoring and
        random picks of round ``round_``), ``selector_init`` (its fresh init, with
        ``selector_init="fresh"``), ``target`` (the target trained at that round) or
        ``fusion_init`` (the fresh dense init of ``fusion`` fresh / fork, round 0)."""
        offset = {"selector": 0, "selector_init": 250, "target": 500, "fusion_init": 750}[stream]
        return self.cfg["seed"] * 1000 + offset + round_

    # -- the selector's starting point -----------------------------------------------------
    def selector_start(self, round_: int) -> torch.nn.Module:
        """A new copy of the weights round ``round_``'s selector starts from: the V2-derived
        selector after a sync, else a fresh random init (``selector_init="fresh"``; for
        PruneFuse a fresh dense init cut at the index map), else the run's one init."""
        cfg = self.cfg
        if self.v2_base is not None:
            blob = torch.load(self.dir / CACHE / self.v2_base, weights_only=True)
            model = copy.deepcopy(self.selector_init)
            model.load_state_dict(blob["state_dict"])
            return model
        if cfg["selector_init"] == "same":
            return copy.deepcopy(self.selector_init)
        arch = cfg["proxy_arch"] if cfg["selector"] == "svp" else cfg["arch"]
        fresh = build_model(arch, self.data.num_classes, self.data.in_channels,
                            seed=self.seed("selector_init", round_))
        if cfg["selector"] == "prunefuse":
            return gather(fresh, copy.deepcopy(self.selector_init), self.index_map)
        return fresh

    def use_v2_base(self, name: str | None) -> None:
        """Start later selectors from the V2-derived selector saved as ``cache/<name>``."""
        self.v2_base = name
        if name is not None:
            self.index_map = torch.load(self.dir / CACHE / name,
                                        weights_only=True)["index_map"]

    def selector_key(self, labeled: list[int]) -> str:
        """Cache key of the selector trained on ``labeled`` from the current start."""
        key = _key(labeled)
        return key if self.v2_base is None else f"{key}-{self.v2_base.removesuffix('.pt')}"

    def trained_selector(self, labeled: list[int], round_: int, state: dict,
                         warm_from: str | None = None) -> tuple:
        """The selector trained on ``labeled``: from the cache on disk or trained now.
        ``warm_from``: a file in the cache whose weights it starts from (the authors' V2
        loop warm-starts the fusion source from the net that selected).

        Returns (model, record); the record holds the cost, charged to the ledger once.
        """
        key = self.selector_key(labeled)
        if warm_from:
            key = f"{key}-warm-{warm_from.removesuffix('.pt')}"
        path = self.dir / CACHE / f"selector-{key}.pt"
        model = self.selector_start(round_)
        if warm_from:
            model.load_state_dict(torch.load(self.dir / CACHE / warm_from,
                                             weights_only=True)["state_dict"])
        elif self.cfg["warm_start"] and state.get("last_selector"):
            model.load_state_dict(torch.load(self.dir / CACHE / state["last_selector"],
                                             weights_only=True)["state_dict"])
        if path.exists():
            blob = torch.load(path, weights_only=True)
            model.load_state_dict(blob["state_dict"])
            return model.to(self.device), blob["record"]
        idx = torch.tensor(labeled, device=self.data_dev.x_train.device)
        start = time.perf_counter()
        hist = train(model, self.data_dev.x_train[idx], self.data_dev.y_train[idx],
                     epochs=self.cfg["selector_epochs"], seed=self.seed("selector", round_),
                     desc=f"selector |L|={len(labeled)}", **self._train_kw())
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        test = evaluate(model, self.data_dev.x_test, self.data_dev.y_test, mean=self.data.mean,
                        std=self.data.std, batch_size=self.cfg["eval_batch_size"], amp=self._amp())
        record = {"key": key, "labeled": len(labeled), "seconds": seconds,
                  "test_acc": test["test_acc"],
                  "train_acc": hist[-1]["train_acc"] if hist else None,
                  "eval_seconds": time.perf_counter() - start,
                  "macs": training_macs(self.selector_macs, len(labeled),
                                        self.cfg["selector_epochs"])}
        atomic_torch_save({"state_dict": model.state_dict(), "record": record}, path)
        return model, record

    def book(self, ledger: CostLedger, round_: int, step: str) -> dict:
        """Add the MACs of one step (``select`` or ``target`` of ``round_``) to the ledger;
        returns its charges by work (:func:`prunefuse.charges.step_charges`), whose
        categories take the seconds the step measures."""
        charges = step_charges(self.charges, round_, step)
        for c in charges.values():
            ledger.add_macs(c.category, c.macs)
        return charges

    def charge_selector(self, record: dict, labeled: list[int], state: dict, ledger: CostLedger,
                        category: str, test_category: str = "evaluation") -> None:
        """Add a selector's training seconds (to ``category``) and its test evaluation's,
        once per trained selector (its MACs are booked by :meth:`book`)."""
        key = record.get("key", self.selector_key(labeled))
        if key not in state["charged"]:
            ledger.add_seconds(category, record["seconds"])
            ledger.add_seconds(test_category, record.get("eval_seconds", 0.0))
            state["charged"].append(key)
        state["last_selector"] = state["selecting"] = f"selector-{key}.pt"

    # -- steps -----------------------------------------------------------------------------
    def select_round(self, round_: int, labeled: list[int], n_new: int, state: dict,
                     ledger: CostLedger) -> tuple[list[int], dict, dict | None]:
        """Choose ``n_new`` samples; returns (added pool indices, the round's metrics row, the
        scores behind the choice or None)."""
        cfg = self.cfg
        spec = SCORE_SPECS[cfg["score"]]
        labeled_set = set(labeled)
        pool = [i for i in range(self.pool_size) if i not in labeled_set]
        row: dict[str, Any] = {"kind": "round", "round": round_, "labeled_before": len(labeled)}
        before = ledger.to_dict()
        cats = self.book(ledger, round_, "select")
        scores = None
        if not spec.model:  # nothing to train or forward: a selector the score does not need
            picks = random_select(len(pool), n_new, seed=self.seed("selector", round_))
        else:
            model, rec = self.trained_selector(labeled, round_, state)
            self.charge_selector(rec, labeled, state, ledger, cats["selector"].category,
                                 cats["selector_test"].category)
            row.update(selector_test_acc=rec["test_acc"], selector_train_acc=rec["train_acc"])
            with ledger.timed(cats["scoring"].category):
                idx = torch.tensor(pool, device=self.data_dev.x_train.device)
                out = score_pool(model, self.data_dev.x_train[idx], self.data.mean,
                                 self.data.std, batch_size=cfg["eval_batch_size"],
                                 mc_samples=cfg["mc_samples"] if spec.mc_samples else 0,
                                 mc_dropout=cfg["mc_dropout"], seed=self.seed("selector", round_))
                labeled_feats = None
                if spec.labeled_features:
                    lidx = torch.tensor(labeled, device=idx.device)
                    labeled_feats = score_pool(model, self.data_dev.x_train[lidx], self.data.mean,
                                               self.data.std, batch_size=cfg["eval_batch_size"]
                                               ).features
                picks = select(cfg["score"], out, labeled_feats, n_new,
                               seed=self.seed("selector", round_))
                values = score_values(cfg["score"], out, labeled_feats)  # for the record
            if values is not None:
                scores = {"values": values, "picks": picks}
        added = [pool[i] for i in picks.tolist()]
        after = ledger.to_dict()
        row.update(
            labeled=len(labeled) + len(added), budget=(len(labeled) + len(added)) / self.pool_size,
            selected=len(added),
            selection_macs=after["selection_macs"] - before["selection_macs"],
            selection_seconds=after["selection_seconds"] - before["selection_seconds"],
            selector_training_seconds=after["seconds"]["selector_training"]
            - before["seconds"]["selector_training"],
            scoring_seconds=after["seconds"]["pool_scoring"] - before["seconds"]["pool_scoring"],
            cumulative_selection_macs=after["selection_macs"],
            cumulative_selection_seconds=after["selection_seconds"],
            ledger_seconds=_seconds_added(before, after),
        )
        return added, row, scores

    def train_target(self, budget: float, labeled: list[int], round_: int, state: dict,
                     ledger: CostLedger) -> dict:
        """Train the target at ``budget``, charged by the rule of :mod:`prunefuse.charges`
        (a V2 sync round also derives the next selector from it). The row's cumulative
        selection cost is what chose ``labeled``: taken before this step's charges."""
        cfg = self.cfg
        d = ledger.to_dict()
        sync = is_sync(cfg, round_)
        cats = self.book(ledger, round_, "target")
        teacher = frozen = None
        fusion_source_macs = fusion_source_seconds = 0
        if cfg["target_init"] == "fused" or cfg["kd_lambda"] > 0:
            warm = state.get("selecting") if cfg["v2_loop"] == "authors" else None
            selector, rec = self.trained_selector(labeled, round_ + 1, state, warm_from=warm)
            if "fusion_source" in cats:  # else the next round's selection charges it
                self.charge_selector(rec, labeled, state, ledger, cats["fusion_source"].category,
                                     cats["fusion_source_test"].category)
            fusion_source_macs, fusion_source_seconds = rec["macs"], rec["seconds"]
            teacher = selector if cfg["kd_lambda"] > 0 else None
        if cfg["target_init"] == "fused":
            fresh = self.dense_init
            if cfg["fusion"] in ("fresh", "fork"):
                fresh = build_model(cfg["arch"], self.data.num_classes, self.data.in_channels,
                                    seed=self.seed("fusion_init", 0))
            how = dict(dense_init=self.dense_init, fresh_init=fresh,
                       pruned_trained=selector.cpu(), index_map=self.index_map)
            model = fuse_variant(cfg["fusion"], **how)
            if cfg["freeze_fused_epochs"]:
                frozen = fused_conv_slices(cfg["fusion"], **how)
        else:
            model = copy.deepcopy(self.dense_init)
        idx = torch.tensor(labeled, device=self.data_dev.x_train.device)
        start = time.perf_counter()
        hist = train(model, self.data_dev.x_train[idx], self.data_dev.y_train[idx],
                     epochs=cfg["target_epochs"], seed=self.seed("target", round_),
                     teacher=teacher, kd_lambda=cfg["kd_lambda"],
                     kd_temperature=cfg["kd_temperature"], kd_t2=cfg["kd_t2"],
                     frozen=frozen, frozen_epochs=cfg["freeze_fused_epochs"],
                     eval_every=cfg["eval_every"],
                     test=(self.data_dev.x_test, self.data_dev.y_test),
                     desc=f"target {cfg['target_init']} |L|={len(labeled)}", **self._train_kw())
        total = time.perf_counter() - start
        eval_seconds = sum(h.get("eval_seconds", 0.0) for h in hist)
        teacher_seconds = sum(h.get("teacher_seconds", 0.0) for h in hist)
        seconds = total - eval_seconds - teacher_seconds
        ledger.add_seconds(cats["target"].category, seconds)
        ledger.add_seconds(cats["target_test"].category, eval_seconds)
        teacher_macs = 0
        if "teacher" in cats:
            teacher_macs = cats["teacher"].macs
            ledger.add_seconds(cats["teacher"].category, teacher_seconds)
        if sync:
            self.derive_next_selector(model, round_, state)
        curve = [h for h in hist if "test_acc" in h]
        accs = [h["test_acc"] for h in curve]
        best = max(range(len(accs)), key=accs.__getitem__) if accs else None
        return {"kind": "target", "round": round_, "budget": budget, "labeled": len(labeled),
                "target_init": cfg["target_init"], "kd_lambda": cfg["kd_lambda"],
                "final_test_acc": accs[-1] if accs else None,
                "best_test_acc": accs[best] if accs else None,
                "best_epoch": curve[best]["epoch"] if accs else None, "epochs": hist,
                "training_seconds": seconds, "evaluation_seconds": eval_seconds,
                "target_training_macs": cats["target"].macs,
                "evaluation_macs": cats["target_test"].macs,
                "teacher_forward_macs": teacher_macs, "teacher_forward_seconds": teacher_seconds,
                "fusion_source_macs": fusion_source_macs,
                "fusion_source_seconds": fusion_source_seconds,
                "fusion_macs": fusion_source_macs + teacher_macs,
                "cumulative_selection_macs": d["selection_macs"],
                "cumulative_selection_seconds": d["selection_seconds"],
                "ledger_seconds": _seconds_added(d, ledger.to_dict())}


    def derive_next_selector(self, dense_trained: torch.nn.Module, round_: int,
                             state: dict) -> None:
        """V2: save the selector derived from the trained target (and its index map) and
        start every later selector from it; committed with this round's target step."""
        name = f"v2-round_{round_:02d}.pt"
        selector, imap = derive_selector(dense_trained, self.selector_init, self.index_map,
                                         how=self.cfg["v2_derive"], ratio=self.cfg["ratio"],
                                         example_input=self.example,
                                         steps=self.cfg["prune_steps"])
        atomic_torch_save({"state_dict": selector.state_dict(), "index_map": imap},
                          self.dir / CACHE / name)
        atomic_write_json(index_map_path(self.dir, round_), imap)
        state["v2_base"] = name
        self.use_v2_base(name)


def _seconds_added(before: dict, after: dict) -> dict[str, float]:
    """Seconds a step added to the ledger, per category it touched."""
    return {c: after["seconds"][c] - before["seconds"][c] for c in CATEGORIES
            if after["seconds"][c] != before["seconds"][c]}


def _initial(pool_size: int, fraction: float, seed: int) -> list[int]:
    n = max(1, round(fraction * pool_size))
    return sorted(random_select(pool_size, n, seed=seed).tolist())


def _data(cfg: dict[str, Any]) -> ImageDataset:
    """The run's data, or a :class:`ConfigError` in one line naming the file at fault."""
    try:
        return check_data(cfg)
    except DataError as err:
        raise ConfigError(str(err)) from err  # --debug shows what check_data found


def _selection_record(cfg: dict[str, Any]) -> tuple[Path, dict]:
    """The source run of ``selection_from``, checked: a run record whose selection parameters
    equal this run's (:func:`prunefuse.config.selection_keys`) and whose every selection round
    is committed."""
    source = Path(cfg["selection_from"])
    where = f"selection_from={cfg['selection_from']!r}"
    try:
        src = read_config(source)["config"]
    except FileNotFoundError:
        raise ConfigError(f"{where}: no run record there (no config.json); give the folder of a "
                          "run that has finished its selection") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{where}: its config.json is unreadable ({err!r})") from None
    for key in selection_keys(cfg):
        if src.get(key, PARAMS[key].default) != cfg[key]:
            raise ConfigError(f"{where}: its {key}={src.get(key)!r} differs from this run's "
                              f"{cfg[key]!r}; the run reusing a selection must match it")
    if not is_done(source):
        try:
            steps = (read_state(source) or {}).get("steps", [])
        except (OSError, ValueError, KeyError):
            steps = []
        done = sum(f"round_{r}" in steps for r in range(1, len(cfg["budgets"]) + 1))
        if done < len(cfg["budgets"]):
            raise ConfigError(f"{where}: its selection is unfinished ({done} of "
                              f"{len(cfg['budgets'])} rounds); finish that run first")
    return source, src


def _load_selection(source: Path) -> list[dict]:
    return read_selections(source)


def read_labels_file(cfg: dict[str, Any], pool_size: int) -> list[int]:
    """The pool indices of ``cfg["labels_file"]`` (whitespace-separated integers, as SVP's
    ``labeled_*.index`` files hold them), sorted, checked against the pool and the budget.

    Raises:
        ConfigError: one line naming labels_file and what is wrong with it.
    """
    where = f"labels_file={cfg['labels_file']!r}"
    try:
        words = Path(cfg["labels_file"]).read_text().split()
    except OSError as err:
        raise ConfigError(f"{where}: unreadable ({err.strerror or err}); give a text file of "
                          "pool indices, one per line") from None
    try:
        values = [float(w) for w in words]
    except ValueError:
        bad = next(w for w in words if not _is_number(w))
        raise ConfigError(f"{where}: {bad!r} is not an index; the file holds pool indices, "
                          "one integer per line") from None
    if not values or any(v != int(v) for v in values):
        raise ConfigError(f"{where}: expected whole-number pool indices, one per line "
                          f"({'empty file' if not values else 'found fractions'})")
    labels = [int(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: {len(labels) - len(set(labels))} indices appear twice; "
                          "each image is labeled once")
    out = [i for i in labels if not 0 <= i < pool_size]
    if out:
        raise ConfigError(f"{where}: index {out[0]} is outside the pool of {pool_size} images "
                          f"(allowed: 0 to {pool_size - 1})")
    n = round(cfg["budgets"][0] * pool_size)
    if n != len(labels):
        raise ConfigError(f"{where}: holds {len(labels)} labels, {len(labels) / pool_size:.6g} "
                          f"of the {pool_size}-image pool, but budgets={cfg['budgets']} gives "
                          f"{n}; set budgets={len(labels) / pool_size:.6g}")
    return sorted(labels)


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


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
        The loaded dataset (``data=True``), for :class:`Experiment` to reuse; else None.

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
    ds = _data(cfg)
    check_sizes(cfg, ds.num_train)
    if cfg["labels_file"]:
        read_labels_file(cfg, ds.num_train)
    example = torch.zeros(1, ds.in_channels, ds.image_size, ds.image_size)
    archs = [cfg["arch"]] + ([cfg["proxy_arch"]] if cfg["selector"] == "svp" else [])
    for arch in archs:
        try:
            check_model(build_model(arch, ds.num_classes, ds.in_channels, seed=0), arch,
                        ds.num_classes, example)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return ds


def run_experiment(config: dict[str, Any] | None = None, *, out: str | Path = "runs",
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
            by :func:`preflight` before the run folder is created.
    """
    cfg = make_config(profile, **{**(config or {}), **overrides})
    run_dir = Path(out) / run_id(cfg)
    say = log or (lambda line: None)
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
    state = read_state(run_dir)
    if state is None:
        exp.write_static()
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
        source = _load_selection(_selection_record(cfg)[0])
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

    if source is not None:
        labeled = source[0]["labeled"]
    else:
        labeled = _initial(exp.pool_size, cfg["initial_fraction"], cfg["seed"])
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
                target_n = round(budget * exp.pool_size)
                added, row, scores = exp.select_round(r, labeled, target_n - len(labeled), state,
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
        raise ConfigError(f"{where}: no such file") from None
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
