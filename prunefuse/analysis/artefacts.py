"""The paper's tables and figures (docs/method.md, "Step 5: report"), built from run records
only (they never train), and the registry that declares each of them once.

Each builder reads the finished runs under ``records`` (:func:`prunefuse.runs.results_table`),
keeps the ones its artefact needs (filtered by their config), and writes into ``out``: the
data behind the artefact as CSV (one row per run and budget, accuracies in %, costs in MACs
and seconds), the figure as PDF and PNG or the table as Markdown and LaTeX, and
``<name>.caption.md`` naming the profile, dataset, hardware and dates. Means are over seeds,
spreads are sample standard deviations, and n is stated in every caption and figure title.

Adding an artefact: write its builder here under an :func:`artefact` declaration (the files
it writes, the runs it needs, its notebook's parameters from the grid), and a notebook
``notebooks/<builder name>.ipynb`` that calls it. ``prunefuse reproduce`` plans its
runs and executes its notebook, ``--only NAME`` selects it, and the notebook tests check it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..flops import TRAIN_FACTOR
from ..run import stats
from ..run.records import PER_EPOCH, PROVENANCE, VARIANTS, pf_label, results_table
from .comparisons import DENSE, RANDOM, arm_of, fusion_arm, pf_arm, v2_arm
from .registry import (  # noqa: F401 (ARTEFACTS, Artefact: the registry, public here too)
    ARTEFACTS,
    Artefact,
    Paths,
    _at_budget,
    _baseline,
    _figure_files,
    _fusion_readings,
    _isin,
    _main_runs,
    _pf_runs,
    _pf_targets,
    _plots,
    _prunefuse,
    _require,
    _write_table,
    artefact,
    diff_note,
    whole_run,
    write_caption,
)

# -- the artefacts -----------------------------------------------------------------------------

def _in_method_order(df: pd.DataFrame, by: list[str], order: list[str]) -> pd.DataFrame:
    """``df`` sorted by ``by``, then by ``method`` in the given ``order`` (not alphabetically)."""
    return df.sort_values(by + ["method"],
                          key=lambda c: c.map(order.index) if c.name == "method" else c)


def _with_diffs(df: pd.DataFrame, by: list[str], baseline: str = DENSE) -> pd.DataFrame:
    """Per ``by`` group and method: accuracy mean ± sd with n, and the paired difference
    against ``baseline`` (same seed) with its 95% t interval."""
    diffs = stats.paired_differences(df, by=by, method="method", baseline=baseline)
    rows = []
    for keys, cell in df.groupby(by + ["method"], sort=False):
        key = dict(zip(by + ["method"], keys))
        d = diffs
        for k, v in key.items():
            d = d[d[k] == v]
        rows.append({**key, "acc": stats.format_mean_sd(cell["acc_pct"]),
                     "n": int(cell["seed"].nunique()),
                     "diff": "" if key["method"] == baseline
                     else (stats.format_diff(d.iloc[0]) if len(d) else "—")})
    return pd.DataFrame(rows)


@artefact("main_table", files=("csv", "md", "tex"),
          runs=lambda p: p.main_runs(p.grid["datasets"], p.grid["scores"]),
          params=lambda p: {"datasets": p.grid["datasets"], "arch": p.arch,
                            "scores": p.grid["scores"], "ratios": p.grid["ratios"]})
def main_table(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
               datasets: list[str], arch: str, scores: list[str],
               ratios: list[float]) -> Paths:
    """The main accuracy table: dataset x selection score x budget x method, with each method's
    paired difference against dense AL (the target itself selects; random selection for the
    random score) and each selector's parameters and MACs per image.
    SVP and random-selection runs of the same grid are shown beside them when present.

    Returns the paths of ``main_table.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "main_table"
    df = results_table(records)
    if not df.empty:
        df = df[df["dataset"].isin(datasets) & (df["arch"] == arch) & _main_runs(df)]
        pf = _prunefuse(df) & _isin(df["ratio"], ratios)
        own = (pf | _baseline(df) | (df["selector"] == "svp")) & df["score"].isin(scores)
        df = df[own | (df["selector"] == "random")].copy()
    _require(df, "the main table", records, datasets=datasets, arch=arch, scores=scores)
    order = ([DENSE] + sorted(m for m in set(df["method"]) if m.startswith("SVP"))
             + [RANDOM] + [pf_label(r) for r in ratios])
    rows = []
    for dataset in [d for d in datasets if d in set(df["dataset"])]:
        d = df[df["dataset"] == dataset]
        for score in scores:
            if score == "random":  # the baseline of the random score is random selection
                cell = d[d["selector"] == "random"]
            else:  # random-selection runs appear in every score's block as "random"
                cell = d[(d["score"] == score) | (d["selector"] == "random")]
            if cell.empty or (score != "random" and score not in set(cell["score"])):
                continue
            cell = cell.assign(method=pd.Categorical(cell["method"], order)).sort_values(
                ["budget_pct", "method"])
            table = _with_diffs(cell.assign(method=cell["method"].astype(str)), ["budget_pct"],
                                baseline=RANDOM if score == "random" else DENSE)
            for r in table.itertuples():
                sel = cell[cell["method"].astype(str) == r.method]
                params, macs = sel["selector_params"].dropna(), sel["selector_macs_per_sample"].dropna()
                rows.append({
                    "dataset": dataset, "score": score, "budget (% of pool)": f"{r.budget_pct:g}",
                    "method": r.method, "test acc (%)": r.acc, "n": r.n,
                    "Δ (pp) [95% CI]": r.diff,
                    "selector params (M)": f"{params.iloc[0] / 1e6:.3f}" if len(params) else "—",
                    "selector MACs / image (M)": f"{macs.iloc[0] / 1e6:.2f}" if len(macs) else "—",
                })
    table = pd.DataFrame(rows)
    n = _plots().seeds_note(df, ["dataset", "score", "budget", "method"])
    caption = (f"Test accuracy (%) of the {arch} target, final epoch, {_plots().over_seeds(n)}. "
               + diff_note("dense AL (random selection in the random score's block)",
                           "same seed: the same dense init, initial labels and pool")
               + " dense AL = the dense target selects; "
               "SVP = the proxy selects, target from scratch; random = random selection, "
               "target from scratch; PruneFuse = pruned selector, fused target trained with KD.")
    paths = _write_table(out, name, df.drop(columns=PER_EPOCH), table, caption, 4)
    paths["caption"] = write_caption(
        out, name, "Main table: target accuracy by dataset, selection score and budget",
        caption + " Selector parameters and MACs per image: fvcore, one multiply-add = one "
        "MAC.", df, profile=profile,
        setting=f"{', '.join(sorted(set(df['dataset'])))}; target {arch}; scores "
                f"{', '.join(sorted(set(df['score'])))}",
        files=list(paths.values()))
    return paths


@artefact("figure3", files=("pdf", "png", "csv"), runs=lambda p: p.main_runs(),
          params=lambda p: {**p.shown, "ratios": p.grid["ratios"],
                            "budgets": p.grid["figure3_budgets"]})
def figure3_selection_macs(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                           dataset: str, arch: str, score: str, ratios: list[float],
                           budgets: list[float]) -> Paths:
    """Figure 3: total selection MACs of PruneFuse vs baseline AL at the given budgets (fractions
    of the pool), one panel per pruning ratio p.

    Returns the paths of ``figure3_selection_macs.{pdf,png,csv,caption.md}``.
    """
    out, name = Path(out), "figure3_selection_macs"
    df = results_table(records)
    if not df.empty:
        df = df[(df["dataset"] == dataset) & (df["arch"] == arch) & (df["score"] == score)
                & _isin(df["budget"], budgets)]
        base = df[_baseline(df)]
        pf = df[_prunefuse(df) & _isin(df["ratio"], ratios)]
        df = pd.concat([pf.assign(method="PruneFuse")]
                       + [base.assign(method=DENSE, ratio=p) for p in sorted(pf["ratio"].unique())])
    _require(df, "Figure 3", records, dataset=dataset, arch=arch, score=score, budgets=budgets)
    df["gmacs"] = df["selection_macs"] / 1e9
    drawn = _plots().plot_selection_macs(df, out / name,
                                         title=f"Total selection cost, {dataset}, {arch}, {score}")
    g = df.groupby(["ratio", "budget_pct", "method"])["selection_macs"].mean().unstack("method")
    ratios_seen = (g[DENSE] / g["PruneFuse"]).rename("dense_over_prunefuse")
    paths = _figure_files(out, name, drawn, df.merge(ratios_seen.reset_index(),
                                                     on=["ratio", "budget_pct"], how="left"))
    paths["caption"] = write_caption(
        out, name, "Figure 3: total selection cost, PruneFuse vs dense AL",
        "Cumulative selection cost in GMACs until the labeled set reaches each budget (% of "
        f"pool): the selectors trained on the earlier labeled sets ({TRAIN_FACTOR} MACs per "
        "image-epoch) and "
        "their pool passes (1 MAC per image); fvcore MACs. The same rule for both methods "
        "(docs/method.md, Cost accounting): PruneFuse's selector trained on a budget's own "
        "labeled set, its fusion source and KD teacher, is not selection cost and is not "
        "shown, so at equal rounds the dense AL/PruneFuse ratio equals the ratio of their "
        "selectors' per-image MACs (column dense_over_prunefuse of the CSV). One panel per "
        "pruning ratio p. dense AL: the dense target selects. Bars: mean ± sd over seeds "
        f"({_plots().seeds_note(df, ['ratio', 'method', 'budget'])}).",
        df, profile=profile, setting=f"{dataset}; target {arch}; score {score}",
        files=list(paths.values()))
    return paths


@artefact("figure4", files=("pdf", "png", "csv"),
          runs=lambda p: p.variant_runs(p.grid["figure4_ratios"], every_epoch=True),
          params=lambda p: {**p.shown, "ratios": p.grid["figure4_ratios"]})
def figure4_epochs(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                   dataset: str, arch: str, score: str, ratios: list[float],
                   budget: float | None = None) -> Paths:
    """Figure 4: target test accuracy over epochs, fused vs non-fused target trained on the
    pruned selector's selection, one panel per p; at ``budget`` (default: the largest).

    Returns the paths of ``figure4_epochs.{pdf,png,csv,caption.md}``.
    """
    out, name = Path(out), "figure4_epochs"
    df = results_table(records)
    if not df.empty:
        df = df[_pf_targets(df, dataset, arch, score, ratios)]
        df, budget = _at_budget(df, budget)
    _require(df, "Figure 4", records, dataset=dataset, arch=arch, score=score, ratios=ratios)
    # Only runs evaluated after every epoch draw a curve (eval_every=1 in the grid). A run that
    # another artefact's batch made first (eval_every is not part of the run id) has none: the
    # caption names the seeds left out, so a reader knows why n is smaller than the ablation's.
    curved = pd.Series([len(c) > 1 or len(c) == e for c, e in zip(df["epoch_acc_pct"],
                                                                  df["epochs_trained"])],
                       index=df.index, dtype=bool)
    uncurved = df[~curved].groupby("variant")["seed"].apply(sorted)
    df = df[curved]
    _require(df, "Figure 4 (runs tested after every epoch)", records, dataset=dataset,
             ratios=ratios)
    curves = df[["run_id", "ratio", "variant", "seed", "budget_pct", "epoch_acc_pct"]].explode(
        "epoch_acc_pct")
    curves["epoch"] = [int(p[0]) for p in curves["epoch_acc_pct"]]
    curves["acc_pct"] = [float(p[1]) for p in curves["epoch_acc_pct"]]
    curves = curves.drop(columns=["epoch_acc_pct"])
    drawn = _plots().plot_epoch_curves(
        curves, out / name,
        title=f"Target on the pruned selector's selection, {100 * budget:g}% of pool")
    paths = _figure_files(out, name, drawn, curves)
    paths["caption"] = write_caption(
        out, name, "Figure 4: fused vs non-fused target, test accuracy over epochs",
        f"Test accuracy (%) of the {arch} target after each training epoch on the labeled set "
        f"({100 * budget:g}% of pool) selected by the pruned network; fused = initialized by "
        "fusing the trained pruned network into the dense initialization, scratch = the dense "
        "initialization alone; + KD = distilled from the trained pruned network. Lines: mean; "
        f"bands: 95% Student-t interval over seeds, drawn for a variant with at least "
        f"{_plots().MIN_BAND}; thin lines: each seed, when there are at most "
        f"{_plots().SEED_LINES} ({_plots().seeds_note(curves, ['ratio', 'variant', 'epoch'])})."
        + (" Not drawn, since they were tested only at the end of training: "
           + "; ".join(f"{v}, seeds {_plots().seed_list(s)}" for v, s in uncurved.items())
           + "." if len(uncurved) else ""),
        df, profile=profile, setting=f"{dataset}; target {arch}; score {score}",
        files=list(paths.values()))
    return paths


@artefact("figure5", files=("pdf", "png", "csv"), runs=lambda p: p.selector_size_runs(),
          params=lambda p: {"dataset": p.focus, "archs": p.grid["figure5_archs"],
                            "score": p.focus_score, "ratios": p.grid["figure5_ratios"],
                            "proxy_arch": p.grid["svp_proxy"]})
def figure5_selector_size(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                          dataset: str, archs: list[str], score: str, ratios: list[float],
                          proxy_arch: str, budget: float | None = None) -> Paths:
    """Figure 5: target accuracy vs selector size, PruneFuse (targets ``archs`` pruned at
    ``ratios``) vs SVP (``proxy_arch`` selecting for the same targets), at ``budget``
    (default: the largest).

    Returns the paths of ``figure5_selector_size.{pdf,png,csv,caption.md}``.
    """
    out, name = Path(out), "figure5_selector_size"
    df = results_table(records)
    if not df.empty:
        df = df[(df["dataset"] == dataset) & df["arch"].isin(archs) & (df["score"] == score)]
        pf = df[_prunefuse(df) & _isin(df["ratio"], ratios)].assign(family="PruneFuse")
        pf["selector"] = [f"p={r:g}" for r in pf["ratio"]]
        svp = df[(df["selector"] == "svp") & (df["proxy_arch"] == proxy_arch)
                 & _main_runs(df)].assign(family="SVP", selector=proxy_arch)
        df = pd.concat([pf, svp])
        df, budget = _at_budget(df, budget)
    _require(df, "Figure 5", records, dataset=dataset, archs=archs, score=score)
    df = df.rename(columns={"arch": "target"})
    df["selector_mparams"] = df["selector_params"] / 1e6
    drawn = _plots().plot_selector_size(df, out / name, title=f"{dataset}, {100 * budget:g}% of pool")
    paths = _figure_files(out, name, drawn, df)
    paths["caption"] = write_caption(
        out, name, "Figure 5: accuracy vs selector size, PruneFuse vs SVP",
        f"Final test accuracy (%) of each target at {100 * budget:g}% of the pool against the "
        "parameters of the network that selected its data: PruneFuse prunes the target at "
        f"p = {', '.join(f'{r:g}' for r in ratios)} (fused target, KD); SVP selects with an "
        f"independent {proxy_arch} and trains the target from scratch. Error bars: 95% "
        "Student-t interval of the mean over seeds "
        f"({_plots().seeds_note(df, ['family', 'target', 'selector'])}).",
        df, profile=profile, setting=f"{dataset}; targets {', '.join(archs)}; score {score}",
        files=list(paths.values()))
    return paths


@artefact("ablation", files=("csv", "md", "tex", "pdf", "png"),
          runs=lambda p: p.variant_runs(p.ablation_ratios, scratch_kd=True),
          params=lambda p: {**p.shown, "ratios": p.ablation_ratios})
def ablation(records: str | os.PathLike, out: str | os.PathLike, *, profile: str, dataset: str,
             arch: str, score: str, ratios: list[float]) -> Paths:
    """The fusion / KD ablation across p: selection by the pruned network, then the target from
    scratch, scratch + KD, fused without KD, or fused + KD (PruneFuse). Table at every budget,
    figure at the largest.

    Returns the paths of ``ablation.{csv,md,tex,pdf,png,caption.md}``.
    """
    out, name = Path(out), "ablation"
    df = results_table(records)
    if not df.empty:
        df = df[_pf_targets(df, dataset, arch, score, ratios)]
    _require(df, "the ablation", records, dataset=dataset, arch=arch, score=score, ratios=ratios)
    pf = "fused + KD (PruneFuse)"
    order = [v for v in VARIANTS if v in set(df["variant"])]
    df = _in_method_order(df.assign(method=df["variant"]), ["ratio", "budget_pct"], order)
    table = _with_diffs(df, ["ratio", "budget_pct"], baseline=pf)
    rows = [{"p": f"{r.ratio:g}", "budget (% of pool)": f"{r.budget_pct:g}", "target": r.method,
             "test acc (%)": r.acc, "n": r.n, f"Δ vs {pf} (pp) [95% CI]": r.diff}
            for r in table.itertuples()]
    n = _plots().seeds_note(df, ["ratio", "budget", "variant"])
    caption = (f"Test accuracy (%) of the {arch} target trained on the pruned network's "
               f"selection, by target initialization and KD; {_plots().over_seeds(n)}. "
               + diff_note(pf, "same seed and selection"))
    paths = _write_table(out, name, df.drop(columns=[*PER_EPOCH, "method"]),
                         pd.DataFrame(rows), caption, 3)
    last = df[df["budget"] == df["budget"].max()]
    paths.update(zip(("pdf", "png"), _plots().plot_ablation(
        last, out / name, title=f"Fusion / KD ablation, {last['budget_pct'].iloc[0]:g}% of pool")))
    paths["caption"] = write_caption(
        out, name, "Ablation: fusion and knowledge distillation across pruning ratios",
        caption + " The figure shows the largest budget, on the seeds every target has there "
        "(the pairs of the differences), each seed a dot.", df, profile=profile,
        setting=f"{dataset}; target {arch}; score {score}", files=list(paths.values()))
    return paths


@artefact("cost", files=("csv", "md", "tex", "pdf", "png"), runs=lambda p: p.main_runs(),
          params=lambda p: {**p.shown, "ratios": p.grid["ratios"]})
def cost_accuracy(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                  dataset: str, arch: str, score: str, ratios: list[float]) -> Paths:
    """Cost vs accuracy, wall-clock beside MACs: cumulative selection cost (GMACs and seconds)
    against target accuracy per budget; table with the time to reach the baseline's accuracy.

    Returns the paths of ``cost_accuracy.{csv,md,tex,pdf,png,caption.md}``.
    """
    out, name = Path(out), "cost_accuracy"
    df = results_table(records)
    if not df.empty:
        df = df[(df["dataset"] == dataset) & (df["arch"] == arch) & (df["score"] == score)]
        pf = _prunefuse(df) & _isin(df["ratio"], ratios)
        df = df[pf | _baseline(df)].copy()
    _require(df, "the cost figure", records, dataset=dataset, arch=arch, score=score)
    df["method"] = df["method"].where(df["selector"] == "prunefuse", DENSE)
    # Only the seeds that ran every budget: the main comparison's extra seeds train their
    # target at the largest budget only, and would make a line average other seeds (and
    # other machines' seconds) at its last point than at the others.
    every = df.groupby("method")["budget"].transform("nunique")
    df = df[df.groupby(["method", "seed"])["budget"].transform("nunique") == every]
    # Everything to reach a model at budget b: selection(b) + fusion(b) + target training(b).
    df["gmacs"], df["seconds"] = whole_run(df, "macs") / 1e9, whole_run(df, "seconds")
    g = df.groupby(["method", "budget_pct"], sort=True).agg(
        acc=("acc_pct", "mean"), sd=("acc_pct", "std"), n=("seed", "nunique"),
        sel_gmacs=("selection_macs", lambda x: x.mean() / 1e9),
        sel_s=("selection_seconds", "median"),
        fus_gmacs=("fusion_macs", lambda x: x.mean() / 1e9), fus_s=("fusion_seconds", "median"),
        tgt_gmacs=("target_training_macs", lambda x: x.mean() / 1e9),
        tgt_s=("target_training_seconds", "median"), all_gmacs=("gmacs", "mean"),
        all_s=("seconds", "median")).reset_index()
    base = g[g["method"] == DENSE]
    goal = base.loc[base["budget_pct"].idxmax(), "acc"] if not base.empty else None
    rows = []
    for r in g.itertuples():
        reached = g[(g["method"] == r.method) & (g["acc"] >= goal)] if goal is not None else g[:0]
        first = reached.iloc[0] if not reached.empty else None
        rows.append({
            "method": r.method, "budget (% of pool)": f"{r.budget_pct:g}",
            "test acc (%)": f"{stats.mean_sd_text(r.acc, r.sd, r.n)} (n={r.n})",
            "selection (GMACs)": f"{r.sel_gmacs:.3g}", "selection (s)": f"{r.sel_s:.1f}",
            "fusion (GMACs)": f"{r.fus_gmacs:.3g}", "fusion (s)": f"{r.fus_s:.1f}",
            "target training (GMACs)": f"{r.tgt_gmacs:.3g}", "target training (s)": f"{r.tgt_s:.1f}",
            "total (GMACs)": f"{r.all_gmacs:.3g}", "total (s)": f"{r.all_s:.1f}",
            "to baseline acc (s)": "not reached" if first is None else f"{first['all_s']:.1f}",
        })
    caption = ("Everything it costs to reach a model at each budget, in MACs (fvcore: one "
               f"multiply-add = one MAC; training = {TRAIN_FACTOR} MACs per image-epoch, a forward "
               "= 1) and "
               "wall-clock seconds, beside the target's accuracy (table: mean ± sd over seeds; "
               "figure: mean with 95% Student-t interval; "
               f"{_plots().seeds_note(df, ['method', 'budget'])}): selection (the selectors "
               "trained on the earlier labeled sets and their pool passes; the same rule for "
               "every method), fusion (PruneFuse only: its selector trained on this budget's "
               "labeled set, the fusion source and KD teacher, and the teacher's forwards; its "
               "seconds are the source's training, the teacher's run inside target training) "
               "and target training at this budget. Test evaluation is excluded. 'to baseline "
               "acc': total seconds at the first budget whose mean accuracy reaches the "
               "baseline's at its largest budget. The figure plots the total. MACs are means over "
               "seeds, seconds medians (a run slowed by other work on its machine moves a "
               "median less than a mean). Only seeds that ran every budget are used, so each "
               "line has the same seeds at every point.")
    paths = _write_table(out, name, df.drop(columns=PER_EPOCH), pd.DataFrame(rows),
                         caption, 2)
    paths.update(zip(("pdf", "png"), _plots().plot_cost_accuracy(
        df, out / name, title=f"Cost to reach a model vs accuracy, {dataset}, {arch}")))
    paths["caption"] = write_caption(
        out, name, "Cost vs accuracy: MACs and wall-clock to reach each model", caption, df,
        profile=profile, setting=f"{dataset}; target {arch}; score {score}",
        files=list(paths.values()))
    return paths


@artefact("agreement", files=("csv", "md", "tex", "pdf", "png"), runs=lambda p: p.main_runs(),
          params=lambda p: {**p.shown, "ratios": p.grid["ratios"]})
def agreement(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
              dataset: str, arch: str, score: str, ratios: list[float]) -> Paths:
    """Selector agreement: each PruneFuse run against the dense-AL run of its seed, Jaccard of
    the selections and Spearman of the pool scores per p and round (docs/method.md, "Step 2:
    select"), from the recorded pool scores (:func:`prunefuse.explore.agreement_table`).

    Returns the paths of ``agreement.{csv,md,tex,pdf,png,caption.md}``.
    """
    from . import explore

    out, name = Path(out), "agreement"
    df = explore.agreement_table(records, dataset=dataset, arch=arch, score=score, ratios=ratios)
    _require(df, "the agreement artefact (PruneFuse and dense AL of one seed)",
             records, dataset=dataset, arch=arch, score=score, ratios=ratios)
    rows = []
    for (p, budget), cell in df.groupby(["ratio", "budget_pct"], sort=True):
        rows.append({"p": f"{p:g}", "budget (% of pool)": f"{budget:g}",
                     "Jaccard": f"{stats.format_mean_sd(cell['jaccard'])} (n={len(cell)})",
                     "chance Jaccard": f"{cell['chance_jaccard'].mean():.2f}",
                     "Jaccard − chance [95% CI]": stats.format_mean_ci(
                         cell["jaccard"] - cell["chance_jaccard"]),
                     "Spearman": f"{stats.format_mean_sd(cell['spearman'])} "
                                 f"(n={cell['spearman'].notna().sum()})",
                     "Spearman [95% CI]": stats.format_mean_ci(cell["spearman"])})
    n = _plots().seeds_note(df, ["ratio", "round"])
    caption = (f"Agreement of the pruned selector with the dense one ({arch} target, score "
               f"{score}), per pruning ratio p and round (budget reached): Jaccard overlap of "
               "the samples each selects in the round, with two random draws of that many "
               "from that pool as chance level (about k/(2N-k)), and Spearman rank correlation "
               "of their scores on the images both still had in the pool (float16 scores, "
               f"ties at average rank). Mean ± sd over seeds ({n}), and the mean with its "
               "95% Student-t interval over seeds of the Jaccard's excess over chance and of "
               "the Spearman correlation (* where the interval excludes zero); each PruneFuse "
               "run is "
               "compared with the dense-AL run of the same seed. Round 1 shares the initial "
               "labeled set; later rounds start from labeled sets that already differ.")
    paths = _write_table(out, name, df, pd.DataFrame(rows), caption, 2)
    paths.update(zip(("pdf", "png"), explore.plot_agreement_by_ratio(
        df, out / name, title=f"Pruned vs dense selector, {dataset}, {arch}")))
    keys = list(PROVENANCE)
    involved = pd.concat([df[keys], df[[f"dense_{k}" for k in keys]].set_axis(keys, axis=1)])
    paths["caption"] = write_caption(
        out, name, "Selector agreement: does the pruned network choose like the dense one?",
        caption, involved, profile=profile, setting=f"{dataset}; target {arch}; score {score}",
        files=list(paths.values()))
    return paths


# Artefact name -> builder; the notebooks call these, ``prunefuse.reproduce`` plans for them.
def _variant_table(df: pd.DataFrame, out: Path, name: str, *, order: list[str], caption: str,
                   title: str, profile: str, setting: str) -> Paths:
    """Accuracy per budget and method (in ``order``) with n and the paired difference against
    the first method; the tables of :func:`table2` and :func:`fusion_variants`."""
    baseline = order[0]
    df = _in_method_order(df, ["budget_pct"], order)
    table = _with_diffs(df, ["budget_pct"], baseline=baseline)
    macs = df.groupby(["budget_pct", "method"])["selection_macs"].mean()
    rows = [{"budget (% of pool)": f"{r.budget_pct:g}", "method": r.method,
             "test acc (%)": r.acc, "n": r.n, f"Δ vs {baseline} (pp) [95% CI]": r.diff,
             "selection GMACs": f"{macs[(r.budget_pct, r.method)] / 1e9:.3g}"}
            for r in table.itertuples()]
    paths = _write_table(out, name, df.drop(columns=["epoch_acc_pct", "method"]),
                         pd.DataFrame(rows), caption, 2)
    paths["caption"] = write_caption(out, name, title, caption, df, profile=profile,
                                     setting=setting, files=list(paths.values()))
    return paths


@artefact("table2", files=("csv", "md", "tex"), runs=lambda p: p.v2_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["variants"]["ratio"],
                            "t_syncs": p.grid["variants"]["t_syncs"]},
          needs="variants", optional=True)
def table2(records: str | os.PathLike, out: str | os.PathLike, *, profile: str, dataset: str,
           arch: str, score: str, ratio: float, t_syncs: list[int]) -> Paths:
    """Table 2: PruneFuse V1 against V2 (our interpretation, docs/method.md, "Cost
    accounting") at each synchronisation period T_sync, per budget: accuracy mean ± sd, n,
    the paired difference against V1 (same seed) and the cumulative selection MACs, which
    for V2 include the dense trainings it selects with.

    Returns the paths of ``table2.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "table2"
    df = results_table(records)
    if not df.empty:
        df = df[_pf_runs(df, dataset, arch, score, ratio, ("t_sync",)) & _main_runs(df)
                & df["t_sync"].isin([0, *t_syncs])].copy()
    _require(df, "Table 2", records, dataset=dataset, arch=arch, score=score, ratio=ratio,
             t_syncs=t_syncs)
    arms = [pf_arm(ratio), *[v2_arm(ratio, t) for t in t_syncs]]
    df["method"] = arm_of(df, arms)
    order = [a.label for a in arms if a.label in set(df["method"])]
    derives = sorted(set(df.loc[df["t_sync"] > 0, "v2_derive"]))
    derive = ", ".join(derives)
    if len(derives) > 1:  # two derivations of one arm: rows apart, each named
        v2 = df["t_sync"] > 0
        df.loc[v2, "method"] = df.loc[v2, "method"] + " (" + df.loc[v2, "v2_derive"] + ")"
        order = [m for a in order for m in sorted(set(df["method"])) if m.startswith(a)]
    n = _plots().seeds_note(df, ["budget", "method"])
    caption = (f"Test accuracy (%) of the fused {arch} target, PruneFuse V1 against V2 at "
               f"p={ratio:g}; {_plots().over_seeds(n)}. V2 is our interpretation: every "
               "T_sync rounds the target trained at that budget yields the next selector "
               "(gather: the same kept indices; reprune: a new L2 pruning; these runs: "
               f"{derive or 'none'}), and that training is charged to selection. "
               f"At {df['budget_pct'].min():g}% of the pool no "
               "synchronisation has happened yet, so V2 selects and trains exactly as V1 there: "
               "any Δ at that budget is no V2 effect; it can only come from runs made on "
               "different CPUs (float rounding differs between them), a noise the later Δs "
               "carry too. "
               + diff_note(f"V1 ({pf_label(ratio)})"))
    return _variant_table(df, out, name, order=order, caption=caption,
                          title="Table 2: PruneFuse V1 vs V2 by synchronisation period",
                          profile=profile, setting=f"{dataset}; target {arch}; score {score}")


@artefact("fusion_variants", files=("csv", "md", "tex"), runs=lambda p: p.fusion_runs(),
          params=lambda p: {**p.shown, "ratio": p.grid["variants"]["ratio"],
                            "fusions": p.grid["variants"]["fusions"]},
          needs="variants", optional=True)
def fusion_variants(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                    dataset: str, arch: str, score: str, ratio: float,
                    fusions: list[str]) -> Paths:
    """The fusion ablation: the same selection, the target initialised by each reading of
    fusion (:func:`prunefuse.fuse.fuse_variant`: ``indices`` is ours), per budget, with the
    paired difference against ours.

    Returns the paths of ``fusion_variants.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "fusion_variants"
    df = results_table(records)
    if not df.empty:
        df = df[_fusion_readings(df, dataset, arch, score, ratio, fusions)].copy()
        # only the budgets every variant was trained at
        common = df.groupby("fusion")["budget_pct"].agg(set)
        budgets = set.intersection(*common) if len(common) else set()
        df = df[df["budget_pct"].isin(budgets)]
    _require(df, "the fusion variants", records, dataset=dataset, arch=arch, score=score,
             ratio=ratio, fusions=fusions)
    arms = [pf_arm(ratio), *[fusion_arm(ratio, f) for f in fusions]]
    df["method"] = arm_of(df, arms)
    n = _plots().seeds_note(df, ["budget", "method"])
    caption = (f"Test accuracy (%) of the fused {arch} target (p={ratio:g}, KD) by the reading "
               f"of fusion, on the same selection; {_plots().over_seeds(n)}. "
               f"{pf_label(ratio)} fuses by ours, 'indices': "
               "every trained tensor at its kept indices into theta_0; fresh: the same into a "
               "fresh init; conv_only: conv weights only, BN and classifier keep theta_0; fork: "
               "conv weights at [::2, ::2] when both widths are halved, else the leading corner, "
               f"into a fresh Xavier net. " + diff_note(pf_label(ratio)))
    return _variant_table(df, out, name, order=[a.label for a in arms], caption=caption,
                          title="Ablation: readings of fusion", profile=profile,
                          setting=f"{dataset}; target {arch}; score {score}")


@artefact("extended", files=("csv", "md", "tex"), runs=lambda p: p.extended_runs(),
          params=lambda p: {"blocks": p.extended_blocks(), "score": p.focus_score,
                            "ratios": p.grid["extended"]["ratios"]},
          needs="extended", optional=True)
def extended_table(records: str | os.PathLike, out: str | os.PathLike, *, profile: str,
                   blocks: list[list[str]], score: str, ratios: list[float]) -> Paths:
    """The main table's comparison beyond the default grid: one block per ``[dataset,
    target architecture]`` (Tiny ImageNet-200, the deeper targets), dense AL against PruneFuse
    at each ratio, per budget, with the paired difference against dense AL.
    Planned only with ``prunefuse reproduce --extended`` (hours of GPU per run).

    Returns the paths of ``extended_table.{csv,md,tex,caption.md}``.
    """
    out, name = Path(out), "extended_table"
    df = results_table(records)
    if not df.empty:
        pairs = pd.Series(list(zip(df["dataset"], df["arch"])), index=df.index)
        df = df[pairs.isin([tuple(b) for b in blocks]) & _main_runs(df) & (df["score"] == score)
                & (_baseline(df) | (_prunefuse(df) & _isin(df["ratio"], ratios)))].copy()
    _require(df, "the extended table", records, blocks=blocks, score=score, ratios=ratios)
    order = [DENSE] + [pf_label(r) for r in ratios]
    rows = []
    for dataset, arch in blocks:
        cell = df[(df["dataset"] == dataset) & (df["arch"] == arch)]
        if cell.empty:
            continue
        cell = _in_method_order(cell, ["budget_pct"], order)
        for r in _with_diffs(cell, ["budget_pct"]).itertuples():
            rows.append({"dataset": dataset, "target": arch,
                         "budget (% of pool)": f"{r.budget_pct:g}", "method": r.method,
                         "test acc (%)": r.acc, "n": r.n, "Δ vs dense AL (pp) [95% CI]": r.diff})
    n = _plots().seeds_note(df, ["dataset", "arch", "budget", "method"])
    caption = (f"Test accuracy (%) of each target, final epoch, score {score}, "
               f"{_plots().over_seeds(n)}. dense AL = the dense target selects; PruneFuse = the target "
               "pruned at p selects, fused target trained with KD. " + diff_note(DENSE))
    paths = _write_table(out, name, df.drop(columns=PER_EPOCH), pd.DataFrame(rows), caption, 5)
    paths["caption"] = write_caption(
        out, name, "Beyond the main table: Tiny ImageNet and deeper targets", caption, df,
        profile=profile, setting="; ".join(f"{d}, target {a}" for d, a in blocks
                                          if ((df["dataset"] == d) & (df["arch"] == a)).any()),
        files=list(paths.values()))
    return paths


# The evidence artefacts and the claims, declared in modules of their own (which import only
# the registry); imported here so that the registry is complete whatever module a caller
# imports first.
from .evidence import (  # noqa: E402, F401, I001
    authors_reading,
    convergence,
    kd_strength,
    main_comparison,
    time_to_accuracy,
)
from .claims import claims  # noqa: E402, F401
from .study import scaling, study_arms, study_budgets, study_claims  # noqa: E402, F401
