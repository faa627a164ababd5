"""What one run trains and charges: the selector of each round, its pool scoring and picks,
the target at each evaluated budget (fused and distilled, or from scratch), and V2's derived
selectors, each step booked in the cost ledger by the charging rule of :mod:`prunefuse.charges`
(docs/method.md, "Step 1: prune at initialization" to "Step 5: report", and "Cost
accounting"). :mod:`prunefuse.experiment` runs these steps in order and keeps the record
around them: commits, resume, the run folder.

Each round the selector is retrained on the labeled set from the same initialization
[choice] (or warm started, or from a fresh random init per round: ``selector_init="fresh"``),
scores the unlabeled pool without augmentation, and the top samples are added. At each
evaluated budget the target is trained from the dense init (``scratch``) or from the fusion
of the dense init and the selector trained on that labeled set (``fused``, in the reading
``fusion``), with KD from that selector when ``kd_lambda > 0``, recording test accuracy
after every epoch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..data import DataError, ImageDataset, check_data
from ..device import resolve_device
from ..flops import CATEGORIES, CostLedger, count_macs, training_macs
from ..fuse import derive_selector, fuse_variant, fused_conv_slices, gather
from ..models import build_model
from ..prune import prune_at_init
from ..select import SCORE_SPECS, score_pool, score_values, select
from ..select import random as random_select
from ..train import evaluate, train
from .charges import Charge, is_sync, run_charges, step_charges
from .config import ConfigError
from .records import (
    CACHE,
    atomic_torch_save,
    atomic_write_json,
    index_map_path,
    selector_file,
    v2_selector_file,
)


def _key(indices: list[int]) -> str:
    return hashlib.sha1(json.dumps(sorted(indices)).encode()).hexdigest()[:16]


class Experiment:
    """The steps of one run and what they need (data, inits, the charges); run by
    :func:`prunefuse.experiment.run_experiment`."""

    def __init__(self, cfg: dict[str, Any], run_dir: Path, progress: bool,
                 data: ImageDataset | None = None):
        self.cfg, self.dir, self.progress = cfg, run_dir, progress
        self.device = resolve_device(cfg["device"])
        self.data = data if data is not None else load_data(cfg)
        self.pool_size = self.data.num_train
        self.data_dev = self.data.to(self.device)
        self.example = torch.zeros(1, *self.data.image_shape)  # true H and W for the MACs
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
        path = self.dir / CACHE / selector_file(key)
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

    def charge_selector(self, record: dict, state: dict, ledger: CostLedger,
                        category: str, test_category: str = "evaluation") -> None:
        """Add a selector's training seconds (to ``category``) and its test evaluation's,
        once per trained selector (its MACs are booked by :meth:`book`); the selector
        becomes the run's last (the warm start of the next)."""
        key = record["key"]
        if key not in state["charged"]:
            ledger.add_seconds(category, record["seconds"])
            ledger.add_seconds(test_category, record.get("eval_seconds", 0.0))
            state["charged"].append(key)
        state["last_selector"] = selector_file(key)

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
            self.charge_selector(rec, state, ledger, cats["selector"].category,
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
            selector_training_seconds=_seconds_in(before, after, cats.get("selector")),
            scoring_seconds=_seconds_in(before, after, cats.get("scoring")),
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
            warm = state["last_selector"] if cfg["v2_loop"] == "authors" else None
            selector, rec = self.trained_selector(labeled, round_ + 1, state, warm_from=warm)
            if "fusion_source" in cats:  # else the next round's selection charges it
                self.charge_selector(rec, state, ledger, cats["fusion_source"].category,
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
        name = v2_selector_file(round_)
        selector, imap = derive_selector(dense_trained, self.selector_init, self.index_map,
                                         how=self.cfg["v2_derive"], ratio=self.cfg["ratio"],
                                         example_input=self.example,
                                         steps=self.cfg["prune_steps"])
        atomic_torch_save({"state_dict": selector.state_dict(), "index_map": imap},
                          self.dir / CACHE / name)
        atomic_write_json(index_map_path(self.dir, round_), imap)
        state["v2_base"] = name
        self.use_v2_base(name)


def _seconds_in(before: dict, after: dict, charge: Charge | None) -> float:
    """Seconds a step added to the category of one of its charges (0 for work it has not)."""
    if charge is None:
        return 0.0
    return after["seconds"][charge.category] - before["seconds"][charge.category]


def _seconds_added(before: dict, after: dict) -> dict[str, float]:
    """Seconds a step added to the ledger, per category it touched."""
    return {c: after["seconds"][c] - before["seconds"][c] for c in CATEGORIES
            if after["seconds"][c] != before["seconds"][c]}


def initial_labels(pool_size: int, n: int, seed: int) -> list[int]:
    """Round 0's labeled set: ``n`` images of the pool drawn at random with ``seed``, sorted
    (``n`` from :func:`prunefuse.config.labeled_counts`)."""
    return sorted(random_select(pool_size, n, seed=seed).tolist())


def load_data(cfg: dict[str, Any]) -> ImageDataset:
    """The run's data, or a :class:`ConfigError` in one line naming the file at fault."""
    try:
        return check_data(cfg)
    except DataError as err:
        raise ConfigError(str(err)) from err  # --debug shows what check_data found
    except OSError as err:  # a plugin's loader reading a file that is not there
        raise ConfigError(f"dataset={cfg['dataset']!r}, data_root={cfg.get('data_root')!r}: "
                          f"{err}") from err


