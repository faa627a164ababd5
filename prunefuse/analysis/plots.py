"""Figures from run records (never from training): one publication style, PDF + PNG, units on
every axis, mean and spread over seeds with n stated."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..run.records import SELECTOR_LABELS, VARIANTS  # noqa: E402
from ..run.stats import ci_interval, mean_ci  # noqa: E402


def CI(values) -> tuple[float, float]:
    """Bands and error bars: the 95% Student-t interval of the mean over seeds
    (:func:`prunefuse.stats.ci_interval`), clipped to the possible range of an accuracy in
    percent, [0, 100]; none at n = 1."""
    low, high = ci_interval(values)
    return max(low, 0.0), min(high, 100.0)

STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 1.1}


def setup_style() -> None:
    """Apply the package's one plotting style."""
    sns.set_theme(**STYLE)
    plt.rcParams.update({"figure.dpi": 120, "savefig.bbox": "tight", "pdf.fonttype": 42})


def save(fig, path: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``path.pdf`` (vector) and ``path.png``; returns both paths."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = [base.with_suffix(".pdf"), base.with_suffix(".png")]
    # No creation date in the PDF: a rebuild from the same records gives the same bytes, so
    # committed figures change only when what they draw does.
    fig.savefig(out[0], dpi=200, metadata={"CreationDate": None})
    fig.savefig(out[1], dpi=200)
    plt.close(fig)
    return out


def plot_accuracy_and_cost(table, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Left: target test accuracy vs labeled budget per method (mean, 95% CI over seeds).
    Right: cumulative selection cost in GMACs at the last budget, per method. Saved as
    ``path.pdf`` and ``path.png``."""
    return save(accuracy_and_cost_figure(table, title), path)


def accuracy_and_cost_figure(table, title: str = ""):
    """The figure of :func:`plot_accuracy_and_cost`, not saved. Nothing written covers data:
    the legend sits below the panels and the method names of the bar panel get their own
    space (constrained layout)."""
    setup_style()
    df = table.copy()
    df["budget_pct"] = 100 * df["budget"]
    if "acc_pct" not in df:
        df["acc_pct"] = 100 * df["final_test_acc"]
    n = int(df.groupby(["method", "budget"])["seed"].nunique().min())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    sns.lineplot(data=df, x="budget_pct", y="acc_pct", hue="method", marker="o",
                 errorbar=CI, ax=ax1)
    # Below the panel, so that the legend never covers a line.
    sns.move_legend(ax1, "upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, title=None,
                    frameon=False)
    what = "one seed, no interval" if n == 1 else f"mean, 95% CI; n={n} seeds"
    ax1.set(xlabel="labeled set (% of pool)", ylabel="target test accuracy (%)",
            title=f"accuracy ({what})")
    last = df[df["budget"] == df["budget"].max()].copy()
    last["gmacs"] = last["selection_macs"] / 1e9
    sns.barplot(data=last, x="gmacs", y="method", errorbar="sd", ax=ax2, color="C0")
    ax2.set(xlabel="total selection cost (GMACs)", ylabel="",
            title=f"selection cost at {last['budget_pct'].iloc[0]:g}% of pool")
    if title:
        fig.suptitle(title)
    return fig


# -- paper artefacts ---------------------------------------------------------------------------
# Each takes a tidy DataFrame with one row per run (seed) and draws the mean over seeds with
# its 95% Student-t interval (CI), except Figure 3's MACs, drawn with their sd.


def seeds_note(df, by: list[str]) -> str:
    """``n=3 seeds`` (or ``n=2-3 seeds`` when groups differ): the n behind every mean."""
    counts = df.groupby(by, dropna=False)["seed"].nunique()
    lo, hi = int(counts.min()), int(counts.max())
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"n={n} seed{'s' if hi != 1 else ''}"


def seed_list(seeds) -> str:
    """Seeds as sorted runs, ``0-2, 5`` for [5, 0, 1, 2], for a caption."""
    parts, run = [], []
    for s in sorted(int(x) for x in seeds):
        if run and s != run[-1] + 1:
            parts.append(run)
            run = []
        run.append(s)
    parts += [run] if run else []
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in parts)


def over_seeds(note: str) -> str:
    """``mean ± sd over seeds (n=3 seeds)`` for a caption, from :func:`seeds_note`; ``one seed,
    no sd`` when every group has one seed (the tables then show the value alone)."""
    return "one seed, no sd" if note == "n=1 seed" else f"mean ± sd over seeds ({note})"


def drawn(df, by: list[str], what: str = "mean, 95% CI") -> str:
    """What a figure draws at its n, for its title: ``one seed, no interval`` at n = 1, else
    ``what`` and :func:`seeds_note`."""
    if int(df.groupby(by, dropna=False)["seed"].nunique().max()) == 1:
        return "one seed, no interval"
    return f"{what}; {seeds_note(df, by)}"


SEED_LINES = 5  # at most this many seeds per group: a band figure also draws each seed
# A 95% Student-t band needs this many seeds to say anything: at n = 2 it is the mean +-
# 12.7 sd, wider than the range of an accuracy; below it the seeds are drawn instead.
MIN_BAND = 3


def _panels(n: int, width: float = 3.6, height: float = 3.2, sharey: bool = True):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), sharey=sharey, squeeze=False,
                             layout="constrained")
    return fig, list(axes[0])


def plot_selection_macs(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Figure 3: total selection cost, PruneFuse vs baseline, grouped by budget, one panel per p.

    Args:
        df: columns ``ratio`` (panel), ``method`` (``dense AL`` or ``PruneFuse``), ``budget_pct``,
            ``gmacs`` (cumulative selection GMACs at that budget) and ``seed``.
    """
    setup_style()
    ratios = sorted(df["ratio"].unique())
    fig, axes = _panels(len(ratios))
    order = sorted(df["budget_pct"].unique())
    for ax, p in zip(axes, ratios):
        sub = df[df["ratio"] == p]
        sns.barplot(data=sub, x="budget_pct", y="gmacs", hue="method", order=order,
                    hue_order=[SELECTOR_LABELS["dense"], "PruneFuse"], errorbar="sd", ax=ax)
        ax.set(title=f"p = {p:g}", xlabel="labeled set (% of pool)",
               ylabel="total selection cost (GMACs)")
        ax.set_xticks(range(len(order)), [f"{b:g}" for b in order])
        if ax is not axes[-1] and ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(f"{title} (mean ± sd, {seeds_note(df, ['ratio', 'method', 'budget_pct'])})")
    return save(fig, path)


def plot_epoch_curves(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Figure 4: target test accuracy after each epoch, one line per target variant, one panel
    per p: the mean, its 95% Student-t band where a variant has at least :data:`MIN_BAND`
    seeds, and each seed as a thin line when there are few.

    Args:
        df: columns ``ratio`` (panel), ``variant``, ``epoch``, ``acc_pct`` and ``seed``.
    """
    setup_style()
    ratios = sorted(df["ratio"].unique())
    fig, axes = _panels(len(ratios), width=4.2 if len(ratios) > 1 else 6.4)
    order = [v for v in VARIANTS if v in set(df["variant"])]
    for ax, p in zip(axes, ratios):
        sub = df[df["ratio"] == p]
        for k, variant in enumerate(order):
            v = sub[sub["variant"] == variant]
            if v.empty:
                continue
            cells = [(e, *mean_ci(c["acc_pct"])) for e, c in v.groupby("epoch", sort=True)]
            ax.plot([c[0] for c in cells], [c[1] for c in cells], color=f"C{k}", label=variant,
                    marker="o" if len(cells) < 15 else None)
            band = [c for c in cells if c[4] >= MIN_BAND]
            if band:
                ax.fill_between([c[0] for c in band], [max(0.0, c[1] - c[3]) for c in band],
                                [min(100.0, c[1] + c[3]) for c in band], color=f"C{k}",
                                alpha=0.2, linewidth=0)
            if 1 < v.groupby("epoch")["seed"].nunique().max() <= SEED_LINES:
                for _, seed in v.groupby("seed"):
                    seed = seed.sort_values("epoch")
                    ax.plot(seed["epoch"], seed["acc_pct"], color=f"C{k}", lw=0.6, alpha=0.35)
        ax.set(title=f"p = {p:g}", xlabel="target training epoch", ylabel="test accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].legend(fontsize=8, title="variant")
    what = drawn(df, ["ratio", "variant", "epoch"],
                 f"mean, 95% CI band where n >= {MIN_BAND}, thin lines: seeds")
    fig.suptitle(f"{title} ({what})", fontsize="medium", wrap=True)
    return save(fig, path)


def plot_selector_size(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Figure 5: target accuracy vs selector size, PruneFuse vs SVP, one marker per target.

    Args:
        df: columns ``family`` (``PruneFuse`` or ``SVP``), ``selector`` (point label, e.g.
            ``p=0.5``), ``target``, ``selector_mparams`` (selector parameters, millions),
            ``acc_pct`` and ``seed``.
    """
    setup_style()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    g = df.groupby(["family", "target", "selector"], sort=True).agg(
        x=("selector_mparams", "mean"), y=("acc_pct", "mean"),
        ci=("acc_pct", lambda v: mean_ci(v)[2])).reset_index()  # 95% CI half-width; NaN: n=1
    colors = {"PruneFuse": "C0", "SVP": "C3"}
    markers = dict(zip(sorted(df["target"].unique()), "osD^v<>"))
    for r in g.itertuples():
        ax.errorbar(r.x, r.y, yerr=None if r.ci != r.ci else r.ci, fmt=markers[r.target],
                    color=colors.get(r.family, "C7"), capsize=3, ms=7)
        ax.annotate(r.selector, (r.x, r.y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=f) for f, c in colors.items()
               if f in set(g["family"])]
    if len(markers) > 1:  # one target: every mark is its, a legend entry would match none
        handles += [plt.Line2D([], [], ls="", marker=m, color="0.3", label=f"target {t}")
                    for t, m in markers.items()]
    ax.legend(handles=handles, fontsize=8)
    target = f", target {next(iter(markers))}" if len(markers) == 1 else ""
    ax.set(xlabel="selector parameters (millions)", ylabel="target test accuracy (%)",
           title=f"{title}{target} ({drawn(df, ['family', 'target', 'selector'])})")
    return save(fig, path)


def plot_ablation(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Fusion / KD ablation: target accuracy vs pruning ratio, one mark per target variant,
    side by side at each ratio so that no two error bars overlap.

    Drawn on the seeds every variant of a ratio has (the pairs the table's differences use),
    so that the marks compare like with like; each seed is a dot beside its variant's mean.

    Args:
        df: columns ``ratio``, ``variant``, ``acc_pct`` and ``seed``.
    """
    setup_style()
    paired = []
    for _, cell in df.groupby("ratio", sort=True):
        seeds = set.intersection(*(set(v["seed"]) for _, v in cell.groupby("variant")))
        paired.append(cell[cell["seed"].isin(seeds)])
    df = pd.concat(paired)
    order = [v for v in VARIANTS if v in set(df["variant"])]
    ratios = sorted(df["ratio"].unique())
    fig, ax = plt.subplots(figsize=(5.6, 3.9), layout="constrained")
    step = 0.7 / len(order)
    for k, variant in enumerate(order):
        sub = df[df["variant"] == variant]
        off = (k - (len(order) - 1) / 2) * step
        cells = [(ratios.index(r), *mean_ci(c["acc_pct"])) for r, c in sub.groupby("ratio")]
        xs = [c[0] + off for c in cells]
        means, halves = [c[1] for c in cells], [c[3] for c in cells]
        # the 95% CI, clipped to [0, 100]; no bar at n = 1 (NaN)
        yerr = None if any(h != h for h in halves) else [
            [min(h, m) for m, h in zip(means, halves)],
            [min(h, 100.0 - m) for m, h in zip(means, halves)]]
        ax.errorbar(xs, means, yerr=yerr,
                    marker="os^Dv"[k % 5], ls="-" if len(ratios) > 1 else "none", capsize=3,
                    color=f"C{k}", label=variant, zorder=3)
        ax.scatter([ratios.index(r) + off + step / 4 for r in sub["ratio"]], sub["acc_pct"],
                   s=9, color=f"C{k}", alpha=0.45, zorder=2)
    ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    ax.set_xlim(-0.5, len(ratios) - 0.5)
    ax.legend(fontsize=8)
    ax.set(xlabel="pruning ratio p (fraction of channels removed)",
           ylabel="target test accuracy (%)",
           title=f"{title} ({drawn(df, ['ratio', 'variant'], 'mean, 95% CI, dots: seeds')})")
    return save(fig, path)


def plot_cost_accuracy(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Cost vs accuracy: target accuracy against cumulative selection cost in MACs (left) and in
    wall-clock seconds (right, the median over seeds: one run slowed by other work on its
    machine moves it less than the mean); one line per method through its budgets.

    Args:
        df: columns ``method``, ``budget_pct``, ``gmacs``, ``seconds``, ``acc_pct`` and ``seed``.
    """
    setup_style()
    fig, axes = _panels(2, width=4.6, height=3.6)
    g = df.groupby(["method", "budget_pct"], sort=True).agg(
        gmacs=("gmacs", "mean"), seconds=("seconds", "median"), acc=("acc_pct", "mean"),
        ci=("acc_pct", lambda v: mean_ci(v)[2])).reset_index()  # 95% CI half-width; NaN: n=1
    for i, (method, sub) in enumerate(g.groupby("method", sort=True)):
        for ax, x in zip(axes, ("gmacs", "seconds")):
            ax.errorbar(sub[x], sub["acc"], yerr=sub["ci"].fillna(0.0).where(
                sub["ci"].notna(), None), marker="o", capsize=3,
                        color=f"C{i}", label=method)
    axes[0].set(xlim=(0, None), xlabel="cost to reach the model (GMACs)",
                ylabel="target test accuracy (%)")
    axes[1].set(xlim=(0, None), xlabel="cost to reach the model (wall-clock s, median)")
    axes[1].legend(fontsize=8)
    what = drawn(df, ['method', 'budget_pct'], "accuracy: mean, 95% CI")
    fig.suptitle(f"{title} ({what}; seconds: median; points: budgets)")
    return save(fig, path)


def plot_time_to_accuracy(df, path: str | os.PathLike, *, reference: float | None = None,
                          title: str = "") -> list[Path]:
    """Accuracy against target epochs (left) and against whole-run MACs (right, column
    ``macs``: the same on every machine, unlike seconds, which the table gives), one line per
    arm (column ``arm``): the mean with its 95% Student-t band, clipped to [0, 100], and every
    seed as a dot, so that a small n shows as what it is. ``reference``: dense AL's accuracy
    at its own epochs, drawn with the 0.5-point band below it."""
    setup_style()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained", sharey=True)
    arms = list(dict.fromkeys(df["arm"]))
    colors = dict(zip(arms, sns.color_palette(n_colors=len(arms))))
    for arm in arms:
        a = df[df["arm"] == arm]
        g = a.groupby("target_epochs")
        stats_ = [(e, *mean_ci(cell["acc_pct"]), cell["macs"].mean() / 1e12) for e, cell in g]
        xs = [s[0] for s in stats_]
        means = [s[1] for s in stats_]
        halves = [0.0 if s[3] != s[3] else s[3] for s in stats_]
        tmacs = [s[5] for s in stats_]
        low, high = int(g["seed"].nunique().min()), int(g["seed"].nunique().max())
        n = f"n={low}" if low == high else f"n={low}-{high}"
        for ax, x in ((axes[0], xs), (axes[1], tmacs)):
            ax.plot(x, means, marker="o", color=colors[arm], label=f"{arm} ({n})")
            ax.fill_between(x, [max(0.0, m - h) for m, h in zip(means, halves)],
                            [min(100.0, m + h) for m, h in zip(means, halves)],
                            color=colors[arm], alpha=0.15, linewidth=0)
        axes[0].scatter(a["target_epochs"], a["acc_pct"], s=10, color=colors[arm], alpha=0.5)
        axes[1].scatter(a["macs"] / 1e12, a["acc_pct"], s=10, color=colors[arm], alpha=0.5)
    if reference is not None:
        for ax in axes:
            ax.axhline(reference, color="black", linewidth=0.8, linestyle="--",
                       label="dense AL at its own epochs (mean)")
            ax.axhspan(reference - 0.5, reference, color="grey", alpha=0.12,
                       label="within 0.5 points of it")
    axes[0].set_xlabel("target epochs (full schedule of that length)")
    axes[1].set_xlabel("whole run (TMACs): selection + fusion + target")
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small")
    if title:
        fig.suptitle(f"{title}: mean, 95% t band, dots = seeds")
    return save(fig, path)


def plot_budgets(acc, diffs, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Two panels against the budget (% of the pool): each arm's test accuracy (``acc``:
    ``label``, ``budget_pct``, ``mean``, ``low``, ``high``) and each paired difference
    (``diffs``: ``label``, ``budget_pct``, ``mean``, ``low``, ``high``), 95% intervals, a
    dashed line at zero."""
    setup_style()
    fig, axes = _panels(2, sharey=False)
    for ax, rows, ylabel in ((axes[0], acc, "test accuracy (%)"),
                             (axes[1], diffs, "paired difference (points)")):
        lines = list(rows.groupby("label", sort=False))
        for i, (label, line) in enumerate(lines):
            line = line.sort_values("budget_pct")
            err = [line["mean"] - line["low"].fillna(line["mean"]),
                   line["high"].fillna(line["mean"]) - line["mean"]]
            dodge = 0.35 * (i - (len(lines) - 1) / 2)  # side by side, not on top of each other
            ax.errorbar(line["budget_pct"] + dodge, line["mean"], yerr=err, marker="o",
                        capsize=3, label=label)
        ax.set_xticks(sorted(set(rows["budget_pct"])))
        ax.set_xlabel("budget (% of the pool)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[1].axhline(0.0, color="grey", lw=0.8, ls="--")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_scaling(rows, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Paired statistics against pool size (``rows``: columns ``panel``, ``label``, ``pool``,
    ``mean``, ``low``, ``high``, ``null``), one panel per statistic, log2 x axis; an interval
    only where n >= 2."""
    setup_style()
    panels = list(dict.fromkeys(rows["panel"]))
    fig, axes = _panels(len(panels), sharey=False)
    for ax, panel in zip(axes, panels):
        sub = rows[rows["panel"] == panel]
        for label, line in sub.groupby("label", sort=False):
            line = line.sort_values("pool")
            err = [line["mean"] - line["low"].fillna(line["mean"]),
                   line["high"].fillna(line["mean"]) - line["mean"]]
            ax.errorbar(line["pool"], line["mean"], yerr=err, marker="o", capsize=3, label=label)
        ax.axhline(sub["null"].iloc[0], color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(sub["pool"])), [f"{p:,}" for p in sorted(set(sub["pool"]))])
        ax.set_xlabel("pool size (images)")
        ax.set_ylabel(panel)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save(fig, path)
