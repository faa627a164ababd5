"""Look inside one run, or compare two, from their records alone (they never train).

What a run selected and why: the picked images with their class and score beside a random
draw from the same pool, the labeled set's class balance per round, the pool's score
distribution with the selection cut, accuracy and the cost ledger round by round; and whether
two runs that share seed and pool choose alike (the pruned selector at each p against the
dense one): Jaccard overlap of the sets they select in each round and Spearman rank
correlation of their scores on the common pool. The scores are those recorded per round in
``selections/round_NN.scores.npz`` (docs/method.md, "Step 2: select"); each function returns
a matplotlib figure or a pandas DataFrame, so a notebook only calls and shows.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import DATASET_INFO
from ..flops import CATEGORIES
from ..run.charges import run_charges, step_charges
from ..run.config import at_our_readings, labeled_counts
from ..run.records import (
    CACHE,
    CONFIG,
    find_runs,
    load_run,
    method_label,
    provenance,
    read_config,
    read_scores,
    read_selection,
    read_selections,
    scores_path,
    selection_path,
    selection_rounds,
)
from ..run.stats import average_ranks, jaccard, spearman  # noqa: F401 - re-exported
from . import plots

plt = plots.plt

# -- reading a run -----------------------------------------------------------------------------

def _run(run) -> dict:
    """A run record (:func:`prunefuse.runs.load_run`) from a folder, or the record itself."""
    if isinstance(run, dict):
        return run
    path = Path(run)
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"run={str(path)!r}: not a run folder (no {CONFIG}); pass "
                                "a folder out/<run_id> written by run_experiment")
    return load_run(path)


def run_or_skip(run: str | os.PathLike, what: str = "compare_with") -> str:
    """``run`` when it is a run folder, else "" after one printed line saying that ``what``
    is skipped: a notebook given any run still shows it when its comparison run is absent."""
    if run and not (Path(run) / CONFIG).exists():
        print(f"{what}={str(run)!r}: not a run folder (no {CONFIG}); skipped")
        return ""
    return str(run) if run else ""


def selection(run, round_: int) -> dict:
    """Round ``round_`` of a run: ``labeled`` (after it), ``before`` (labeled before it),
    ``added`` (dataset indices in pick order) and ``scores`` (:func:`prunefuse.runs.read_scores`,
    None for random selection)."""
    run = _run(run)
    have = [r for r in selection_rounds(run["path"]) if r]
    if round_ not in have:
        raise ValueError(f"round_={round_!r}: no selection recorded; this run has rounds {have}")
    now = read_selection(run["path"], round_)
    before = read_selection(run["path"], round_ - 1)["labeled"]
    return {"labeled": now["labeled"], "before": before, "added": now["added"],
            "scores": read_scores(run["path"], round_)}


def rounds(run) -> list[int]:
    """The selection rounds a run recorded (1, 2, ...)."""
    run = _run(run)
    return [m["round"] for m in run["metrics"] if m.get("kind") == "round"]


def scored_rounds(run) -> list[int]:
    """The rounds whose pool scores were recorded (none for random selection)."""
    run = _run(run)
    return [r for r in rounds(run) if scores_path(run["path"], r).exists()]


def load_pool(run):
    """The run's dataset, loaded exactly as the run loaded it (same seeded ``max_train``
    subset, so dataset index i is the run's pool index i); an :class:`ImageDataset`."""
    from ..data import check_data
    from ..data.fingerprint import check_unchanged

    run = _run(run)
    cfg = run["config"]
    data = check_data(cfg)
    # the images shown must be the run's: refused in one line naming what changed
    check_unchanged(read_config(run["path"]), data, run["path"])
    if data.num_train != run["pool_size"]:  # records made before fingerprints
        raise ValueError(f"run={run['path']!r}: pool of {run['pool_size']} images recorded, "
                         f"{cfg['dataset']} loads {data.num_train}; is the data the same?")
    return data


def names_of(data) -> list[str]:
    """The class names of a loaded dataset: those its files name (an image folder's class
    map), else :func:`class_names`."""
    named = data.source.get("classes") if isinstance(data.source, dict) else None
    return [str(c) for c in named] if named and len(named) == data.num_classes else \
        class_names(data.name, data.num_classes)


def class_names(dataset: str, num_classes: int) -> list[str]:
    """Names of the classes, or their numbers when the dataset has none."""
    names = DATASET_INFO[dataset].class_names if dataset in DATASET_INFO else None
    return list(names) if names and len(names) == num_classes else [str(c) for c in
                                                                    range(num_classes)]


# -- the picks ---------------------------------------------------------------------------------

def _image(x) -> np.ndarray:
    img = x.permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[2] == 1 or (img == img[..., :1]).all() else img


def plot_picks(run, round_: int, *, data=None, n: int = 16, seed: int = 0):
    """The first ``n`` images selected in round ``round_`` (pick order), each titled with its
    class and score, above ``n`` images drawn at random (``seed``) from the same pool.

    Args:
        run: run folder or record.
        round_: selection round, 1 = the first selection after the initial random set.
        data: the run's dataset (:func:`load_pool`); loaded when None.
        n: images per row block (at most 8 per row).
        seed: seed of the random draw shown for comparison.
    """
    if n < 1:
        raise ValueError(f"n={n!r}: number of images must be >= 1")
    run = _run(run)
    data = load_pool(run) if data is None else data
    sel = selection(run, round_)
    pool = np.setdiff1d(np.arange(run["pool_size"]), sel["before"])
    value = {}
    if sel["scores"] is not None:
        value = dict(zip(sel["scores"]["pool"].tolist(), sel["scores"]["values"].tolist()))
    picked = sel["added"][:n]
    drawn = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    names = names_of(data)
    cols = min(8, n)
    rows = -(-n // cols)
    plots.setup_style()
    fig = plt.figure(figsize=(1.3 * cols, 1.6 * 2 * rows + 0.8), layout="constrained")
    for sub, (label, idx) in zip(fig.subfigures(2, 1), (("selected, in pick order", picked),
                                                        ("drawn at random from the pool", drawn))):
        sub.suptitle(label, fontsize=9, weight="bold")
        for k, ax in enumerate(sub.subplots(rows, cols, squeeze=False).flat):
            ax.axis("off")
            if k >= len(idx):
                continue
            i = int(idx[k])
            ax.imshow(_image(data.x_train[i]), cmap="gray", vmin=0, vmax=255)
            score = f"\n{value[i]:.3g}" if i in value else ""
            ax.set_title(f"{names[int(data.y_train[i])]}{score}", fontsize=7)
    what = run["config"]["score"] + (" score" if value else " (no scores recorded)")
    fig.suptitle(f"{method_label(run['config'])}, round {round_}: class and {what}")
    return fig


# -- class balance -----------------------------------------------------------------------------

def class_balance(run, *, data=None) -> pd.DataFrame:
    """Class counts of the labeled set after every round (round 0: the initial random set) and
    of the whole pool (``round`` = None); ``share`` is the fraction of that set, in [0, 1]."""
    run = _run(run)
    data = load_pool(run) if data is None else data
    labels = data.y_train.numpy()
    names = names_of(data)
    sets = [(None, np.arange(len(labels)))]
    for rec in read_selections(run["path"]):
        sets.append((rec["round"], np.asarray(rec["labeled"], dtype=np.int64)))
    rows = []
    for r, idx in sets:
        counts = np.bincount(labels[idx], minlength=data.num_classes)
        rows += [{"round": r, "class": names[c], "count": int(counts[c]),
                  "share": counts[c] / len(idx)} for c in range(data.num_classes)]
    return pd.DataFrame(rows).astype({"round": "Int64"})  # whole rounds; the pool's is <NA>


def plot_class_balance(run, *, data=None):
    """Share of each class in the labeled set after every round, against its share of the
    pool (black bars): drift towards some classes shows as bars above the pool's."""
    run = _run(run)
    df = class_balance(run, data=data)
    pool = df[df["round"].isna()]
    lab = df[df["round"].notna()].astype({"round": int})
    plots.setup_style()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(pool)), 3.6), layout="constrained")
    classes = list(pool["class"])
    rs = sorted(lab["round"].unique())
    width = 0.8 / (len(rs) + 1)
    x = np.arange(len(classes))
    for k, r in enumerate(rs):
        sub = lab[lab["round"] == r].set_index("class").loc[classes]
        n = int(sub["count"].sum())
        ax.bar(x + k * width, 100 * sub["share"], width, color=plt.cm.viridis(k / max(1, len(rs))),
               label=f"round {r} ({n} labeled)")
    ax.bar(x + len(rs) * width, 100 * pool["share"], width, color="black",
           label=f"pool ({int(pool['count'].sum())})")
    ax.set_xticks(x + 0.4 - width / 2, classes, rotation=30, ha="right")
    ax.set(ylabel="share of the set (%)", title=f"{method_label(run['config'])}: class balance "
           "of the labeled set")
    ax.legend(fontsize=7, ncols=2)
    return fig


# -- scores ------------------------------------------------------------------------------------

def plot_scores(run, *, bins: int = 40):
    """The pool's score distribution in every round, selected samples stacked on the rest,
    the selection cut (the lowest selected score) as a dashed line. For k-centers the values
    are distances to the nearest labeled center, which order only the first pick."""
    run = _run(run)
    recorded = [(r, selection(run, r)["scores"]) for r in scored_rounds(run)]
    if not recorded:
        raise ValueError(f"run={run['path']!r}: no scores recorded (selector "
                         f"{run['config']['selector']!r}, score {run['config']['score']!r}: "
                         "random selection has none)")
    plots.setup_style()
    fig, axes = plots._panels(len(recorded), width=3.4, height=3.0, sharey=False)
    for ax, (r, s) in zip(axes, recorded):
        picked = np.zeros(len(s["values"]), dtype=bool)
        picked[s["picks"]] = True
        edges = np.histogram_bin_edges(s["values"], bins=bins)
        ax.hist([s["values"][~picked], s["values"][picked]], bins=edges, stacked=True,
                color=["0.7", "C3"], label=["not selected", "selected"])
        cut = float(s["values"][s["picks"]].min())
        ax.axvline(cut, color="k", ls="--", lw=1, label=f"cut {cut:.3g}")
        ax.set(title=f"round {r}: {len(s['picks'])} of {len(s['values'])}",
               xlabel=f"{run['config']['score']} score", ylabel="pool images")
        ax.legend(fontsize=7)
    fig.suptitle(f"{method_label(run['config'])}: pool scores per round")
    return fig


# -- agreement between two runs ----------------------------------------------------------------

# Config keys two runs must share for their pools and rounds to be the same.
SAME_POOL = ("dataset", "max_train", "initial_fraction", "budgets", "seed")


def agreement(run_a, run_b) -> pd.DataFrame:
    """Per round, how alike two runs that share seed and pool select.

    Columns: ``round``, ``budget_pct`` (labeled % of the pool after the round), ``jaccard`` of
    the two sets added in the round, ``labeled_jaccard`` of the labeled sets after it,
    ``chance_jaccard`` (about k/(2N-k): two random draws of the round's k from its pool of N),
    ``spearman`` of the two runs' scores on the images both still had in the pool
    (``n_common`` of them; NaN when either run recorded no scores), ``n_added``.
    """
    a, b = _run(run_a), _run(run_b)
    for key in SAME_POOL:
        if a["config"][key] != b["config"][key]:
            raise ValueError(f"run_b={b['path']!r}: {key}={b['config'][key]!r} differs from "
                             f"run_a's {a['config'][key]!r}; agreement needs the same seed and "
                             "pool")
    rows = []
    for r in sorted(set(rounds(a)) & set(rounds(b))):
        sa, sb = selection(a, r), selection(b, r)
        rho, n_common = float("nan"), 0
        if sa["scores"] is not None and sb["scores"] is not None:
            _, ia, ib = np.intersect1d(sa["scores"]["pool"], sb["scores"]["pool"],
                                       assume_unique=True, return_indices=True)
            n_common = len(ia)
            rho = spearman(sa["scores"]["values"][ia], sb["scores"]["values"][ib])
        k, pool = len(sa["added"]), a["pool_size"] - len(sa["before"])
        rows.append({"round": r, "budget_pct": round(100 * a["config"]["budgets"][r - 1], 6),
                     "jaccard": jaccard(sa["added"], sb["added"]),
                     "labeled_jaccard": jaccard(sa["labeled"], sb["labeled"]),
                     "chance_jaccard": k / (2 * pool - k), "spearman": rho,
                     "n_common": n_common, "n_added": k})
    return pd.DataFrame(rows)


def plot_agreement(run_a, run_b):
    """Jaccard overlap of the sets selected per round (chance level dotted) and Spearman
    correlation of the two runs' pool scores, against the labeled budget."""
    a, b = _run(run_a), _run(run_b)
    df = agreement(a, b)
    plots.setup_style()
    fig, (ax1, ax2) = plots._panels(2, width=3.8, height=3.2, sharey=False)
    ax1.plot(df["budget_pct"], df["jaccard"], "o-", label="selected in the round")
    ax1.plot(df["budget_pct"], df["labeled_jaccard"], "s-", label="labeled set after it")
    ax1.plot(df["budget_pct"], df["chance_jaccard"], "k:", label="two random draws")
    ax1.set(ylim=(0, 1.02), xlabel="labeled set (% of pool)", ylabel="Jaccard overlap")
    ax1.legend(fontsize=7)
    ax2.plot(df["budget_pct"], df["spearman"], "o-", color="C2")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set(ylim=(-1.02, 1.02), xlabel="labeled set (% of pool)",
            ylabel="Spearman correlation of scores")
    fig.suptitle(f"{method_label(a['config'])} vs {method_label(b['config'])} "
                 f"(seed {a['config']['seed']})")
    return fig


# -- learning and cost -------------------------------------------------------------------------

def round_costs(run) -> pd.DataFrame:
    """The cost ledger split by round: one row per round and ledger category, with ``macs``
    and ``seconds`` charged in that round (docs/method.md, "Cost accounting"): the round's
    selection, then the target trained at its budget. The MACs are the charging rule's
    (:func:`prunefuse.charges.run_charges`), the seconds what each step added to the ledger;
    summed over rounds, both equal ``ledger.json``."""
    run = _run(run)
    cfg, sel = run["config"], run.get("selector_model") or {}
    charges = run_charges(cfg, pool=run["pool_size"], n_test=run["test_size"],
                          target_macs=run["target"]["macs_per_sample"],
                          selector_macs=sel.get("macs_per_sample", 0))
    out: dict[int, dict] = {}

    def charge(r, category, macs=0, seconds=0.0):
        cell = out.setdefault(r, {}).setdefault(category, [0, 0.0])
        cell[0] += int(macs)
        cell[1] += float(seconds or 0.0)

    for c in charges:
        charge(c.round, c.category, c.macs)
    for m in run["metrics"]:
        for category, seconds in _step_seconds(m, charges).items():
            charge(m["round"], category, 0, seconds)
    rows = [{"round": r, "budget_pct": round(100 * cfg["budgets"][r - 1], 6), "category": c,
             "macs": out[r][c][0], "seconds": out[r][c][1]}
            for r in sorted(out) for c in CATEGORIES if c in out[r]]
    return pd.DataFrame(rows, columns=["round", "budget_pct", "category", "macs", "seconds"])


# The seconds a metrics row names for each work of its step (records whose rows lack
# ``ledger_seconds``); the step's charges say which category each went to.
_ROW_SECONDS = {"select": {"selector": "selector_training_seconds", "scoring": "scoring_seconds"},
                "target": {"target": "training_seconds", "target_test": "evaluation_seconds",
                           "fusion_source": "fusion_source_seconds"}}


def _step_seconds(m: dict, charges) -> dict[str, float]:
    """Seconds one metrics row's step added to the ledger, per category: the row's
    ``ledger_seconds``, or in records without them the measured parts the row names, in the
    categories of the step's charges (:func:`prunefuse.charges.step_charges`; without the
    selectors' test evaluation, which such rows do not name)."""
    if "ledger_seconds" in m:
        return m["ledger_seconds"]
    step = "select" if m["kind"] == "round" else "target"
    works = step_charges(charges, m["round"], step)
    out: dict[str, float] = {}
    for work, field in _ROW_SECONDS[step].items():
        if work in works and m.get(field):
            category = works[work].category
            out[category] = out.get(category, 0.0) + m[field]
    return out


def plot_learning_and_cost(run):
    """Left: selector and target test accuracy against the labeled budget each was trained
    on. Middle and right: the ledger per round as stacked categories, GMACs and seconds."""
    run = _run(run)
    pool = run["pool_size"]
    sel = [(100 * m["labeled_before"] / pool, 100 * m["selector_test_acc"])
           for m in run["metrics"] if m["kind"] == "round" and "selector_test_acc" in m]
    tgt = [(100 * m["budget"], 100 * m["final_test_acc"])
           for m in run["metrics"] if m["kind"] == "target" and m["final_test_acc"] is not None]
    costs = round_costs(run)
    plots.setup_style()
    fig, axes = plots._panels(3, width=3.7, height=3.3, sharey=False)
    for pts, label, mark in ((sel, "selector", "s--"), (tgt, "target (final epoch)", "o-")):
        if pts:
            axes[0].plot(*zip(*pts), mark, label=label)
    axes[0].set(xlabel="trained on (% of pool labeled)", ylabel="test accuracy (%)")
    axes[0].legend(fontsize=7)
    for ax, col, scale, unit in ((axes[1], "macs", 1e9, "GMACs"), (axes[2], "seconds", 1, "s")):
        wide = costs.pivot_table(index="round", columns="category", values=col, aggfunc="sum",
                                 fill_value=0)
        wide = wide[[c for c in CATEGORIES if c in wide.columns]] / scale
        bottom = np.zeros(len(wide))
        for c in wide.columns:
            ax.bar([f"{r}" for r in wide.index], wide[c], bottom=bottom,
                   color=f"C{CATEGORIES.index(c)}", label=c.replace("_", " "))
            bottom += wide[c].to_numpy()
        ax.set(xlabel="round (selection, then the target at its budget)",
               ylabel=f"charged in the round ({unit})")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{method_label(run['config'])}: learning and cost per round")
    return fig


# -- record size -------------------------------------------------------------------------------

def score_record_layout(pool_size: int, initial_fraction: float,
                        budgets: list[float]) -> pd.DataFrame:
    """Per round, the scores a run records (one per pool image) and the picks, for a pool of
    ``pool_size`` with the runner's rounding (:func:`prunefuse.config.labeled_counts`), and
    the bytes of ``round_NN.scores.npz`` stored uncompressed (``bound_bytes``: float16 values,
    int32 picks, npy and zip headers); deflate makes the real file somewhat smaller."""
    labeled = labeled_counts({"initial_fraction": initial_fraction, "budgets": budgets},
                             pool_size)
    rows = []
    for r in range(1, len(labeled)):
        n_pool, n_picks = pool_size - labeled[r - 1], labeled[r] - labeled[r - 1]
        buf = io.BytesIO()
        np.savez(buf, values=np.zeros(n_pool, np.float16), picks=np.zeros(n_picks, np.int32))
        rows.append({"round": r, "pool": n_pool, "picks": n_picks,
                     "bound_bytes": buf.getbuffer().nbytes})
    return pd.DataFrame(rows)


def score_record_bytes(run) -> pd.DataFrame:
    """Per round, the bytes of a run's real ``round_NN.scores.npz`` files, beside the bytes of
    its other selection records (``round_NN.json``) and of the whole run folder without the
    trained-selector cache."""
    run = _run(run)
    root = Path(run["path"])
    rows = []
    for r in rounds(run):
        path = scores_path(root, r)
        if path.exists():
            rows.append({"round": r, "bytes": path.stat().st_size,
                         "json_bytes": selection_path(root, r).stat()
                         .st_size})
    df = pd.DataFrame(rows, columns=["round", "bytes", "json_bytes"])
    df["record_bytes"] = sum(p.stat().st_size for p in root.rglob("*")
                             if p.is_file() and CACHE not in p.relative_to(root).parts)
    return df


# -- the paper-level artefact: selector agreement ----------------------------------------------

def agreement_table(records: str | os.PathLike, *, dataset: str, arch: str, score: str,
                    ratios: list[float]) -> pd.DataFrame:
    """:func:`agreement` of every PruneFuse run at ``ratios`` (fused target with KD, own
    selection) against the dense-AL run of the same seed and pool, one row per run and round,
    with ``ratio``, ``seed``, ``run_id``, ``dense_run_id`` and what captions need."""
    # V1 runs at our readings that select by themselves: a V2 run, another reading or a
    # fresh-init selector is another method, not another seed of this one
    runs = [r for r in find_runs(records) if r["config"]["dataset"] == dataset
            and r["config"]["arch"] == arch and r["config"]["score"] == score
            and not r["config"]["selection_from"] and at_our_readings(r["config"])]
    dense = {tuple(json.dumps(r["config"][k]) for k in SAME_POOL): r for r in runs
             if r["config"]["selector"] == "dense"}
    frames = []
    for run in runs:
        cfg = run["config"]
        if not (cfg["selector"] == "prunefuse" and cfg["target_init"] == "fused"
                and cfg["kd_lambda"] > 0 and any(abs(cfg["ratio"] - p) < 1e-9 for p in ratios)):
            continue
        base = dense.get(tuple(json.dumps(cfg[k]) for k in SAME_POOL))
        if base is None:
            continue
        df = agreement(run, base).assign(ratio=cfg["ratio"], seed=cfg["seed"])
        for prefix, r in (("", run), ("dense_", base)):
            df = df.assign(**{f"{prefix}{k}": v for k, v in provenance(r).items()})
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_agreement_by_ratio(df, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Jaccard and Spearman against dense AL per round, one line per p (mean ± sd over
    seeds), chance Jaccard dotted; ``df`` from :func:`agreement_table`."""
    plots.setup_style()
    fig, axes = plots._panels(2, width=4.0, height=3.4, sharey=False)
    for i, (p, sub) in enumerate(df.groupby("ratio", sort=True)):
        g = sub.groupby("budget_pct").agg(j=("jaccard", "mean"), jsd=("jaccard", "std"),
                                          s=("spearman", "mean"), ssd=("spearman", "std"))
        g = g.fillna({"jsd": 0.0, "ssd": 0.0})
        for ax, m, sd in ((axes[0], "j", "jsd"), (axes[1], "s", "ssd")):
            ax.errorbar(g.index, g[m], yerr=g[sd], marker="o", capsize=3, color=f"C{i}",
                        label=f"p = {p:g}")
    chance = df.groupby("budget_pct")["chance_jaccard"].mean()
    axes[0].plot(chance.index, chance.values, "k:", label="two random draws")
    axes[0].set(ylim=(0, 1.02), xlabel="labeled set (% of pool)",
                ylabel="Jaccard of the round's selections")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(ylim=(-1.02, 1.02), xlabel="labeled set (% of pool)",
                ylabel="Spearman of pool scores")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title} (mean ± sd, {plots.seeds_note(df, ['ratio', 'round'])})")
    return plots.save(fig, path)
