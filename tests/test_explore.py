"""Exploring run records: exact Jaccard and Spearman on closed forms, class counts and the
per-round ledger equal to the records, every figure on real smoke runs, record sizes."""

import json
import math
import shutil
from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from prunefuse import artefacts
from prunefuse import explore as ex
from prunefuse.estimate import run_macs
from prunefuse.experiment import run_experiment
from prunefuse.runs import read_jsonl

SMALL = {"max_train": 256, "max_test": 64}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Dense AL, PruneFuse at p=0.5 and 0.6 (seed 0, one pool) and random selection."""
    out = tmp_path_factory.mktemp("explore")
    made = {name: run_experiment(profile="smoke", out=out, progress=False, **SMALL, **kw)
            for name, kw in {"dense": {"selector": "dense"},
                             "pf": {"selector": "prunefuse", "ratio": 0.5},
                             "pf6": {"selector": "prunefuse", "ratio": 0.6},
                             "random": {"selector": "random"}}.items()}
    return {"root": out, **made}


@pytest.fixture(scope="module")
def data(runs):
    return ex.load_pool(runs["pf"])


def _labeled(run_dir, r):
    return json.loads((run_dir / "selections" / f"round_{r:02d}.json").read_text())


# -- the statistics, on closed forms -----------------------------------------------------------

def test_jaccard_of_known_sets():
    assert ex.jaccard([1, 2, 3], [2, 3, 4]) == 0.5
    assert ex.jaccard([1, 2], [3]) == 0.0 and ex.jaccard([], []) == 1.0
    assert ex.jaccard(np.array([5, 6]), [6, 5]) == 1.0


def test_average_ranks_share_ties():
    assert ex.average_ranks([10, 20, 20, 20, 5]).tolist() == [2, 4, 4, 4, 1]
    assert ex.average_ranks([3.0, 1.0, 2.0]).tolist() == [3, 1, 2]


def test_spearman_closed_forms():
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 4 / 120
    assert ex.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8, abs=1e-12)
    # ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert ex.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10), abs=1e-12)
    assert ex.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(ex.spearman([1, 1, 1], [1, 2, 3])) and math.isnan(ex.spearman([1], [2]))
    with pytest.raises(ValueError, match="one length"):
        ex.spearman([1, 2], [1, 2, 3])


def test_spearman_matches_the_textbook_formula_on_every_permutation():
    x = np.arange(6)
    for perm in permutations(range(6)):
        d2 = ((x - np.array(perm)) ** 2).sum()
        assert ex.spearman(x, perm) == pytest.approx(1 - 6 * d2 / (6 * 35), abs=1e-12)


# -- agreement on real records -----------------------------------------------------------------

def test_agreement_of_a_run_with_itself_is_perfect(runs):
    df = ex.agreement(runs["pf"], runs["pf"])
    assert df["round"].tolist() == [1, 2]
    assert (df["jaccard"] == 1).all() and (df["labeled_jaccard"] == 1).all()
    assert df["spearman"].tolist() == pytest.approx([1.0, 1.0])


def test_agreement_pruned_vs_dense_equals_the_records(runs):
    df = ex.agreement(runs["pf"], runs["dense"]).set_index("round")
    for r in (1, 2):
        a, b = _labeled(runs["pf"], r), _labeled(runs["dense"], r)
        assert df.loc[r, "jaccard"] == len(set(a["added"]) & set(b["added"])) / len(
            set(a["added"]) | set(b["added"]))
        assert df.loc[r, "n_added"] == len(a["added"])
    # round 1: both score the whole pool outside the shared initial set of 26 images
    assert df.loc[1, "n_common"] == 256 - 26 and df.loc[1, "budget_pct"] == 20
    # chance: k / (2N - k) with k = 51 - 26 picks from N = 230
    assert df.loc[1, "chance_jaccard"] == 25 / (2 * 230 - 25)
    sa = ex.selection(runs["pf"], 2)["scores"]
    sb = ex.selection(runs["dense"], 2)["scores"]
    common = np.intersect1d(sa["pool"], sb["pool"])
    assert df.loc[2, "n_common"] == len(common)
    va = sa["values"][np.searchsorted(sa["pool"], common)]
    vb = sb["values"][np.searchsorted(sb["pool"], common)]
    assert df.loc[2, "spearman"] == pytest.approx(ex.spearman(va, vb))
    # random selection records no scores: Jaccard still, Spearman NaN
    assert ex.agreement(runs["pf"], runs["random"])["spearman"].isna().all()


def test_agreement_refuses_runs_with_different_pools(runs, tmp_path):
    other = tmp_path / "seed1"
    shutil.copytree(runs["pf"], other)
    meta = json.loads((other / "config.json").read_text())
    meta["config"]["seed"] = 1
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="seed=1 differs from run_a's 0"):
        ex.agreement(runs["pf"], other)


# -- one run -----------------------------------------------------------------------------------

def test_class_balance_counts_equal_the_records(runs, data):
    df = ex.class_balance(runs["pf"], data=data)
    labels = data.y_train.numpy()
    for r in (0, 1, 2):
        idx = _labeled(runs["pf"], r)["labeled"]
        got = df[df["round"] == r]["count"].tolist()
        assert got == np.bincount(labels[idx], minlength=10).tolist()
    pool = df[df["round"].isna()]
    assert pool["count"].sum() == 256 and pool["share"].sum() == pytest.approx(1.0)
    assert list(pool["class"]) == [str(c) for c in range(10)]  # synthetic: no class names


COST_RUNS = {"svp": {"selector": "svp"}, "kcenter": {"selector": "dense", "score": "kcenter"},
             "v2": {"t_sync": 1}, "v2_reprune": {"t_sync": 1, "v2_derive": "reprune"},
             "v2_authors": {"reading": "authors", "t_sync": 1}, "pf_random": {"score": "random"},
             "curve": {"selector": "dense", "eval_every": 1}}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dense", "pf", "random", *COST_RUNS])
def test_round_costs_add_up_to_the_ledger(runs, tmp_path, name):
    """Explore's per-round costs are the ledger's, category by category, MACs and seconds,
    for every selector, for V2 (ours and the authors' loop) and with a test curve."""
    run = runs.get(name) or run_experiment(profile="smoke", out=tmp_path, progress=False,
                                           **SMALL, **COST_RUNS[name])
    costs = ex.round_costs(run).groupby("category")[["macs", "seconds"]].sum()
    ledger = json.loads((run / "ledger.json").read_text())
    for cat, macs in ledger["macs"].items():
        assert costs["macs"].get(cat, 0) == macs, (name, cat)
        assert costs["seconds"].get(cat, 0.0) == pytest.approx(ledger["seconds"][cat], abs=1e-9)
    rec = json.loads((run / "config.json").read_text())
    assert run_macs(rec["config"]) == ledger["macs"]  # the dry run's estimate, before running
    if name == "pf":
        # PruneFuse's selector on the last labeled set selects nothing later: fusion, round 2
        pf = ex.round_costs(run)
        assert set(pf[pf["category"] == "fusion_source"]["round"]) == {2}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dense", "pf", "random"])
def test_round_costs_of_rows_without_ledger_seconds_follow_the_charges(runs, tmp_path, name):
    """Rows written before they carried ``ledger_seconds``: the seconds they name land in the
    categories the rule charges (the selectors' tests and the teacher they do not name)."""
    old = tmp_path / runs[name].name
    shutil.copytree(runs[name], old)
    rows = [{k: v for k, v in m.items() if k != "ledger_seconds"}
            for m in read_jsonl(old / "metrics.jsonl")]
    (old / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in rows))
    costs = ex.round_costs(old).groupby("category")["seconds"].sum()
    ledger = json.loads((old / "ledger.json").read_text())["seconds"]
    for cat in ("selector_training", "pool_scoring", "fusion_source", "target_training"):
        assert costs.get(cat, 0.0) == pytest.approx(ledger[cat], abs=1e-9), (name, cat)
    assert costs.get("teacher_forward", 0.0) == 0.0  # such rows do not name the teacher's


def test_figures_on_smoke_records(runs, data):
    fig = ex.plot_picks(runs["pf"], 1, data=data, n=6)
    assert isinstance(fig, Figure)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 12
    sel = ex.selection(runs["pf"], 1)
    s = sel["scores"]
    first = sel["added"][0]
    value = s["values"][s["pool"].tolist().index(first)]
    assert images[0].get_title() == f"{int(data.y_train[first])}\n{value:.3g}"
    assert len([ax for ax in ex.plot_picks(runs["random"], 2, data=data, n=3).axes
                if ax.images]) == 6


def _heights(container):
    return [p.get_height() for p in container.patches]


def test_score_histograms_draw_each_rounds_pool_and_picks(runs):
    fig = ex.plot_scores(runs["pf"])
    assert len(fig.axes) == 2
    for r, ax in zip((1, 2), fig.axes):
        s = ex.selection(runs["pf"], r)["scores"]
        cut = [ln for ln in ax.lines if ln.get_linestyle() == "--"][0]
        assert cut.get_xdata()[0] == pytest.approx(s["values"][s["picks"]].min())
        rest, picked = ax.containers  # stacked: the images not selected, then the selected
        assert sum(_heights(picked)) == len(s["picks"])
        assert sum(_heights(rest)) == len(s["values"]) - len(s["picks"])
        assert ax.get_title() == f"round {r}: {len(s['picks'])} of {len(s['values'])}"


def test_class_balance_bars_are_the_class_shares(runs, data):
    df = ex.class_balance(runs["pf"], data=data)
    ax, = ex.plot_class_balance(runs["pf"], data=data).axes
    assert len(ax.containers) == 4  # rounds 0, 1, 2 and the pool
    for r, bars in zip((0, 1, 2), ax.containers):
        mine = df[df["round"] == r]
        assert _heights(bars) == pytest.approx((100 * mine["share"]).tolist())
        assert bars.get_label() == f"round {r} ({mine['count'].sum()} labeled)"
    pool = df[df["round"].isna()]
    assert _heights(ax.containers[3]) == pytest.approx((100 * pool["share"]).tolist())
    assert [t.get_text() for t in ax.get_xticklabels()] == list(pool["class"])


def test_agreement_lines_are_the_agreement_table(runs):
    df = ex.agreement(runs["pf"], runs["dense"])
    jac, rho = ex.plot_agreement(runs["pf"], runs["dense"]).axes
    drawn = {ln.get_label(): ln for ln in jac.lines}
    for label, col in (("selected in the round", "jaccard"), ("labeled set after it",
                                                              "labeled_jaccard"),
                       ("two random draws", "chance_jaccard")):
        assert list(drawn[label].get_xdata()) == df["budget_pct"].tolist() == [20, 30]
        assert list(drawn[label].get_ydata()) == pytest.approx(df[col].tolist()), label
    spearman = [ln for ln in rho.lines if ln.get_marker() == "o"]  # beside the zero line
    assert len(spearman) == 1 and list(spearman[0].get_ydata()) == pytest.approx(
        df["spearman"].tolist())


def test_learning_and_cost_draw_the_accuracies_and_the_ledger(runs):
    run = runs["pf"]
    metrics = read_jsonl(run / "metrics.jsonl")
    pool = json.loads((run / "config.json").read_text())["pool_size"]
    acc, macs, seconds = ex.plot_learning_and_cost(run).axes
    drawn = {ln.get_label(): ln for ln in acc.lines}
    targets = [m for m in metrics if m["kind"] == "target"]
    assert list(drawn["target (final epoch)"].get_xdata()) == pytest.approx(
        [100 * m["budget"] for m in targets])
    assert list(drawn["target (final epoch)"].get_ydata()) == pytest.approx(
        [100 * m["final_test_acc"] for m in targets])
    selectors = [m for m in metrics if m["kind"] == "round"]
    assert list(drawn["selector"].get_xdata()) == pytest.approx(
        [100 * m["labeled_before"] / pool for m in selectors])
    assert list(drawn["selector"].get_ydata()) == pytest.approx(
        [100 * m["selector_test_acc"] for m in selectors])
    # one stacked bar per round and ledger category it charges; each category's bars add up
    # to the ledger's total in that category
    ledger = json.loads((run / "ledger.json").read_text())
    for ax, col, scale in ((macs, "macs", 1e9), (seconds, "seconds", 1)):
        bars = {c.get_label(): c for c in ax.containers}
        charged = {k for k, v in ledger[col].items() if v}
        assert set(bars) == {k.replace("_", " ") for k in charged}, col
        for key in charged:
            assert sum(_heights(bars[key.replace("_", " ")])) == pytest.approx(
                ledger[col][key] / scale), (col, key)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]


def test_bad_input_gets_one_clear_line(runs, tmp_path):
    with pytest.raises(ValueError, match=r"round_=5: no selection recorded; this run has rounds "
                                         r"\[1, 2\]"):
        ex.selection(runs["pf"], 5)
    with pytest.raises(ValueError, match="no scores recorded"):
        ex.plot_scores(runs["random"])
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        ex.plot_scores(tmp_path)
    with pytest.raises(ValueError, match="n=0"):
        ex.plot_picks(runs["pf"], 1, n=0)


# -- record size -------------------------------------------------------------------------------

def test_score_record_layout_and_real_sizes(runs):
    cpu = ex.score_record_layout(4000, 0.025, [0.1, 0.2, 0.3])
    assert cpu["pool"].tolist() == [3900, 3600, 3200] and cpu["picks"].tolist() == [300, 400, 400]
    payload = 2 * cpu["pool"] + 4 * cpu["picks"]
    assert ((cpu["bound_bytes"] - payload) == (cpu["bound_bytes"] - payload)[0]).all()
    assert 0 < (cpu["bound_bytes"] - payload)[0] < 1024  # headers only
    smoke = ex.score_record_layout(256, 0.1, [0.2, 0.3])
    real = ex.score_record_bytes(runs["pf"])
    assert real["round"].tolist() == [1, 2]
    assert (real["bytes"] < smoke["bound_bytes"]).all()  # deflate only shrinks them
    assert (real["record_bytes"] > real["bytes"].sum()).all()
    assert ex.score_record_bytes(runs["random"]).empty


# -- the artefact ------------------------------------------------------------------------------

def test_selector_agreement_artefact(runs, tmp_path):
    paths = artefacts.agreement(runs["root"], tmp_path, profile="smoke", dataset="synthetic",
                                  arch="resnet8", score="least_confidence", ratios=[0.5, 0.6])
    for kind in ("csv", "md", "tex", "pdf", "png", "caption"):
        assert paths[kind].stat().st_size > 0, kind
    data = pd.read_csv(paths["csv"])
    assert sorted(set(data["ratio"])) == [0.5, 0.6] and len(data) == 4
    direct = ex.agreement(runs["pf"], runs["dense"])
    got = data[data["ratio"] == 0.5].sort_values("round")
    assert got["jaccard"].tolist() == pytest.approx(direct["jaccard"].tolist())
    assert got["spearman"].tolist() == pytest.approx(direct["spearman"].tolist())
    md = paths["md"].read_text()
    j = direct.loc[0, "jaccard"]
    assert f"| 0.5 | 20 | {j:.2f} (n=1) |" in md  # one seed: no sd
    caption = paths["caption"].read_text()
    assert "n=1 seed" in caption and "Records: 3 runs" in caption  # 2 PruneFuse + dense
    with pytest.raises(FileNotFoundError, match="no finished runs for the agreement"):
        artefacts.agreement(runs["root"], tmp_path, profile="smoke", dataset="synthetic",
                              arch="resnet8", score="entropy", ratios=[0.5])


def test_agreement_table_counts_v1_runs_only(runs, tmp_path):
    """A V2 run (t_sync) or a fresh-init selector of the same seed is another method: it
    must not count as a second seed of PruneFuse V1."""
    import shutil

    for name in ("dense", "pf"):
        shutil.copytree(runs[name], tmp_path / runs[name].name)
    for key, value in (("t_sync", 1), ("selector_init", "fresh")):
        copy = tmp_path / f"{runs['pf'].name}-{key}"
        shutil.copytree(runs["pf"], copy)
        meta = json.loads((copy / "config.json").read_text())
        meta["config"][key] = value
        (copy / "config.json").write_text(json.dumps(meta))
    df = ex.agreement_table(tmp_path, dataset="synthetic", arch="resnet8",
                            score="least_confidence", ratios=[0.5])
    assert set(df["run_id"]) == {runs["pf"].name} and len(df) == 2  # its two rounds
