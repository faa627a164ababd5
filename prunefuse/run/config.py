"""What a run is: every parameter, its default, its unit, and the profiles.

A run config is a flat dict of JSON literals, checked before any compute: unknown keys,
wrong types, a budget above the pool, a ratio >= 1, an unknown architecture, dataset or score
each get one clear error naming the key and what is allowed. Defaults marked [choice] are
ours where the paper is silent (docs/method.md, "Where we had to choose").
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Each option list and default lives in the module that implements it; the config reads them.
from ..distill import KD_LAMBDA, KD_T2, KD_TEMPERATURE, check_kd  # noqa: F401 - re-exported
from ..errors import ConfigError
from ..fuse import FUSIONS, V2_DERIVE
from ..prune import check_ratio  # noqa: F401 - re-exported
from ..train import SCHEDULES, SGD_DEFAULTS
from .legacy import ID_IF_NOT_DEFAULT, _rounded_svp_phases, id_amendments  # noqa: F401 (re-exported)

SELECTORS = ("prunefuse", "dense", "svp", "random")
TARGET_INITS = ("scratch", "fused")
SELECTOR_INITS = ("same", "fresh")
PRECISIONS = ("bf16", "fp32")
POOL_DRAWS = ("fixed", "seed")
REPORTS = ("final", "best", "both")  # which test accuracy the tables report
V2_LOOPS = ("ours", "authors")  # PruneFuse V2's round, prunefuse.experiment
READING_NAMES = ("ours", "authors")  # keys of READINGS


@dataclass(frozen=True)
class Param:
    """A run parameter: its default, accepted types, meaning, and whether its value changes
    which images a run labels (``selects``): for every selector ("all"), for every selector
    that trains a model ("trained"), for the selectors named (e.g. "dense prunefuse"), or
    not at all ("")."""

    default: Any
    types: tuple[type, ...]
    help: str
    selects: str = ""


def _p(default, types, help, selects=""):
    return Param(default, types if isinstance(types, tuple) else (types,), help, selects)


NONE = type(None)

# Every run parameter: default, accepted types, and what it means (with its unit).
PARAMS: dict[str, Param] = {
    "dataset": _p("fashion-mnist", str, "dataset name (registry in prunefuse.data)", selects="all"),
    "data_root": _p(None, (str, NONE), "folder holding / receiving the data; default ~/.cache"),
    "max_train": _p(None, (int, NONE), "use a seeded random subset of this many pool images", selects="all"),
    "max_test": _p(None, (int, NONE), "use a seeded random subset of this many test images"),
    "pool_draw": _p("fixed", str, "which max_train images form the pool: fixed (one draw, "
                    "seed 0, shared by every seed) or seed (each seed draws its own pool, so "
                    "an interval over seeds covers the pool's draw too)", selects="all"),
    "arch": _p("resnet56", str, "target architecture (registry in prunefuse.models)",
               selects="dense prunefuse"),
    "selector": _p("prunefuse", str, "who selects the samples to label", selects="all"),
    "ratio": _p(0.5, (float, int), "PruneFuse pruning ratio p: fraction of channels removed",
                selects="prunefuse"),
    "proxy_arch": _p("resnet20", str, "SVP proxy architecture (selector='svp')", selects="svp"),
    "score": _p("least_confidence", str, "selection score (registry in prunefuse.select)", selects="all"),
    "initial_fraction": _p(0.02, (float, int), "random initial labeled set, fraction of pool", selects="all"),
    "budgets": _p([0.1, 0.2, 0.3, 0.4, 0.5], list, "labeled fraction of the pool after each round",
                  selects="all"),
    "eval_budgets": _p(None, (list, NONE), "budgets at which the target is trained; None = all"),
    "selector_epochs": _p(181, int, "epochs per selector training (SVP protocol: 181)", selects="trained"),
    "target_epochs": _p(181, int, "epochs of target training (SVP protocol: 181)"),
    "schedule": _p(SGD_DEFAULTS["schedule"], str, "learning-rate schedule: svp (SVP's "
                   "1/90/45/45 phases at lr/10, lr, lr/10, lr/100, scaled to the epochs with "
                   "every phase present from 4 epochs on), cosine, constant", selects="trained"),
    "lr": _p(SGD_DEFAULTS["lr"], (float, int), "peak learning rate", selects="trained"),
    "momentum": _p(SGD_DEFAULTS["momentum"], (float, int), "SGD momentum", selects="trained"),
    "weight_decay": _p(SGD_DEFAULTS["weight_decay"], (float, int), "SGD weight decay", selects="trained"),
    "batch_size": _p(SGD_DEFAULTS["batch_size"], int, "training batch size, images per step",
                     selects="trained"),
    "eval_batch_size": _p(None, (int, NONE), "batch size for pool scoring and test evaluation, "
                          "images; None = 1024 on CUDA, 128 on CPU"),
    "eval_every": _p(1, int, "test evaluation of a target every this many epochs, and always "
                     "after the last (0 = the last only); evaluation time is never training time"),
    "augment": _p(True, bool, "random crop (dataset padding) + horizontal flip during training",
                  selects="trained"),
    "target_init": _p(None, (str, NONE), "target init; None = fused for "
                      "prunefuse, scratch otherwise"),
    "kd_lambda": _p(None, (float, int, NONE), f"KD weight lambda; None = {KD_LAMBDA} for "
                    "prunefuse [choice], 0 otherwise"),
    "kd_temperature": _p(KD_TEMPERATURE, (float, int), "KD temperature T [choice]"),
    "kd_t2": _p(KD_T2, bool, "multiply the KD term by T^2 (Hinton et al.) [choice]; false = the "
                "authors' code"),
    "freeze_fused_epochs": _p(0, int, "first target epochs in which the fused conv slices get "
                              "no gradient (weight decay and momentum still move them); 0 = "
                              "trained like every weight [choice], 1 = the authors' code"),
    "warm_start": _p(False, bool, "selector continues from last round's weights instead of "
                     "the pruned init [choice: False]", selects="trained"),
    "selector_init": _p("same", str, "selector weights each round: same (one fixed init per "
                        "run) [choice] or fresh (a new random init every round, as SVP)", selects="trained"),
    "fusion": _p("indices", str, "how the trained selector enters the dense target: indices "
                 "(every tensor at its kept indices into theta_0) [choice], fresh (the same into "
                 "a fresh init), conv_only (conv weights only; BN and classifier keep theta_0), "
                 "fork (the forked scripts' placement into a fresh Xavier net)"),
    "v2_loop": _p("ours", str, "PruneFuse V2's round: ours (each round's selector trained "
                  "from the last derived start) or authors (select with the re-pruned fused "
                  "net as it is, then retrain it warm-started on the new labels as the fusion "
                  "source and teacher)", selects="trained"),
    "prune_steps": _p(1, int, "torch-pruning's iterative steps: the ratio is reached in this "
                      "many equal steps, importance recomputed after each [choice: 1]; 5 = "
                      "the authors' code", selects="prunefuse"),
    "report": _p("final", str, "test accuracy the tables report: final (last epoch) [choice], "
                 "best (best epoch, selected on the test set, as SVP's code) or both; best "
                 "needs eval_every >= 1"),
    "reading": _p("ours", str, "a preset of the readings above: ours (the defaults) or "
                  "authors (the authors' public code, docs/method.md \"Readings\"); explicit "
                  "parameters still override it"),
    "t_sync": _p(0, int, "PruneFuse V2 period in rounds, our interpretation: every t_sync rounds "
                 "the trained dense target yields the next selector; 0 = V1", selects="trained"),
    "v2_derive": _p("gather", str, "V2: the next selector from the trained dense net: gather "
                    "(same kept indices) or reprune (new L2 pruning, new index map)", selects="trained"),
    "precision": _p("bf16", str, "training and test-evaluation precision on CUDA: bf16 "
                    "autocast [choice] or fp32 (SVP); pool scoring is always fp32", selects="trained"),
    "cpu_precision": _p("fp32", str, "the same on the CPU: fp32, or bf16 autocast (faster "
                        "where the CPU has AVX512-BF16 or AMX, emulated and much slower with "
                        "AVX2 only: benchmarks/precision_step.py)", selects="trained"),
    "mc_samples": _p(10, int, "dropout heads for score='feature_dropout_mi' (the mutual "
                     "information of BALD over random dropout masks on the penultimate features "
                     "of a net trained without dropout: not MC-dropout BALD)", selects="trained"),
    "mc_dropout": _p(0.5, (float, int), "dropout rate of those heads", selects="trained"),
    "selection_from": _p(None, (str, NONE), "reuse the selection of this run folder (SVP's "
                         "precomputed selection) instead of selecting"),
    "labels_file": _p(None, (str, NONE), "train the target on the pool indices in this text "
                      "file (one per line: SVP's labeled_*.index) instead of selecting; "
                      "budgets is then the one budget they make"),
    "image_size": _p(None, (int, NONE), "dataset=imagefolder: side in pixels every image is "
                     "center-cropped and resized to; None = the images as they are (square, one "
                     "size)", selects="all"),
    "channels": _p(None, (int, NONE), "dataset=imagefolder: 1 (grey) or 3 (RGB); None = grey "
                   "if every image is grey, else RGB", selects="all"),
    "test_fraction": _p(0.2, (float, int), "dataset=imagefolder: share of the images held out "
                        "as the test split (seed 0) when data_root has no test/ or test.csv",
                        selects="all"),
    "classes": _p(None, (str, NONE), "dataset=imagefolder: the class names, comma-separated, "
                  "in output order; a label outside them is refused; None = the labels found",
                  selects="all"),
    "seed": _p(0, int, "seeds init, initial subset, order, augmentation and random selection", selects="all"),
    "compile": _p(False, bool, "torch.compile the full-size training batches (once per "
                  "architecture): for long runs; each compilation costs time first "
                  "(benchmarks/end_to_end.py --compile measures it)"),
    "device": _p("auto", str, "cpu, cuda, cuda:N or auto (PRUNEFUSE_DEVICE, else CUDA if present)"),
}

# Keys that change how a run computes, not what it computes (device and compile alter only
# floating-point rounding), so they do not enter the run id.
# eval_every changes only how often the test set is measured, not the training.
NOT_IN_ID = ("device", "compile", "eval_batch_size", "eval_every")
# Readings of the method: parameter values a preset sets at once (after the profile, before
# explicit parameters). "authors" is what the authors' public code does (docs/method.md,
# "Readings"); its KD and fusion values apply to PruneFuse runs with a fused target only.
READINGS: dict[str, dict[str, Any]] = {
    "ours": {},
    "authors": {"kd_lambda": 0.35, "kd_temperature": 3.0, "kd_t2": False,
                "freeze_fused_epochs": 1, "fusion": "fork", "v2_loop": "authors",
                "v2_derive": "reprune", "prune_steps": 5, "report": "best", "eval_every": 1},
}
# The parameters that say which reading of the method a run follows, with V1's t_sync: runs
# that differ in one of them are another reading or variant of an arm, never another seed of it.
READING_PARAMS = ("reading", "fusion", "kd_t2", "selector_init", "prune_steps", "report",
                  "t_sync")


def at_our_readings(cfg: dict[str, Any], vary: tuple[str, ...] = ()) -> bool:
    """Whether a run's config is V1 at our readings: every :data:`READING_PARAMS` at its
    default (a key a record lacks ran at the default), except those in ``vary``."""
    return all(cfg.get(k, PARAMS[k].default) == PARAMS[k].default
               for k in READING_PARAMS if k not in vary)


# Keys of a reading that only mean something for a PruneFuse run whose target is fused.
_FUSED_ONLY = ("kd_lambda", "freeze_fused_epochs", "fusion", "v2_loop", "v2_derive")

# fp32: bf16 autocast is faster only on CPUs with native bf16 (AVX512-BF16, AMX) and much
# slower where it is emulated (AVX2 only; benchmarks/README.md has the measured figures);
# fp32 runs at one speed, and gives the same numbers, on every CPU.
_CPU = {"dataset": "fashion-mnist", "max_train": 4000, "max_test": 2000, "arch": "resnet20",
        "proxy_arch": "resnet8", "initial_fraction": 0.025, "budgets": [0.1, 0.2, 0.3],
        "selector_epochs": 30, "target_epochs": 60, "batch_size": 32, "schedule": "cosine",
        "eval_every": 0}

# A profile: its parameter values (over the PARAMS defaults) and what its numbers can be trusted
# for, written into every caption. One declaration each, by _profile.
PROFILES: dict[str, dict[str, Any]] = {}
PROFILE_NOTES: dict[str, str] = {}


def _profile(name: str, note: str, values: dict[str, Any]) -> None:
    PROFILES[name], PROFILE_NOTES[name] = values, note


# The SVP protocol that PruneFuse follows (CIFAR-10, ResNet-56, 181 epochs, 2% then 10..50%).
_profile("paper", "paper: the SVP protocol (181 epochs per training, labeled budgets 10-50% of "
         "the pool)", {"dataset": "cifar10", "arch": "resnet56"})
# The CPU study: the paper's protocol shrunk to 2 CPU cores (docs/method.md, "The CPU study").
# 4,000-image pool, 100 random initial labels, then 10/20/30% of the pool; cosine at batch 32
# in fp32, 60 epochs for targets and 30 for selectors; test accuracy on 2,000 images, after
# the last epoch only unless a figure needs the curve.
_profile("cpu", "cpu: the paper's protocol shrunk to 2 CPU cores (Fashion-MNIST, 4,000-image "
         "pool, ResNet-20 target; cosine at batch 32 in fp32, targets 60 epochs, selectors 30; "
         "NOT CIFAR and NOT 181 epochs). Not shown to be converged (figures/cpu/README.md); "
         "every method is trained alike", _CPU)
# The CPU study re-decided: each seed draws its own 4,000-image pool from the 60,000 training
# images, every run is tested on all 10,000 test images, and every arm of a seed runs on one
# machine (prunefuse.comparisons.STUDY).
_profile("study", "study: the CPU study on a sound design (Fashion-MNIST, a 4,000-image pool "
         "drawn per seed, the full 10,000-image test set, ResNet-20 target; cosine at batch "
         "32 in fp32, targets 60 epochs, selectors 30; every arm of a seed on one machine; NOT "
         "CIFAR and NOT 181 epochs)", {**_CPU, "max_test": None, "pool_draw": "seed"})
# The main job: a cut of the CPU study (budgets 10% and 20%, a quarter of its target epochs and
# a third of its selector epochs); its time goal is in benchmarks/README.md.
_profile("demo", "demo: one-seed cut of the cpu profile (budgets 10% and 20%, targets 15 "
         "epochs, selectors 10); shows the pipeline, n=1 supports no comparison",
         {**_CPU, "budgets": [0.1, 0.2], "selector_epochs": 10, "target_epochs": 15})
# Seconds: synthetic data, ResNet-8, one epoch; for tests.
_profile("smoke", "smoke: synthetic data, 1 epoch per training; a pipeline test, the numbers "
         "mean nothing",
         {"dataset": "synthetic", "arch": "resnet8", "proxy_arch": "resnet8",
          "initial_fraction": 0.1, "budgets": [0.2, 0.3], "selector_epochs": 1,
          "target_epochs": 1, "batch_size": 64, "eval_batch_size": 256})


def profile_summary(profile: str) -> str:
    """The first clause of a profile's note, for help texts: ``cpu: the paper's protocol
    shrunk to 2 CPU cores``."""
    return re.split(r" \(|;", PROFILE_NOTES[profile], maxsplit=1)[0]


def _check_type(key: str, value: Any) -> Any:
    spec = PARAMS[key]
    if isinstance(value, bool) and bool not in spec.types:
        raise ConfigError(f"{key}={value!r}: expected {_names(spec.types)}, got bool")
    if not isinstance(value, spec.types):
        raise ConfigError(f"{key}={value!r}: expected {_names(spec.types)}, got "
                          f"{type(value).__name__}")
    if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is NONE else t.__name__ for t in types)


def _fraction_list(key: str, value: Any) -> list[float]:
    if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{key}={value!r}: expected a non-empty list of fractions of the pool")
    out = [float(v) for v in value]
    if any(not 0 < v <= 1 for v in out):
        raise ConfigError(f"{key}={value!r}: every budget must be a fraction in (0, 1]")
    return out


def make_config(profile: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Defaults, then a profile, then overrides; validated and with defaults resolved.

    Args:
        profile: ``None`` or a key of :data:`PROFILES` (``paper``, ``demo``, ``smoke``).
        **overrides: any key of :data:`PARAMS`.

    Returns:
        A complete, validated config dict.
    """
    if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
        raise ConfigError(f"profile={profile!r}: unknown; choose one of {sorted(PROFILES)}")
    unknown = sorted(set(overrides) - set(PARAMS))
    if unknown:
        raise ConfigError(unknown_parameters(unknown))
    cfg = {k: p.default for k, p in PARAMS.items()}
    cfg.update(PROFILES.get(profile, {}))
    cfg.update(reading_values({**cfg, **overrides}))
    cfg.update(overrides)
    return validate(cfg)


def reading_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """The values the preset ``cfg["reading"]`` sets for this config (see :data:`READINGS`).

    Keys that apply only to a fused PruneFuse target are left out for other runs, and so are
    the V2 keys for a V1 run, so that a baseline run under a reading stays a valid config.
    """
    name = cfg.get("reading", PARAMS["reading"].default)
    if name not in READINGS:
        raise ConfigError(f"reading={name!r}: unknown; choose one of {list(READINGS)}")
    values = dict(READINGS[name])
    fused = cfg.get("selector") == "prunefuse" and cfg.get("target_init") in (None, "fused")
    if not fused:
        values = {k: v for k, v in values.items() if k not in _FUSED_ONLY}
    if not cfg.get("t_sync"):
        values = {k: v for k, v in values.items() if k not in ("v2_loop", "v2_derive")}
    return values


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every key and value of a full config; resolve the None-means-auto defaults."""
    unknown = sorted(set(cfg) - set(PARAMS))
    if unknown:
        raise ConfigError(unknown_parameters(unknown))
    cfg = {k: _check_type(k, cfg.get(k, PARAMS[k].default)) for k in PARAMS}
    if cfg["score"] == "bald":
        raise ConfigError("score='bald': renamed 'feature_dropout_mi'; no registered network "
                          "trains with dropout, so its dropout heads are not MC-dropout BALD "
                          "(docs/method.md)")
    if cfg["schedule"] == "svp_exact":
        raise ConfigError("schedule='svp_exact': now the one 'svp' schedule (closest phases "
                          "to SVP's 1:90:45:45); use schedule='svp'")
    choices = allowed_values()
    del choices["target_init"]  # None means auto: resolved below
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise ConfigError(f"{key}={cfg[key]!r}: unknown; choose one of {list(allowed)}")
    if cfg["selector"] == "prunefuse" and isinstance(cfg["ratio"], (int, float)) \
            and not isinstance(cfg["ratio"], bool) and cfg["ratio"] != 0 \
            and not 0 < cfg["ratio"] < 1:  # 0 has its own message below
        raise ConfigError(f"ratio={cfg['ratio']!r}: PruneFuse's pruning ratio (the fraction of "
                          "channels removed) must be in (0, 1)")
    check_ratio(cfg["ratio"])
    if cfg["ratio"] == 0 and cfg["selector"] == "prunefuse":
        raise ConfigError("ratio=0: prunes nothing, so the selector would be the dense target "
                          "itself; use selector=dense for dense active learning, or a ratio "
                          "in (0, 1)")
    cfg["budgets"] = _fraction_list("budgets", cfg["budgets"])
    if cfg["budgets"] != sorted(set(cfg["budgets"])):
        raise ConfigError(f"budgets={cfg['budgets']}: must be strictly increasing")
    if not 0 < cfg["initial_fraction"] < cfg["budgets"][0]:
        raise ConfigError(f"initial_fraction={cfg['initial_fraction']}: must be in (0, "
                          f"{cfg['budgets'][0]}) (below the first budget)")
    if cfg["eval_budgets"] is None:
        cfg["eval_budgets"] = list(cfg["budgets"])
    cfg["eval_budgets"] = _fraction_list("eval_budgets", cfg["eval_budgets"])
    missing = [b for b in cfg["eval_budgets"] if b not in cfg["budgets"]]
    if missing:
        raise ConfigError(f"eval_budgets={cfg['eval_budgets']}: {missing} not in budgets "
                          f"{cfg['budgets']}")
    _check_ranges(cfg)
    pf = cfg["selector"] == "prunefuse"
    if cfg["target_init"] is None:
        cfg["target_init"] = "fused" if pf else "scratch"
    if cfg["target_init"] not in TARGET_INITS:
        raise ConfigError(f"target_init={cfg['target_init']!r}: choose one of {list(TARGET_INITS)}")
    if cfg["kd_lambda"] is None:
        cfg["kd_lambda"] = KD_LAMBDA if pf else 0.0
    check_kd(cfg["kd_lambda"], cfg["kd_temperature"])
    if not pf and (cfg["target_init"] == "fused" or cfg["kd_lambda"] > 0):
        raise ConfigError(f"target_init='fused' and kd_lambda>0 need selector='prunefuse' (the "
                          f"pruned selector is what is fused and the KD teacher); got "
                          f"selector={cfg['selector']!r}")
    _check_variants(cfg)
    if cfg["selector"] == "random" and cfg["score"] != "random":
        cfg["score"] = "random"  # random selection has no score; one id per random run
    if cfg["selector_epochs"] < 1 and trains_selector(cfg):
        raise ConfigError(f"selector_epochs={cfg['selector_epochs']}: must be >= 1 (this run "
                          f"trains a selector: selector={cfg['selector']!r}, "
                          f"target_init={cfg['target_init']!r}, kd_lambda={cfg['kd_lambda']:g})")
    if cfg["max_train"] is not None:
        check_sizes(cfg, cfg["max_train"])
    return cfg


def _check_variants(cfg: dict[str, Any]) -> None:
    """The fusion reading, selector re-initialisation and V2 fit the rest of the config."""
    pf = cfg["selector"] == "prunefuse"
    if cfg["fusion"] != "indices" and cfg["target_init"] != "fused":
        raise ConfigError(f"fusion={cfg['fusion']!r}: only applies with target_init='fused' "
                          f"(got {cfg['target_init']!r}); leave fusion at 'indices'")
    if cfg["selector_init"] == "fresh" and cfg["warm_start"]:
        raise ConfigError("selector_init='fresh' and warm_start=true exclude each other: a "
                          "warm start continues last round's weights; choose one")
    if cfg["t_sync"] < 0:
        raise ConfigError(f"t_sync={cfg['t_sync']}: must be >= 0 (0 = PruneFuse V1)")
    if cfg["freeze_fused_epochs"] and cfg["target_init"] != "fused":
        raise ConfigError(f"freeze_fused_epochs={cfg['freeze_fused_epochs']}: only applies with "
                          f"target_init='fused' (got {cfg['target_init']!r}); leave it at 0")
    if cfg["freeze_fused_epochs"] > cfg["target_epochs"]:
        raise ConfigError(f"freeze_fused_epochs={cfg['freeze_fused_epochs']}: must be at most "
                          f"target_epochs={cfg['target_epochs']}")
    if cfg["labels_file"] is not None:
        if cfg["selection_from"]:
            raise ConfigError("labels_file: a given labeled set replaces the selection; it "
                              "cannot be combined with selection_from")
        if len(cfg["budgets"]) != 1:
            raise ConfigError(f"budgets={cfg['budgets']}: with labels_file the run trains one "
                              "target on the file's labels; give the one budget they make")
    if cfg["report"] != "final" and cfg["eval_every"] == 0:
        raise ConfigError(f"report={cfg['report']!r}: the best epoch needs the test set after "
                          "every epoch; set eval_every=1 (eval_every=0 evaluates the last only)")
    if cfg["t_sync"] == 0:
        if cfg["v2_derive"] != "gather":
            raise ConfigError(f"v2_derive={cfg['v2_derive']!r}: only applies with t_sync > 0")
        if cfg["v2_loop"] != "ours":
            raise ConfigError(f"v2_loop={cfg['v2_loop']!r}: only applies with t_sync > 0")
        return
    if cfg["v2_loop"] == "authors" and (cfg["t_sync"] != 1 or cfg["v2_derive"] != "reprune"):
        raise ConfigError(f"v2_loop='authors': re-prunes the fused net every round; it needs "
                          f"t_sync=1 and v2_derive='reprune' (got t_sync={cfg['t_sync']}, "
                          f"v2_derive={cfg['v2_derive']!r})")
    if not pf or cfg["target_init"] != "fused":
        raise ConfigError(f"t_sync={cfg['t_sync']}: PruneFuse V2 needs selector='prunefuse' and "
                          f"target_init='fused' (got {cfg['selector']!r}, "
                          f"{cfg['target_init']!r})")
    if (cfg["warm_start"] or cfg["selector_init"] != "same" or cfg["selection_from"]
            or cfg["labels_file"]):
        raise ConfigError(f"t_sync={cfg['t_sync']}: V2 derives each selector from the trained "
                          "dense net; it needs warm_start=false, selector_init='same' and no "
                          "selection_from or labels_file")
    syncs = [b for r, b in enumerate(cfg["budgets"][:-1], start=1) if r % cfg["t_sync"] == 0]
    missing = [b for b in syncs if b not in cfg["eval_budgets"]]
    if missing:
        raise ConfigError(f"t_sync={cfg['t_sync']}: the dense net trained at a sync round is that "
                          f"budget's target, so eval_budgets must include {missing}")
# What defines a selection, from each parameter's ``selects`` (see :class:`Param`). A run
# reusing a selection (selection_from) must match its source in each.
SELECTS: dict[str, str] = {k: p.selects for k, p in PARAMS.items() if p.selects}


def selection_keys(cfg: dict[str, Any]) -> list[str]:
    """The parameters that define ``cfg``'s selection (see :data:`SELECTS`)."""
    sel = cfg["selector"]
    trained = sel != "random"
    return [k for k, who in SELECTS.items()
            if who == "all" or (who == "trained" and trained) or sel in who.split()]


# Numeric ranges: key -> (test, what is allowed). Finite numbers only (JSON allows NaN).
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v > 0, "> 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "selector_epochs": (lambda v: v >= 0, ">= 0 (>= 1 when a selector is trained)"),
    "target_epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1 images"),
    "eval_batch_size": (lambda v: v >= 1, ">= 1 images, or null for the device default"),
    "eval_every": (lambda v: v >= 0, ">= 0 (0 = last epoch only)"),
    "max_train": (lambda v: v >= 1, "a positive number of images, or null for all"),
    "max_test": (lambda v: v >= 1, "a positive number of images, or null for all"),
    "mc_samples": (lambda v: v >= 0, ">= 0 (>= 1 for a score that needs MC dropout)"),
    "mc_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "kd_temperature": (lambda v: v > 0, "> 0"),
    "freeze_fused_epochs": (lambda v: v >= 0, ">= 0 epochs"),
    "prune_steps": (lambda v: v >= 1, ">= 1"),
    "seed": (lambda v: v >= 0, ">= 0"),
    "image_size": (lambda v: v >= 1, "a positive number of pixels, or null for the images' own"),
    "channels": (lambda v: v in (1, 3), "1 (grey), 3 (RGB) or null (grey if every image is)"),
    "test_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
}


def _check_ranges(cfg: dict[str, Any]) -> None:
    for key in PARAMS:
        value = cfg[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value!r}: must be a finite number")
        if key in RANGES and value is not None and not RANGES[key][0](value):
            raise ConfigError(f"{key}={value!r}: must be {RANGES[key][1]}")
    from ..select import SCORE_SPECS

    if SCORE_SPECS[cfg["score"]].mc_samples and cfg["mc_samples"] < 1:
        raise ConfigError(f"mc_samples={cfg['mc_samples']}: score={cfg['score']!r} needs "
                          "at least 1")


def trains_selector(cfg: dict[str, Any]) -> bool:
    """Whether a run trains a selector: to select (unless it reuses a selection or its score
    needs no model), or as the fusion source / KD teacher of its target."""
    return bool(selects(cfg) or cfg["target_init"] == "fused" or cfg["kd_lambda"] > 0)


def selects(cfg: dict[str, Any]) -> bool:
    """Whether the run selects with a trained selector: not random, not a reused selection or
    a given labeled set, and a score that needs a model."""
    from ..select import SCORE_SPECS

    return bool(cfg["selector"] != "random" and not cfg["selection_from"]
                and not cfg.get("labels_file") and SCORE_SPECS[cfg["score"]].model)


def labeled_counts(cfg: dict[str, Any], pool_size: int) -> list[int]:
    """Labeled images after round 0 (the random initial set) and after each budget's round,
    for a pool of ``pool_size`` images: the counts :func:`prunefuse.experiment.run_experiment`
    selects up to (docs/method.md, "Protocol"). With ``labels_file`` the file's labels are
    round 0's and its one budget's (nothing is selected)."""
    if cfg.get("labels_file"):
        n = round(cfg["budgets"][0] * pool_size)
        return [n, n]
    initial = max(1, round(cfg["initial_fraction"] * pool_size))
    return [initial] + [round(b * pool_size) for b in cfg["budgets"]]


def check_sizes(cfg: dict[str, Any], pool_size: int) -> None:
    """Reject a pool too small for the budgets: every round must add at least one image.

    Args:
        cfg: a validated config.
        pool_size: images in the pool (``max_train``, or the dataset's training split).

    Raises:
        ConfigError: naming the pool size, the counts per round and what to change.
    """
    if cfg.get("labels_file"):
        return  # the file's count is checked against the budget when it is read
    counts = labeled_counts(cfg, pool_size)
    if any(b <= a for a, b in zip(counts, counts[1:])):
        what = f"max_train={cfg['max_train']}" if cfg["max_train"] is not None else \
            f"dataset={cfg['dataset']!r}"
        raise ConfigError(f"{what}: a pool of {pool_size} images gives {counts[0]} initial and "
                          f"{counts[1:]} labeled images at budgets {cfg['budgets']}; every "
                          f"round must add at least one image: use a larger pool (max_train) "
                          f"or budgets further apart")


def run_id(cfg: dict[str, Any]) -> str:
    """Deterministic folder name: a readable prefix and a hash of every result-relevant key."""
    ident = {k: v for k, v in sorted(cfg.items()) if k not in NOT_IN_ID
             and not (k in ID_IF_NOT_DEFAULT and v == PARAMS[k].default)}
    ident.update(id_amendments(cfg))  # the rules of earlier records (run.legacy)
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    sel = cfg["selector"]
    if sel == "prunefuse":
        sel = f"pf{cfg['ratio']:g}-{cfg['target_init']}-kd{cfg['kd_lambda']:g}"
    elif sel == "svp":
        sel = f"svp-{cfg['proxy_arch']}"
    return f"{cfg['dataset']}-{cfg['arch']}-{sel}-{cfg['score']}-s{cfg['seed']}-{digest}"


def unknown_parameters(keys: list[str]) -> str:
    """The one line for parameter names that are not in :data:`PARAMS`: each with its
    closest known names ("did you mean"), else every allowed name."""
    hints = {k: difflib.get_close_matches(k, PARAMS, n=3, cutoff=0.6) for k in keys}
    if all(hints.values()):
        return "; ".join(f"unknown parameter {k!r}: did you mean "
                         f"{' or '.join(repr(h) for h in hints[k])}?" for k in keys)
    return f"unknown parameter(s) {keys}; allowed: {sorted(PARAMS)}"


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is JSON when it parses, else a string.

    ``budgets=0.1,0.2`` is accepted as a list, and so is one number for a list parameter
    (``eval_budgets=0.3`` is ``[0.3]``).
    """
    if "=" not in text:
        raise ConfigError(f"{text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if key not in PARAMS:
        raise ConfigError(unknown_parameters([key]))
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
        if list in PARAMS[key].types and "," in raw:
            try:
                value = [float(v) for v in raw.split(",")]
            except ValueError:
                pass
        elif raw in ("None", "none"):
            value = None
        elif raw in ("True", "False"):
            value = raw == "True"
    if list in PARAMS[key].types and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        value = [value]
    return key, value


def allowed_values() -> dict[str, list[str]]:
    """The names each choice parameter accepts, from the registries at call time (so a
    plugin's registrations are listed too)."""
    from ..data import DATASETS
    from ..models import MODELS
    from ..select import SCORES

    return {"dataset": sorted(DATASETS), "arch": sorted(MODELS), "proxy_arch": sorted(MODELS),
            "selector": list(SELECTORS), "score": sorted(SCORES),
            "schedule": list(SCHEDULES), "target_init": list(TARGET_INITS),
            "selector_init": list(SELECTOR_INITS), "fusion": list(FUSIONS),
            "precision": list(PRECISIONS), "cpu_precision": list(PRECISIONS),
            "v2_derive": list(V2_DERIVE), "v2_loop": list(V2_LOOPS), "report": list(REPORTS),
            "pool_draw": list(POOL_DRAWS),
            "reading": list(READINGS)}


def describe_params(profile: str = "paper") -> str:
    """A table for ``--help``: every parameter with its value under ``profile`` (before the
    None-means-auto defaults are resolved), its meaning and, for a choice, the allowed names."""
    values = {k: p.default for k, p in PARAMS.items()} | PROFILES[profile]
    allowed = allowed_values()
    lines = []
    for k, p in PARAMS.items():
        lines.append(f"  {k:<18} {json.dumps(values[k]):<28} {p.help}")
        if k in allowed:
            lines.append(f"  {'':<18} {'':<28} one of: {', '.join(allowed[k])}")
    return "\n".join(lines)


def describe_profiles() -> str:
    """What each profile changes from ``paper``, one line each, for ``--help``."""
    paper = {k: p.default for k, p in PARAMS.items()} | PROFILES["paper"]
    lines = []
    for name, values in PROFILES.items():
        diff = {k: v for k, v in values.items() if paper[k] != v} if name != "paper" else {}
        lines.append(f"  {name:<6} " + (" ".join(f"{k}={json.dumps(v)}" for k, v in diff.items())
                                        or "the values above"))
    return "\n".join(lines)
