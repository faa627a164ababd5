"""The declared study's artefacts: every arm per block family, pool and budget, read from
the records through the declarations (:data:`prunefuse.comparisons.STUDY`).

A record is an arm's run exactly when the planner gives it that arm's run id, so rows are
selected by run id from the plan, never by a second spelling of the arm's parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from . import stats
from .blocks import machine_of
from .comparisons import STUDY, study_plan
from .registry import Paths, _write_table, artefact, write_caption
from .runs import find_runs, results_table


def study_rows(records: str | os.PathLike, *, profile: str) -> pd.DataFrame:
    """The results table of the study's runs under ``records``, one row per run and budget,
    with its ``group``, ``pool``, ``block``, ``arm``, the arm's ``label`` and the run's
    ``machine`` (:func:`prunefuse.blocks.machine_of`; None where the record does not name its
    CPU). Runs no arm plans are left out."""
    planned = {r.run_id: r for r in study_plan(profile, dataset="fashion-mnist")}
    table = results_table(records)
    if table.empty:
        return table
    machines = {r["run_id"]: machine_of(r) for r in find_runs(records)}
    table = table[table["run_id"].isin(list(planned))].copy()
    table["block"] = table["run_id"].map(lambda r: planned[r].block)
    table["group"] = table["block"].str.split("/").str[0]
    table["pool"] = table["block"].str.split("/").str[1].astype(int)
    table["arm"] = table["run_id"].map(lambda r: planned[r].arm)
    table["label"] = table["arm"].map(lambda a: STUDY.arms[a].label)
    table["machine"] = table["run_id"].map(machines)
    return table.reset_index(drop=True)


def arms_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per group, pool, budget and arm: n seeds, accuracy mean +- sd, and the machines."""
    rows = []
    for (group, pool, budget, arm), cell in df.groupby(["group", "pool", "budget", "arm"],
                                                       sort=False):
        mean, sd, _, n = stats.mean_ci(cell["acc_pct"])
        rows.append({"group": group, "pool": pool, "budget": f"{100 * budget:g}%",
                     "arm": STUDY.arms[arm].label, "n": n,
                     "accuracy (%)": stats.mean_sd_text(mean, sd, n),
                     "machines": cell["machine"].fillna("unknown").nunique()})
    return pd.DataFrame(rows)


def _study_params(planner) -> dict:
    return {}


@artefact("study_arms", files=("csv", "md", "tex"), runs=lambda p: p.study_runs(),
          params=_study_params, needs="study")
def study_arms(records: str | os.PathLike, out: str | os.PathLike, *, profile: str) -> Paths:
    """Every arm of the study per block family, pool size and budget: n, mean +- sd."""
    out = Path(out)
    df = study_rows(records, profile=profile)
    if df.empty:
        raise FileNotFoundError(f"records={str(records)!r}: no finished run of the study; run "
                                f"`prunefuse reproduce --profile {profile} --out DIR` first")
    table = arms_table(df)
    caption = ("Test accuracy of the target (%) of every arm, mean ± sd over its seeds, per "
               "block family, pool size and budget; machines: how many CPUs its runs ran on.")
    paths = _write_table(out, "study_arms", df.drop(columns=["epoch_acc_pct"]), table,
                         caption, n_text=4)
    paths["caption"] = write_caption(out, "study_arms", "Every arm of the study", caption, df,
                                     profile=profile, setting="Fashion-MNIST, ResNet-20",
                                     files=list(paths.values()))
    return paths
