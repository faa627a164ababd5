"""Rules for records written by earlier revisions, in one place, each with the condition under
which it can go.

A rule keeps an earlier record readable, or its run id (and so its finished folder) what it
was. Once no kept record needs a rule (every such record re-run or rewritten), the rule can be
deleted; a deleted id rule changes the run ids of the configs it covered, so their runs re-run.

Two rules stay with the machinery they need, listed here so that this module names them all:
``prunefuse.data.fingerprint.check_unchanged`` and ``prunefuse.batch.reproduce.check_done_data``
pass a record without ``data_fingerprint`` (can go once every kept record has one), and
``prunefuse.analysis.explore`` rebuilds a metrics row's ``ledger_seconds`` when it lacks them
(can go once every kept record's rows have them).
"""

from __future__ import annotations

from typing import Any

# Keys added after records existed: at their default they stay out of the run id, so every
# earlier config keeps its id and its finished records. A new result-relevant key goes here.
# A key can leave once no kept record was written before it (its runs' ids then change).
ID_IF_NOT_DEFAULT: tuple[str, ...] = ("selector_init", "fusion", "t_sync", "v2_derive",
                                       "precision", "cpu_precision", "kd_t2",
                                       "freeze_fused_epochs", "v2_loop", "prune_steps",
                                       "report", "reading", "labels_file", "pool_draw",
                                       "image_size", "channels", "test_fraction",
                                       "classes")


def _rounded_svp_phases(epochs: int) -> tuple[int, ...]:
    """The phase lengths the ``svp`` schedule had before :func:`prunefuse.train.svp_phases`: one warm-up epoch
    (from 4 epochs on), then each 2:1:1 boundary rounded separately (60 -> 1/30/14/15,
    4 -> 1/2/0/1). Only :func:`id_amendments` reads it, so that ids change exactly where the
    schedule did."""
    warm = 1 if epochs >= 4 else 0
    rest = epochs - warm
    half, three_q = round(rest / 2), round(rest * 3 / 4)
    return (warm, half, three_q - half, rest - three_q)


def id_amendments(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a run id hashes beside the config's own keys
    (:func:`prunefuse.run.config.run_id`), only where earlier records computed otherwise."""
    from ..train import svp_phases

    ident: dict[str, Any] = {}
    # The best epoch is the best of the epochs tested, so with report != final how often the
    # test set is read changes the result; every earlier such record tested every epoch.
    # Can go with "report" leaving ID_IF_NOT_DEFAULT (eval_every then enters every such id).
    if cfg.get("report", "final") != "final" and cfg.get("eval_every", 1) != 1:
        ident["eval_every"] = cfg["eval_every"]
    # Epochs whose closest svp phases differ from the per-boundary rounding of earlier
    # records compute something else, so they get their own id (181 epochs keep theirs).
    # Can go once no kept svp-schedule record predates svp_phases (with _rounded_svp_phases).
    if cfg["schedule"] == "svp" and any(svp_phases(e) != _rounded_svp_phases(e)
                                        for e in (cfg["selector_epochs"], cfg["target_epochs"])):
        ident["svp_phases"] = "closest"
    return ident


# Keys a record's config lacks when it was written before them, and the value such a record
# ran at. A key can go once no kept record lacks it.
RECORD_DEFAULTS: dict[str, Any] = {"fusion": "indices", "t_sync": 0, "v2_derive": "gather",
                                   "selector_init": "same", "report": "final",
                                   "reading": "ours", "kd_t2": True, "prune_steps": 1}


def config_value(cfg: dict[str, Any], key: str) -> Any:
    """``cfg[key]`` of a record's config; for a record written before ``key``, what it ran at."""
    return cfg.get(key, RECORD_DEFAULTS[key])


def fusion_macs(row: dict[str, Any]) -> int:
    """A target row's fusion MACs: ``fusion_macs``, or in a record written before the fused
    source was charged, ``teacher_forward_macs`` (can go once no kept record lacks the key)."""
    return row.get("fusion_macs", row.get("teacher_forward_macs", 0))
