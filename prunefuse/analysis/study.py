"""The declared study's artefacts: every arm per block family, pool and budget, read from
the records through the declarations (:data:`prunefuse.comparisons.STUDY`).

A record is an arm's run exactly when the planner gives it that arm's run id, so rows are
selected by run id from the plan, never by a second spelling of the arm's parameters.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..run import stats
from ..run.records import pool_draws_text, results_table
from . import judge
from .comparisons import MEASURES, STUDY, Comparison, Study, study_plan
from .registry import Paths, _write_table, artefact, whole_run, write_caption


def study_rows(records: str | os.PathLike, *, profile: str, dataset: str,
               overrides: dict | None = None) -> pd.DataFrame:
    """The results table of the study's runs on ``dataset`` under ``records``, one row per run
    and budget, with its ``group``, ``pool``, ``block``, ``arm`` and the arm's ``label``
    (the run's ``machine`` is a column of every results table). ``overrides``: the run
    parameters the batch set for every run (``reproduce``'s ``key=value``), which enter the
    run ids. Runs no arm plans are left out."""
    planned = {r.run_id: r for r in study_plan(profile, dataset=dataset, overrides=overrides)}
    table = results_table(records)
    if table.empty:
        return table
    table = table[table["run_id"].isin(list(planned))].copy()
    table["block"] = table["run_id"].map(lambda r: planned[r].block)
    table["group"] = table["block"].str.split("/").str[0]
    table["pool"] = table["block"].str.split("/").str[1].astype(int)
    table["arm"] = table["run_id"].map(lambda r: planned[r].arm)
    table["label"] = table["arm"].map(lambda a: STUDY.arms[a].label)
    table["role"] = table["arm"].map(lambda a: STUDY.arms[a].role)
    table["final_pct"] = 100 * table["final_test_acc"]
    table["run_seconds"] = whole_run(table, "seconds")
    return table.reset_index(drop=True)


def _pairs(df: pd.DataFrame, comp: Comparison, group: str, pool: int, budget: float):
    """The paired values of one claim's cell, per seed: (arm, comparator, how many pairs a
    record left without a machine, how many pairs ran on two machines). Pairs across
    machines are left out, never paired."""
    cell = df[(df["group"] == group) & (df["pool"] == pool) & (df["budget"] == budget)]
    a = cell[cell["role"] == comp.arm].set_index("seed")
    b = cell[cell["role"] == comp.against].set_index("seed")
    seeds = sorted(set(a.index) & set(b.index))
    ma, mb = a.loc[seeds, "machine"], b.loc[seeds, "machine"]
    unknown = int((ma.isna() | mb.isna()).sum())
    across = (ma != mb) & ma.notna() & mb.notna()
    keep = [s for s in seeds if not across[s]]
    return (a.loc[keep, comp.measure].astype(float), b.loc[keep, comp.measure].astype(float),
            unknown, int(across.sum()))


def judge_rows(df: pd.DataFrame, study: Study = STUDY) -> pd.DataFrame:
    """Every declared comparison at every group, pool size and budget its arms ran: n pairs,
    each arm's mean and sd, the paired statistic with its 95% interval, the hypothesis, the
    verdict, its one-sided p-value and the family-wise (Holm) verdict over all rows, and the
    pairs left out because their runs ran on two machines (``cross_machine``; ``unknown``
    where a record does not name its CPU): a block runs on one machine, so a pair across
    machines means a block was mixed by hand, and it is counted, never paired."""
    rows = []
    for comp in study.comparisons:
        null = 1.0 if comp.statistic == "ratio" else 0.0
        unit = MEASURES[comp.measure][1] if comp.statistic == "difference" else "ratio"
        for group in comp.groups:
            cells = df[(df["group"] == group) & df["role"].isin([comp.arm, comp.against])]
            for (pool, budget), _ in cells.groupby(["pool", "budget"], sort=True):
                if comp.budgets is not None and budget not in comp.budgets:
                    continue
                a, b, unknown, across = _pairs(df, comp, group, pool, budget)
                if a.empty and not across:
                    continue  # its arms have no seed in common yet
                mean, sd, half, n = stats.mean_ci(comp.paired(a, b))
                low, high = (mean - half, mean + half) if n > 1 else (math.nan, math.nan)
                rows.append({
                    "id": comp.key, "claim": comp.claim, "source": comp.source,
                    "comparison": f"{study.label(group, comp.arm)} "
                                  f"{'-' if comp.statistic == 'difference' else '/'} "
                                  f"{study.label(group, comp.against)}, "
                                  f"{MEASURES[comp.measure][0]}",
                    "group": group, "pool": int(pool), "budget": f"{100 * budget:g}%",
                    "n": n, "arm_mean": a.mean(), "arm_sd": a.std(ddof=1) if n > 1 else math.nan,
                    "against_mean": b.mean(),
                    "against_sd": b.std(ddof=1) if n > 1 else math.nan,
                    "mean": mean, "low": low, "high": high, "unit": unit,
                    "hypothesis": judge.hypothesis_text(comp.hypothesis, margin=comp.margin,
                                                        unit=unit, higher=comp.higher,
                                                        statistic=comp.statistic),
                    "verdict": judge.verdict(low, high, hypothesis=comp.hypothesis, null=null,
                                             margin=comp.margin, higher=comp.higher),
                    "p": judge.p_value(mean, sd, n, hypothesis=comp.hypothesis, null=null,
                                       margin=comp.margin, higher=comp.higher),
                    "cross_machine": "unknown" if unknown else across,
                })
    out = pd.DataFrame(rows)
    if not out.empty:
        out["family_verdict"] = judge.family_verdicts(list(out["p"]), list(out["verdict"]))
    return out


def _setting(df: pd.DataFrame) -> str:
    """The caption's dataset line: the dataset and target network the runs used."""
    return "; ".join(f"{d}, target {a}" for d, a in
                     df[["dataset", "arch"]].drop_duplicates().itertuples(index=False))


def blocks_per_machine(df: pd.DataFrame) -> str:
    """How many blocks ran on each machine, then the pool draws, for a caption:
    ``3 blocks on <CPU>; 2 blocks on <CPU>. Pools (...): 5 draws of 5 seeds at 4,000 images``
    (the caller ends the sentence)."""
    counts = df.assign(machine=df["machine"].fillna("a machine the records do not name")) \
        .groupby("machine")["block"].nunique()
    blocks = "; ".join(f"{n} block{'s' if n != 1 else ''} on {m}" for m, n in counts.items())
    return f"{blocks}. {pool_draws(df)}"


def pool_draws(df: pd.DataFrame) -> str:
    """The pools the runs drew, per pool size (:func:`prunefuse.records.pool_draws_text`)."""
    draws = [d if isinstance(d, str) else None for d in df["pool_draw"]]  # NaN: not named
    text = pool_draws_text(zip(df["pool"], draws, df["seed"], df["run_id"]))
    return f"Pools (sha256 of the drawn indices, in each config.json): {text}" if text else ""


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


def _none_yet(records, profile: str, what: str) -> FileNotFoundError:
    """The one error of a study artefact that has nothing to build from yet."""
    return FileNotFoundError(f"records={str(records)!r}: {what}; run `prunefuse reproduce "
                             f"--profile {profile} --out DIR` first")


def _study_params(planner) -> dict:
    """The study notebooks' parameters: the dataset and the batch's overrides."""
    return {"dataset": planner.focus, "overrides": dict(planner.overrides)}


@artefact("study_arms", files=("csv", "md", "tex"), runs=lambda p: p.study_runs(),
          params=_study_params, needs="study", partial=True)
def study_arms(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
               dataset: str = "fashion-mnist", overrides: dict | None = None) -> Paths:
    """Every arm of the study per block family, pool size and budget: n, mean +- sd."""
    out = Path(out)
    df = study_rows(records, profile=profile, dataset=dataset, overrides=overrides)
    if df.empty:
        raise _none_yet(records, profile, "no finished run of the study")
    table = arms_table(df)
    caption = ("Test accuracy of the target (%) of every arm, mean ± sd over its seeds, per "
               "block family, pool size and budget; machines: how many CPUs its runs ran on. "
               f"Every block's runs ran on one machine: {blocks_per_machine(df)}.")
    paths = _write_table(out, "study_arms", df.drop(columns=["epoch_acc_pct"]), table,
                         caption, n_text=4)
    paths["caption"] = write_caption(out, "study_arms", "Every arm of the study", caption, df,
                                     profile=profile, setting=_setting(df),
                                     files=list(paths.values()))
    return paths


def _fmt(mean: float, low: float, high: float, unit: str) -> str:
    digits = 3 if unit == "ratio" else 2
    sign = "+" if unit != "ratio" else ""
    if math.isnan(low):
        return f"{mean:{sign}.{digits}f} (n=1, no interval)"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def claims_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims as ``claims.md`` shows them, one line per claim, group, pool and budget."""
    def sd(m, s, n, unit):
        return stats.mean_sd_text(m, s, n) if unit != "ratio" else f"{m:.3g}"

    return pd.DataFrame({
        "claim": rows["claim"], "comparison": rows["comparison"],
        "pool": rows["pool"].map(lambda p: f"{p:,}"), "budget": rows["budget"], "n": rows["n"],
        "arm (mean ± sd)": [sd(m, s, n, u) for m, s, n, u in
                            zip(rows["arm_mean"], rows["arm_sd"], rows["n"], rows["unit"])],
        "comparator (mean ± sd)": [sd(m, s, n, u) for m, s, n, u in zip(
            rows["against_mean"], rows["against_sd"], rows["n"], rows["unit"])],
        "Δ or ratio [95% CI]": [_fmt(m, lo, hi, u) for m, lo, hi, u in
                                zip(rows["mean"], rows["low"], rows["high"], rows["unit"])],
        "hypothesis": rows["hypothesis"], "verdict": rows["verdict"],
        "family-wise (Holm)": rows["family_verdict"],
        "pairs across machines": rows["cross_machine"],
    })


def verdict_lines(rows: pd.DataFrame) -> list[str]:
    """One line per claim row, answer first: the family-wise verdict, the claim, where, n and
    the interval, for the top of a results page."""
    out = []
    for r in rows.itertuples(False):
        where = f"{r.budget} of a {r.pool:,}-image pool"
        crossed = "" if r.cross_machine in (0, "0") else f"; pairs across machines: {r.cross_machine}"
        out.append(f"**{r.family_verdict}** (per claim: {r.verdict}): {r.claim}, {where}: "
                   f"{_fmt(r.mean, r.low, r.high, r.unit)} {r.unit}, n={r.n}, "
                   f"{r.hypothesis}{crossed}")
    return out


@artefact("study_claims", files=("csv", "md", "tex"), runs=lambda p: p.study_runs(),
          params=_study_params, needs="study", partial=True)
def study_claims(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                 dataset: str = "fashion-mnist", overrides: dict | None = None) -> Paths:
    """Every declared claim of the study at every group, pool size and budget its arms ran."""
    out = Path(out)
    df = study_rows(records, profile=profile, dataset=dataset, overrides=overrides)
    rows = judge_rows(df) if not df.empty else pd.DataFrame()
    if rows.empty:
        raise _none_yet(records, profile, "no pair of the study's arms has finished")
    counts = rows["family_verdict"].value_counts()
    text = (f"{len(rows)} claim rows: {counts.get('supported', 0)} supported family-wise "
            f"(Holm over all rows, one-sided alpha {judge.ALPHA}), "
            f"{counts.get('not supported', 0)} not supported, "
            f"{counts.get('not shown', 0)} not shown at this n. Each row pairs the runs of "
            "one seed's block, all on one machine; Δ is arm minus comparator (points of test "
            "accuracy) or their ratio, with its 95% paired t interval. Non-inferiority and "
            "equivalence claims state their margin (docs/method.md, \"Margins\"). Blocks: "
            f"{blocks_per_machine(df)}.")
    paths = _write_table(out, "study_claims", rows, claims_table(rows), text, n_text=4)
    paths["caption"] = write_caption(out, "study_claims", "Claims, decided from the study",
                                     "\n".join(["Verdicts first:", "",
                                                *[f"- {ln}" for ln in verdict_lines(rows)], "",
                                                text]), df,
                                     profile=profile, setting=_setting(df),
                                     files=list(paths.values()))
    return paths


def slope(x, y) -> dict:
    """Least-squares slope of ``y`` on ``x`` with its 95% t interval (n - 2 degrees of
    freedom); NaN interval below 3 points or with one x."""
    x, y = pd.Series(x, dtype=float).reset_index(drop=True), pd.Series(y, dtype=float).reset_index(drop=True)
    n = len(x)
    sxx = float(((x - x.mean()) ** 2).sum())
    if n < 2 or x.nunique() < 2:  # one x: no slope (sxx would be rounding noise, not 0)
        return {"slope": math.nan, "low": math.nan, "high": math.nan, "n": n}
    b = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    if n < 3:
        return {"slope": b, "low": math.nan, "high": math.nan, "n": n}
    resid = y - (y.mean() + b * (x - x.mean()))
    se = math.sqrt(float((resid ** 2).sum()) / (n - 2) / sxx)
    half = stats.t975(n - 2) * se
    return {"slope": b, "low": b - half, "high": b + half, "n": n}


def _slope_text(fit) -> str:
    """A fitted slope with its interval, or a dash where there is none (one pool size)."""
    return "—" if math.isnan(fit.slope) else _fmt(fit.slope, fit.low, fit.high, "")


def scaling_rows(df: pd.DataFrame, study: Study = STUDY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each of ``study.scaling``'s comparisons at the largest budget, per pool size (its
    per-pool row of :func:`judge_rows`), and its per-seed statistic regressed on log2(pool
    size): the change per doubling of the pool, with its 95% interval."""
    budget = df["budget"].max()
    at = df[df["budget"] == budget]
    rows = judge_rows(at, Study(study.arms, study.groups,
                                tuple(study.comparison(k) for k in study.scaling)))
    fits = []
    for key in study.scaling:
        comp = study.comparison(key)
        xs, ys = [], []
        for group in comp.groups:
            for pool in sorted(set(at.loc[at["group"] == group, "pool"])):
                a, b, _, _ = _pairs(at, comp, group, pool, budget)  # one machine per pair
                values = comp.paired(a, b)
                xs += [math.log2(pool)] * len(values)
                ys += list(values)
        fit = slope(xs, ys)
        sign = ("cannot be fitted yet (one pool size)" if len(set(xs)) < 2
                else "rises" if fit["low"] > 0 else "falls" if fit["high"] < 0
                else "shows no trend at this n")
        named = rows.loc[rows["id"] == key, "comparison"]
        fits.append({"id": key, "claim": comp.claim, "per": "doubling of the pool",
                     "statistic": named.iloc[0] if len(named) else key,
                     **fit, "pools": len(set(xs)), "trend": sign})
    return rows, pd.DataFrame(fits)


@artefact("scaling", files=("csv", "md", "tex", "pdf", "png"), runs=lambda p: p.study_runs(),
          params=_study_params, needs="study", partial=True)
def scaling(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
            dataset: str = "fashion-mnist", overrides: dict | None = None) -> Paths:
    """The main comparison's differences and the cost ratios against pool size, with the
    slope per doubling of the pool."""
    from .registry import _plots

    out = Path(out)
    df = study_rows(records, profile=profile, dataset=dataset, overrides=overrides)
    if df.empty:
        raise _none_yet(records, profile, "no finished run of the study")
    rows, fits = scaling_rows(df)
    if rows.empty:
        raise _none_yet(records, profile, "no pair at any pool size yet")
    table = pd.DataFrame({
        "statistic": fits["statistic"],
        "slope per doubling [95% CI]": [_slope_text(r) for r in fits.itertuples()],
        "pairs": fits["n"], "pool sizes": fits["pools"], "the statistic": fits["trend"]})
    lines = [f"{r.statistic} {r.trend} as the pool grows: {_slope_text(r)} per doubling "
             f"({r.n} pairs over {r.pools} pool size{'s' if r.pools != 1 else ''})"
             for r in fits.itertuples()]
    pools = sorted(set(rows["pool"]))
    text = ("Answer first: " + "; ".join(lines) + ". Per pool size ("
            + (f"{pools[0]:,} to {pools[-1]:,} images" if len(pools) > 1 else
               f"{pools[0]:,} images so far") + f", budget {100 * df['budget'].max():g}%) each "
            "statistic is paired within one seed's block on one machine; the slope regresses "
            "every pair's value on log2(pool size) (least squares, 95% t interval). "
            "Differences are in points of test accuracy, ratios are the first arm's over the "
            f"second's. Blocks: {blocks_per_machine(df)}.")
    paths = _write_table(out, "scaling", pd.concat([rows, fits.assign(kind="slope")]), table,
                         text, n_text=1)
    drawn = rows.assign(panel=[("difference (points)" if u == "points" else "ratio")
                               for u in rows["unit"]],
                        label=rows["id"], null=[0.0 if u == "points" else 1.0 for u in rows["unit"]])
    paths.update(zip(("pdf", "png"), _plots().plot_scaling(
        drawn, out / "scaling", title="PruneFuse against dense AL as the pool grows")))
    paths["caption"] = write_caption(out, "scaling", "Pool size", text, df, profile=profile,
                                     setting=_setting(df),
                                     files=list(paths.values()))
    return paths


def budget_rows(df: pd.DataFrame, study: Study = STUDY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The budgets artefact's data: per arm and budget of ``study.budget_groups`` (one pool
    size), the test accuracy over seeds (n, mean, sd, 95% interval), and the judged rows of
    ``study.budget_comparisons`` at those budgets (:func:`judge_rows`)."""
    cells = df[df["group"].isin(study.budget_groups)]
    acc = []
    for (pool, budget, role), cell in cells.groupby(["pool", "budget", "role"], sort=True):
        mean, sd, half, n = stats.mean_ci(cell["final_pct"])
        group = cell["group"].iloc[0]
        acc.append({"pool": int(pool), "budget_pct": round(100 * budget, 6), "role": role,
                    "label": study.label(group, role), "n": n, "mean": mean, "sd": sd,
                    "low": mean - half if n > 1 else math.nan,
                    "high": mean + half if n > 1 else math.nan})
    judged = judge_rows(df, study)
    if not judged.empty:
        judged = judged[judged["id"].isin(study.budget_comparisons)
                        & judged["group"].isin(study.budget_groups)]
    return pd.DataFrame(acc), judged


@artefact("study_budgets", files=("csv", "md", "tex", "pdf", "png"),
          runs=lambda p: p.study_runs(), params=_study_params, needs="study", partial=True)
def study_budgets(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                  dataset: str = "fashion-mnist", overrides: dict | None = None) -> Paths:
    """The main comparison at every budget: each arm's test accuracy and the paired
    differences of the budget comparisons (PruneFuse under both readings against dense AL,
    PruneFuse and dense AL against random), against the budget."""
    from .registry import _plots

    out = Path(out)
    df = study_rows(records, profile=profile, dataset=dataset, overrides=overrides)
    acc, judged = budget_rows(df) if not df.empty else (pd.DataFrame(), pd.DataFrame())
    if acc.empty:
        raise _none_yet(records, profile, "no finished run of the main comparison at any "
                        "budget yet")
    order = list(dict.fromkeys(acc["label"]))
    cells = {(r.label, r.budget_pct): f"{stats.mean_sd_text(r.mean, r.sd, r.n)} (n={r.n})"
             for r in acc.itertuples()}
    shown = pd.DataFrame({"arm": order, **{
        f"{b:g}%": [cells.get((label, b), "") for label in order]
        for b in sorted(set(acc["budget_pct"]))}})
    lines = [f"{r.comparison.split(',')[0]} at {r.budget}: "
             f"{_fmt(r.mean, r.low, r.high, r.unit)} ({r.family_verdict} family-wise)"
             for r in judged.itertuples()] if not judged.empty else []
    text = (("Answer first: " + "; ".join(lines) + ". ") if lines else "") + (
        "Final-epoch test accuracy (%) of each arm's target (the authors' reading too, whose "
        "best epoch, picked on the test set, study_arms shows), mean ± sd over seeds (n), at "
        "every budget of the main comparison: 30% from the main blocks, 10% and 20% from the blocks that "
        "retrain each arm's target on its own selection at those budgets. The figure draws "
        "the means with their 95% intervals and each paired difference with its 95% paired "
        "t interval; every pair is one seed's block on one machine. Blocks: "
        f"{blocks_per_machine(df[df['group'].isin(STUDY.budget_groups)])}.")
    data = pd.concat([acc.assign(kind="accuracy"),
                      judged.assign(kind="paired difference")], ignore_index=True)
    paths = _write_table(out, "study_budgets", data, shown, text, n_text=1)
    diffs = judged.assign(label=[c.split(",")[0] for c in judged["comparison"]],
                          budget_pct=[float(b.rstrip("%")) for b in judged["budget"]]) \
        if not judged.empty else pd.DataFrame(columns=["label", "budget_pct", "mean", "low",
                                                        "high"])
    paths.update(zip(("pdf", "png"), _plots().plot_budgets(
        acc, diffs, out / "study_budgets", title="The main comparison at every budget")))
    paths["caption"] = write_caption(out, "study_budgets", "The main comparison at every "
                                     "budget", text, df, profile=profile,
                                     setting=_setting(df), files=list(paths.values()))
    return paths

