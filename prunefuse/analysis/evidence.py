"""The evidence artefacts: KD strength, the authors' reading, time to accuracy and convergence.

Each reads run records only (:func:`prunefuse.runs.results_table`) and pairs every arm with
the main comparison's runs of the same seed: the same pool, initial labels and dense init
(docs/method.md, "The CPU study"). Intervals are 95% Student-t over the paired seeds
(:mod:`prunefuse.stats`); a difference is called one only when its interval excludes zero.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..distill import KD_LAMBDA, kd_pull
from ..run import stats
from ..run.config import PARAMS, READINGS
from ..run.records import BEST_LABEL, pf_label, results_table
from .comparisons import (  # noqa: F401 - CONVERGED_POINTS, REACH_POINTS re-exported
    CONVERGED_POINTS,
    DENSE,
    DENSE_ARM,
    RANDOM,
    RANDOM_ARM,
    REACH_POINTS,
    arm_of,
    authors_arm,
    kd_strength_arms,
    pf_arm,
    time_to_accuracy_arms,
)
from .registry import (
    PER_EPOCH,
    Paths,
    _baseline,
    _isin,
    _main_runs,
    _ours,
    _own_epochs,
    _plots,
    _prunefuse,
    _require,
    _write_table,
    artefact,
    diff_note,
    whole_run,
    write_caption,
)

# Within REACH_POINTS of dense AL's accuracy at the profile's own epochs counts as "reached"
# in the time-to-accuracy table; the recipe counts as converged when training the same
# target longer gains less than CONVERGED_POINTS (both declared in prunefuse.comparisons).


def _focus(df: pd.DataFrame, dataset: str, arch: str, score: str) -> pd.DataFrame:
    """The runs of one dataset, target and score; random selection (score "random") too."""
    return df[(df["dataset"] == dataset) & (df["arch"] == arch)
              & ((df["score"] == score) | (df["selector"] == "random"))]


def _pf_selection(df: pd.DataFrame, ratio: float) -> pd.Series:
    """PruneFuse runs at ``ratio`` under our readings but any form of KD (their own or a
    reused selection)."""
    return (df["selector"] == "prunefuse") & _isin(df["ratio"], [ratio]) & _ours(df, ("kd_t2",))


def _diff_rows(df: pd.DataFrame, arms: list[str], baseline: str, value: str = "acc_pct"):
    """Per arm: accuracy mean ± sd, n and the paired difference against ``baseline``."""
    diffs = _paired(df, baseline, value)
    rows = []
    for arm in arms:
        cell = df[df["arm"] == arm]
        if cell.empty:
            continue
        d = diffs.get(arm)
        rows.append({"arm": arm, "test acc (%)": stats.format_mean_sd(cell[value]),
                     "n": int(cell["seed"].nunique()),
                     f"Δ vs {baseline} (pp) [95% CI]": "" if arm == baseline
                     else (stats.format_diff(d) if d is not None else "—")})
    return rows, diffs


def _table(out: Path, name: str, title: str, caption: str, df: pd.DataFrame, rows: list[dict],
           n_text: int, *, profile: str, setting: str) -> Paths:
    """Write a table artefact: its data, its Markdown and LaTeX table, and its caption."""
    paths = _write_table(out, name, df.drop(columns=PER_EPOCH), pd.DataFrame(rows), caption,
                         n_text)
    paths["caption"] = write_caption(out, name, title, caption, df, profile=profile,
                                     setting=setting, files=list(paths.values()))
    return paths


def _paired(df: pd.DataFrame, baseline: str, value: str = "acc_pct") -> dict[str, dict]:
    """arm -> the paired-difference row of ``value(arm) - value(baseline)`` over shared seeds."""
    tmp = df.assign(_all=0)
    out = stats.paired_differences(tmp, by=["_all"], method="arm", baseline=baseline,
                                   value=value)
    return {r["arm"]: r for r in out.to_dict("records")}


# -- the main comparison at the largest budget ------------------------------------------------

@artefact("main_comparison", files=("csv", "md", "tex"),
          runs=lambda p: p.extra_seed_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["main_ratio"],
                            "budget": p.grid["evidence"]["budget"]},
          needs="evidence", optional=True)
def main_comparison(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                    dataset: str, arch: str, score: str, ratio: float, budget: float) -> Paths:
    """The main comparison at the largest budget with every seed there is: dense AL,
    PruneFuse at ``ratio`` and random, each paired with dense AL, with the width of each
    interval (the extra seeds train their target at that budget only).

    Returns the paths of ``main_comparison.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "main_comparison"
    df = results_table(records)
    if not df.empty:
        df = main_arms(_focus(df, dataset, arch, score), ratio)
        df = df[_isin(df["budget"], [budget])]
    _require(df, "the main comparison", records, dataset=dataset, arch=arch, ratio=ratio,
             budget=budget)
    rows, diffs = _diff_rows(df, [DENSE, pf_label(ratio), RANDOM], DENSE)
    for row in rows:
        d = diffs.get(row["arm"])
        ok = d is not None and d["n_pairs"] >= 2
        row["interval width (pp)"] = f"{d['ci_high'] - d['ci_low']:.2f}" if ok else ""
    note = _plots().seeds_note(df, ["arm"])
    caption = (f"The main comparison at {100 * budget:g}% of the pool ({arch}): final test "
               f"accuracy (%), {_plots().over_seeds(note)}. "
               + diff_note("dense AL", "same seed: the same pool, initial labels and dense init")
               + " The width is that interval's.")
    return _table(out, name, "The main comparison at the largest budget", caption, df, rows, 1,
                  profile=profile, setting=f"{dataset}; target {arch}; score {score}")


def main_arms(df: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """The main comparison's runs with their ``arm`` label: dense AL, PruneFuse at ``ratio``
    (our reading, its own selection, fused + KD) and random, at every budget. The main
    comparison's table and the claims both read these."""
    pf = _prunefuse(df) & _isin(df["ratio"], [ratio])
    dense = _baseline(df) & (df["selector"] == "dense")
    rnd = (df["selector"] == "random") & _main_runs(df)
    df = df[pf | dense | rnd].copy()
    df["arm"] = arm_of(df, (DENSE_ARM, pf_arm(ratio), RANDOM_ARM))
    return df


def authors_runs(df: pd.DataFrame, ratio: float) -> pd.Series:
    """PruneFuse V1 at ``ratio`` under the authors' reading, on its own selection: the
    authors'-reading table and the claims both read these."""
    return ((df["selector"] == "prunefuse") & _isin(df["ratio"], [ratio])
            & (df["reading"] == "authors") & _main_runs(df) & (df["t_sync"] == 0))


# -- KD strength --------------------------------------------------------------------------------

@artefact("kd_strength", files=("csv", "md", "tex"), runs=lambda p: p.kd_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["main_ratio"],
                            "budget": p.grid["evidence"]["budget"]},
          needs="evidence", optional=True)
def kd_strength(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                dataset: str, arch: str, score: str, ratio: float, budget: float) -> Paths:
    """KD strength on one selection: PruneFuse's fused target at ``budget`` trained without
    KD, with the authors' KD and with ours (:func:`prunefuse.comparisons.kd_strength_arms`;
    the values are in the caption, from their homes), each paired with no KD on the same seed.

    Returns the paths of ``kd_strength.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "kd_strength"
    df = results_table(records)
    if not df.empty:
        df = kd_arms(_focus(df, dataset, arch, score), ratio, budget)
    _require(df, "KD strength", records, dataset=dataset, arch=arch, ratio=ratio, budget=budget)
    arms = [a.label for a in kd_strength_arms(ratio)]
    rows, _ = _diff_rows(df, arms, arms[0])
    note = _plots().seeds_note(df, ["arm"])
    authors, ours = _kd_reading(READINGS["authors"]), _kd_reading({})
    caption = (f"Test accuracy (%) of the fused {arch} target at {100 * budget:g}% of the pool, "
               f"{pf_label(ratio)}, each seed's own selection; {_plots().over_seeds(note)}. No KD: "
               f"lambda 0; the authors' KD: {authors[0]}; ours: {ours[0]} (about "
               f"{ours[1] / authors[1]:.0f} times the authors' pull towards the teacher, relative "
               "to CE: distill.kd_pull). " + diff_note(arms[0]))
    return _table(out, name, "KD strength on PruneFuse's selection", caption, df, rows, 1,
                  profile=profile, setting=f"{dataset}; target {arch}; score {score}")


def _kd_reading(values: dict) -> tuple[str, float]:
    """A reading's KD, as words (``0.5 T^2 KL + 0.5 CE at T 4``), and its pull towards the
    teacher (:func:`prunefuse.distill.kd_pull`); unset values are ours (the defaults)."""
    lam = values.get("kd_lambda", KD_LAMBDA)
    t = values.get("kd_temperature", PARAMS["kd_temperature"].default)
    t2 = values.get("kd_t2", PARAMS["kd_t2"].default)
    words = f"{lam:g} {'T^2 ' if t2 else ''}KL + {1 - lam:g} CE at T {t:g}" + (
        "" if t2 else " without T^2")
    return words, kd_pull(lam, t, t2)


def kd_arms(df: pd.DataFrame, ratio: float, budget: float) -> pd.DataFrame:
    """The KD-strength runs at ``budget`` with their ``arm`` (the labels of
    :func:`prunefuse.comparisons.kd_strength_arms`): PruneFuse's fused targets at ``ratio``
    and the profile's target epochs, on the seeds whose selection the arms without our KD
    reuse. The table and the claims both read these."""
    targets = df["run_id"].map(df.groupby("run_id")["budget"].nunique())
    keep = _pf_selection(df, ratio) & (df["target_init"] == "fused") & _isin(df["budget"], [budget])
    df = df[keep].assign(_targets=targets[keep])
    if df.empty:
        return df.drop(columns="_targets").assign(arm=pd.Series(dtype=str))
    df = df[df["target_epochs"] == _own_epochs(df)]
    reused = df["selection_from"].notna()
    df = df[(reused | (df["kd_lambda"] > 0)) & df["seed"].isin(set(df.loc[reused, "seed"]))]
    df = df.assign(arm=arm_of(df, kd_strength_arms(ratio)))
    # One run per seed and arm: where a batch holds two that train the same target (the
    # ablation's fused target without KD trains every budget, the KD arm's only this one),
    # the KD arm's own run, the one with the fewest targets, stands for it.
    df = df.sort_values(["_targets", "run_id"]).drop_duplicates(["seed", "arm"])
    return df.drop(columns="_targets").sort_index()


# -- the authors' reading -----------------------------------------------------------------------

@artefact("authors_reading", files=("csv", "md", "tex"), runs=lambda p: p.authors_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["main_ratio"]}, needs="evidence", optional=True)
def authors_reading(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                    dataset: str, arch: str, score: str, ratio: float) -> Paths:
    """PruneFuse under the authors' reading (``reading=authors``) and under ours, against
    dense AL, per budget, on the same seeds. Accuracies are final-epoch; the authors' best
    epoch is shown beside them, labelled as selected on the test set.

    Returns the paths of ``authors_reading.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "authors_reading"
    df = results_table(records)
    if not df.empty:
        df = _focus(df, dataset, arch, score)
        arms = (DENSE_ARM, pf_arm(ratio), authors_arm(ratio))
        authors = authors_runs(df, ratio)
        ours = _prunefuse(df) & _isin(df["ratio"], [ratio])
        dense = _baseline(df) & (df["selector"] == "dense")
        seeds = set(df.loc[authors, "seed"])
        df = df[(authors | ours | dense) & df["seed"].isin(seeds)].copy()
        df["arm"] = arm_of(df, arms)
        df["final_pct"] = 100 * df["final_test_acc"]
    _require(df, "the authors' reading", records, dataset=dataset, arch=arch, ratio=ratio,
             reading="authors")
    rows = []
    for budget, cell in df.groupby("budget_pct", sort=True):
        diffs = _paired(cell, DENSE, "final_pct")
        for arm in [a.label for a in (DENSE_ARM, pf_arm(ratio), authors_arm(ratio))]:
            a = cell[cell["arm"] == arm]
            if a.empty:
                continue
            d = diffs.get(arm)
            rows.append({
                "budget (% of pool)": f"{budget:g}", "arm": arm,
                "final-epoch acc (%)": stats.format_mean_sd(a["final_pct"]),
                "n": int(a["seed"].nunique()),
                "Δ vs dense AL (pp) [95% CI]": "" if arm == DENSE
                else (stats.format_diff(d) if d is not None else "—"),
                f"acc, {BEST_LABEL} (%)": stats.format_mean_sd(a["best_acc_pct"])
                if (a["reading"] == "authors").all() else ""})
    note = _plots().seeds_note(df, ["budget", "arm"])
    preset = READINGS["authors"]
    caption = (f"Final-epoch test accuracy (%) of the {arch} target: dense AL, "
               f"{pf_label(ratio)} under our reading, and under the authors' (KD "
               f"{_kd_reading(preset)[0]}, the fused conv slices frozen in the first "
               f"{preset['freeze_fused_epochs']} epoch(s), fusion {preset['fusion']!r} (into a "
               f"fresh Xavier net at [::2]), {preset['prune_steps']} iterative pruning steps); "
               "mean ± sd over the seeds the authors' "
               f"arm has ({note}). The last column is the authors' reported number, the best "
               "epoch, which was chosen by looking at the test set. " + diff_note("dense AL"))
    return _table(out, name, "PruneFuse under the authors' reading", caption, df, rows, 2, profile=profile,
                  setting=f"{dataset}; target {arch}; score {score}")


# -- time to accuracy ---------------------------------------------------------------------------

# Its arms' labels (prunefuse.comparisons.time_to_accuracy_arms; the ratio does not enter them).
TTA_ARMS = tuple(a.label for a in time_to_accuracy_arms(0.5))


def time_to_accuracy_table(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the time-to-accuracy rows (column ``arm``, ``target_epochs``, ``seed``,
    ``acc_pct``, ``seconds``): per arm and epochs, accuracy and the paired difference against
    dense AL's selection at the profile's own epochs; and per arm, the fewest epochs whose
    mean comes within :data:`REACH_POINTS` of it, with its seconds and their ratio to the
    reference's. Returns (per arm and epochs, per arm)."""
    own = _own_epochs(df)
    ref = df[(df["arm"] == TTA_ARMS[2]) & (df["target_epochs"] == own)].set_index("seed")
    cells = []
    for (arm, epochs), cell in df.groupby(["arm", "target_epochs"], sort=True):
        c = cell.set_index("seed")
        seeds = sorted(set(c.index) & set(ref.index))
        diff = stats.interval_row(c.loc[seeds, "acc_pct"] - ref.loc[seeds, "acc_pct"])
        ratio = stats.mean_ci(c.loc[seeds, "seconds"] / ref.loc[seeds, "seconds"])
        macs = (c.loc[seeds, "macs"] / ref.loc[seeds, "macs"]).mean()
        acc = stats.mean_ci(c["acc_pct"])
        cells.append({"arm": arm, "target_epochs": int(epochs), "n": int(acc[3]),
                      "acc_mean": acc[0], "acc_sd": acc[1], "acc_half": acc[2],
                      "seconds_mean": float(c["seconds"].mean()),
                      "diff_mean": diff["diff_mean"], "diff_low": diff["ci_low"],
                      "diff_high": diff["ci_high"], "n_pairs": diff["n_pairs"],
                      "seconds_ratio": ratio[0], "seconds_ratio_half": ratio[2],
                      "macs_ratio": macs})
    cells = pd.DataFrame(cells)
    if not cells.empty:  # in the arms' declared order, then by epochs
        cells = cells.sort_values("target_epochs", kind="stable").sort_values(
            "arm", key=lambda arms: arms.map(TTA_ARMS.index), kind="stable").reset_index(drop=True)
    reach = []
    for arm in TTA_ARMS:
        a = cells[cells["arm"] == arm].sort_values("target_epochs")
        if a.empty:
            continue
        hit = a[a["diff_mean"] >= -REACH_POINTS]
        first = hit.iloc[0] if not hit.empty else None
        reach.append({"arm": arm, "reached": first is not None,
                      "epochs": None if first is None else int(first["target_epochs"]),
                      "seconds": None if first is None else first["seconds_mean"],
                      "diff_mean": None if first is None else first["diff_mean"],
                      "diff_low": None if first is None else first["diff_low"],
                      "diff_high": None if first is None else first["diff_high"],
                      "seconds_ratio": None if first is None else first["seconds_ratio"],
                      "seconds_ratio_half": None if first is None else first["seconds_ratio_half"],
                      "macs_ratio": None if first is None else first["macs_ratio"],
                      "n": None if first is None else int(first["n_pairs"])})
    return cells, pd.DataFrame(reach)


def time_to_accuracy_rows(records: str | os.PathLike, *, dataset: str, arch: str, score: str,
                          ratio: float, budget: float) -> pd.DataFrame:
    """The records of the time-to-accuracy arms at ``budget``: one row per arm, epochs and
    seed, with ``seconds`` = the whole run to that model (selection + fusion source +
    target training with its teacher; test evaluation excluded)."""
    df = results_table(records)
    if df.empty:
        return df
    df = _focus(df, dataset, arch, score)
    df = df[_isin(df["budget"], [budget]) & _ours(df)]
    own = _own_epochs(df)
    pf = df["selector"] == "prunefuse"
    fused = pf & _isin(df["ratio"], [ratio]) & (df["target_init"] == "fused") \
        & (df["kd_lambda"] > 0) & df["kd_t2"] & (_main_runs(df) | (df["target_epochs"] != own))
    scratch = pf & _isin(df["ratio"], [ratio]) & (df["target_init"] == "scratch") \
        & (df["kd_lambda"] == 0) & df["selection_from"].notna()
    dense = (df["selector"] == "dense") & (df["target_init"] == "scratch") \
        & (_main_runs(df) | (df["target_epochs"] != own))
    df = df[fused | scratch | dense].copy()
    df["arm"] = arm_of(df, time_to_accuracy_arms(ratio))
    # schedules PruneFuse's selection was trained for (dense AL's longer convergence runs
    # are the convergence artefact's)
    df = df[df["target_epochs"].isin(set(df.loc[df["arm"] != TTA_ARMS[2], "target_epochs"]))]
    df["seconds"], df["macs"] = whole_run(df, "seconds"), whole_run(df, "macs")
    return df


@artefact("time_to_accuracy", files=("csv", "md", "tex", "pdf", "png"),
          runs=lambda p: p.time_to_accuracy_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["main_ratio"],
                            "budget": p.grid["evidence"]["budget"]},
          needs="evidence", optional=True)
def time_to_accuracy(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                     dataset: str, arch: str, score: str, ratio: float,
                     budget: float) -> Paths:
    """Does fusion shorten training? Targets at ``budget`` trained for several lengths, each
    a full schedule of that length, on PruneFuse's selection (fused + KD, and from scratch)
    and on dense AL's (from scratch): accuracy against epochs and against whole-run MACs (the
    table gives seconds too, and their ratio, and says they depend on the machine),
    and the fewest epochs each needs to come within :data:`REACH_POINTS` points of dense AL's
    accuracy at the profile's own epochs.

    Returns the paths of ``time_to_accuracy.{csv,md,tex,pdf,png,caption.md}``.
    """
    out, name = Path(out), "time_to_accuracy"
    df = time_to_accuracy_rows(records, dataset=dataset, arch=arch, score=score, ratio=ratio,
                               budget=budget)
    _require(df, "time to accuracy", records, dataset=dataset, arch=arch, ratio=ratio,
             budget=budget)
    cells, reach = time_to_accuracy_table(df)
    own = _own_epochs(df)
    rows = []
    for r in cells.itertuples():
        rows.append({
            "arm": r.arm, "target epochs": r.target_epochs, "n": r.n,
            "test acc (%)": stats.format_mean_sd(df[(df["arm"] == r.arm) & (
                df["target_epochs"] == r.target_epochs)]["acc_pct"]),
            f"Δ vs dense AL at {own} (pp) [95% CI]": _fmt_interval(r.diff_mean, r.diff_low,
                                                                   r.diff_high, r.n_pairs),
            "whole run (s)": f"{r.seconds_mean:.0f}",
            f"seconds / dense AL's at {own}": _fmt_ratio(r.seconds_ratio, r.seconds_ratio_half,
                                                         r.n_pairs),
            f"MACs / dense AL's at {own}": _fmt_ratio(r.macs_ratio, None, 1)})
    for r in reach.itertuples():
        rows.append({
            "arm": r.arm, "target epochs": f"first within {REACH_POINTS:g}: "
            + (f"{int(r.epochs)}" if r.reached else f"none up to {own}"),
            "n": "" if pd.isna(r.n) else int(r.n),
            "test acc (%)": "",
            f"Δ vs dense AL at {own} (pp) [95% CI]": "" if not r.reached
            else _fmt_interval(r.diff_mean, r.diff_low, r.diff_high, r.n),
            "whole run (s)": "" if not r.reached else f"{r.seconds:.0f}",
            f"seconds / dense AL's at {own}": "" if not r.reached
            else _fmt_ratio(r.seconds_ratio, r.seconds_ratio_half, r.n),
            f"MACs / dense AL's at {own}": "" if not r.reached
            else _fmt_ratio(r.macs_ratio, None, 1)})
    note = _plots().seeds_note(df, ["arm", "target_epochs"])
    caption = (f"Time to accuracy at {100 * budget:g}% of the pool ({arch}, "
               f"{pf_label(ratio)}): each target trained for the given epochs as a full schedule of "
               f"that length, on the selection named; {_plots().over_seeds(note)}. Δ: paired "
               f"difference against dense AL's target at {own} epochs (same seed), mean and 95% "
               "Student-t interval in points. Whole run: selection + fusion source + target "
               "training with its KD teacher's forwards, in wall-clock seconds, test evaluation "
               "excluded; the ratio is paired per seed, with its 95% interval. Seconds depend "
               "on the machine and its load when each run ran (the records' finish dates); the "
               "MACs ratio (the same parts, by the ledger's formulas, mean over the same pairs) "
               "does not. 'First within "
               f"{REACH_POINTS:g}': the fewest epochs whose mean difference is at least "
               f"-{REACH_POINTS:g} points.")
    paths = _write_table(out, name, df.drop(columns=PER_EPOCH), pd.DataFrame(rows), caption, 2)
    paths.update(zip(("pdf", "png"), _plots().plot_time_to_accuracy(
        df, out / name, reference=float(cells[(cells["arm"] == TTA_ARMS[2]) & (
            cells["target_epochs"] == own)]["acc_mean"].iloc[0])
        if ((cells["arm"] == TTA_ARMS[2]) & (cells["target_epochs"] == own)).any() else None,
        title=f"Time to accuracy, {dataset}, {arch}, {100 * budget:g}% of the pool")))
    paths["caption"] = write_caption(out, name, "Time to accuracy: does fusion shorten "
                                     "training?", caption, df, profile=profile,
                                     setting=f"{dataset}; target {arch}; score {score}",
                                     files=list(paths.values()))
    return paths


def _fmt_interval(mean, low, high, n) -> str:
    """:func:`prunefuse.stats.format_diff` of a paired difference given as its parts."""
    if n is None or pd.isna(mean):
        return "—"
    return stats.format_diff({"n_pairs": n, "diff_mean": mean, "ci_low": low, "ci_high": high,
                              "excludes_zero": bool(n >= 2 and (low > 0 or high < 0))})


def _fmt_ratio(mean, half, n) -> str:
    if n is None or n == 0 or pd.isna(mean):
        return "—"
    if n < 2 or pd.isna(half):
        return f"{mean:.2f}x"
    return f"{mean:.2f}x [{mean - half:.2f}, {mean + half:.2f}]"


# -- convergence ------------------------------------------------------------------------------

def convergence_rows(records: str | os.PathLike, *, dataset: str, arch: str, score: str,
                     budget: float) -> pd.DataFrame:
    """Dense AL's target at ``budget`` from scratch: the main runs at the profile's own epochs
    and, on their selection, the longer schedules; column ``arm`` names the epochs."""
    df = results_table(records)
    if df.empty:
        return df
    df = _focus(df, dataset, arch, score)
    df = df[(df["selector"] == "dense") & (df["target_init"] == "scratch") & _ours(df)
            & _isin(df["budget"], [budget])]
    if df.empty:
        return df
    own = _own_epochs(df)
    longer = df["selection_from"].notna() & (df["target_epochs"] > own)
    df = df[(_main_runs(df) & (df["target_epochs"] == own)) | longer]
    return df.assign(arm=[f"{e} epochs" for e in df["target_epochs"]])


@artefact("convergence", files=("csv", "md", "tex"), runs=lambda p: p.convergence_runs(),
          params=lambda p: {**p.shown, "budget": p.grid["evidence"]["budget"]},
          needs="evidence", optional=True)
def convergence(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                dataset: str, arch: str, score: str, budget: float) -> Paths:
    """Has the recipe converged? Dense AL's target at ``budget``, on each seed's own
    selection, trained for the profile's epochs and for a longer full schedule, paired per
    seed; within :data:`CONVERGED_POINTS` points counts as converged.

    Returns the paths of ``convergence.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "convergence"
    df = convergence_rows(records, dataset=dataset, arch=arch, score=score, budget=budget)
    _require(df, "convergence", records, dataset=dataset, arch=arch, budget=budget)
    own = _own_epochs(df)
    arms = [f"{e} epochs" for e in sorted(df["target_epochs"].unique())]
    rows, _ = _diff_rows(df, arms, f"{own} epochs")
    note = _plots().seeds_note(df, ["arm"])
    caption = (f"Convergence at {100 * budget:g}% of the pool: test accuracy (%) of dense AL's "
               f"{arch} target, each seed's own selection, trained from scratch for the "
               f"profile's {own} epochs and for longer full schedules (cosine, the same peak "
               f"learning rate); {_plots().over_seeds(note)}. " + diff_note(f"{own} epochs")
               + f" A gain below {CONVERGED_POINTS:g} point counts as converged.")
    return _table(out, name, "Convergence of the recipe", caption, df, rows, 1,
                  profile=profile, setting=f"{dataset}; target {arch}; score {score}")
