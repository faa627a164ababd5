"""The declared study: its plan, blocks on one machine, a pool per seed and run ids."""

import json
import math
from pathlib import Path

import pytest
import torch

from prunefuse.blocks import SET_ASIDE, machine_of, set_aside_foreign
from prunefuse.comparisons import STUDY
from prunefuse.config import make_config, run_id
from prunefuse.data import load_dataset
from prunefuse.grid import Run, default_artefacts, plan
from prunefuse.runs import atomic_write_json, mark_done

SNAPSHOT = Path(__file__).parent / "data" / "planned_run_ids.json"


@pytest.mark.parametrize("key", ["smoke", "smoke-ext", "cpu", "cpu-ext", "paper-ext", "study"])
def test_every_grid_plans_the_run_ids_it_planned_before(key):
    """Records of earlier revisions keep their ids: the planner's refactors change no run."""
    profile, ext = key.split("-")[0], key.endswith("-ext")
    ids = [r.run_id for r in plan(profile, artefacts=default_artefacts(profile, extended=ext)).runs]
    assert ids == json.loads(SNAPSHOT.read_text())[key]


def test_study_plans_every_block_of_every_group_in_declared_order():
    runs = plan("study").runs
    blocks = {}
    for r in runs:
        blocks.setdefault(r.block, []).append(r)
    for group in STUDY.groups:
        for pool in group.pools:
            for seed in group.seeds:
                got = blocks[f"{group.key}/{pool}/s{seed}"]
                assert [r.arm for r in got] == list(group.arms)
    order = [r.block.split("/")[0] for r in runs]
    assert order == sorted(order, key=[g.key for g in STUDY.groups].index)  # group by group
    position = {r.run_id: i for i, r in enumerate(runs)}
    for r in runs:
        cfg = make_config("study", **r.config)
        assert cfg["pool_draw"] == "seed" and cfg["max_test"] is None
        if r.needs:  # a retrained arm reads the selection of its source's run, planned first
            assert position[r.needs] < position[r.run_id]
            assert cfg["selection_from"] == f"runs/{r.needs}"


def test_each_seed_draws_its_own_pool_and_records_it():
    a = load_dataset("synthetic", max_train=100, pool_seed=1)
    b = load_dataset("synthetic", max_train=100, pool_seed=2)
    again = load_dataset("synthetic", max_train=100, pool_seed=1)
    assert a.source["pool"]["indices_sha256"] != b.source["pool"]["indices_sha256"]
    assert a.source["pool"] == again.source["pool"] and torch.equal(a.x_train, again.x_train)
    assert not torch.equal(a.x_train, b.x_train)
    assert torch.equal(a.x_test, b.x_test)  # one test set for every seed


def test_pool_draw_and_a_sparser_best_epoch_enter_the_run_id():
    base = make_config("cpu")
    assert run_id(make_config("cpu", pool_draw="fixed")) == run_id(base)
    assert run_id(make_config("cpu", pool_draw="seed")) != run_id(base)
    best = make_config("cpu", reading="authors", selector="prunefuse")
    assert best["eval_every"] == 1
    assert run_id(make_config("cpu", reading="authors", selector="prunefuse", eval_every=20)) \
        != run_id(best)
    # With the final epoch reported, how often the test set is read changes nothing.
    assert run_id(make_config("cpu", eval_every=5)) == run_id(base)


def _finished(runs_dir: Path, rid: str, cpu: str) -> None:
    atomic_write_json(runs_dir / rid / "config.json", {"cpu": cpu, "threads": 1,
                                                       "torch_version": "2.x"})
    mark_done(runs_dir / rid)


def test_an_incomplete_block_from_another_machine_runs_again_here(tmp_path):
    runs_dir = tmp_path / "runs"
    plan_ = [Run("a0", {}, block="main/4000/s0"), Run("b0", {}, block="main/4000/s0"),
             Run("a1", {}, block="main/4000/s1"), Run("b1", {}, block="main/4000/s1"),
             Run("c2", {}, block="main/4000/s2")]
    _finished(runs_dir, "a0", "old CPU")  # s0: incomplete, other machine -> set aside
    _finished(runs_dir, "a1", "old CPU")  # s1: complete on the old machine -> kept
    _finished(runs_dir, "b1", "old CPU")
    _finished(runs_dir, "c2", "new CPU")  # s2: done here -> kept
    here = machine_of({"cpu": "new CPU", "threads": 1, "torch_version": "2.x"})
    lines = []
    moved = set_aside_foreign(plan_, runs_dir, machine=here, log=lines.append)
    assert moved == [tmp_path / SET_ASIDE / "a0.0"] and (moved[0] / "config.json").exists()
    assert not (runs_dir / "a0").exists() and (runs_dir / "a1").exists()
    assert (runs_dir / "c2").exists() and "main/4000/s0" in lines[0]
    _finished(runs_dir, "a0", "old CPU")  # set aside again: nothing is overwritten
    assert set_aside_foreign(plan_, runs_dir, machine=here, log=lines.append) == \
        [tmp_path / SET_ASIDE / "a0.1"]


def _cell(role, group, pool, budget, values, machine="m", measure="acc_pct"):
    import pandas as pd

    return pd.DataFrame({"group": group, "pool": pool, "budget": budget, "role": role,
                         "seed": range(len(values)), "machine": machine, measure: values})


def test_claims_judge_each_declared_hypothesis_per_budget_with_holm_and_machines():
    import math

    import pandas as pd

    from prunefuse.comparisons import Comparison, Study
    from prunefuse.study import judge_rows

    study = Study(STUDY.arms, STUDY.groups, (
        Comparison("Match", "pf matches dense", "paper", "pf", "dense", ("main", "budgets"),
                   hypothesis="noninferiority", margin=1.0),
        Comparison("Better", "pf beats dense", "paper", "pf", "dense", ("main",)),
    ))
    dense = [80.0, 81.0, 82.0, 83.0, 84.0]
    df = pd.concat([
        _cell("dense", "main", 4000, 0.3, dense),
        _cell("pf", "main", 4000, 0.3, [d - 0.5 + 0.1 * (i % 2) for i, d in enumerate(dense)]),
        _cell("dense", "budgets", 4000, 0.1, dense),  # 2 points behind: a clear deficit
        _cell("pf", "budgets", 4000, 0.1, [d - 2 + 0.1 * (i % 2) for i, d in enumerate(dense)],
              machine=["m", "m", "other", "m", "m"]),
    ], ignore_index=True)
    rows = judge_rows(df, study).set_index(["id", "budget"])
    main = rows.loc[("Match", "30%")]
    assert main["n"] == 5 and math.isclose(main["mean"], -0.46)
    assert main["verdict"] == "supported" and main["family_verdict"] == "supported"
    assert main["hypothesis"] == "non-inferiority, margin 1 point"
    low = rows.loc[("Match", "10%")]  # the pair across machines is counted, not paired
    assert low["verdict"] == "not supported" and low["cross_machine"] == 1 and low["n"] == 4
    # a cell whose every pair crossed machines is still a row: n = 0, counted, undecided
    moved = df.copy()
    moved.loc[(moved["group"] == "budgets") & (moved["role"] == "pf"), "machine"] = "other"
    gone = judge_rows(moved, study).set_index(["id", "budget"]).loc[("Match", "10%")]
    assert gone["n"] == 0 and gone["cross_machine"] == 5 and gone["verdict"] == "undecided at this n"
    better = rows.loc[("Better", "30%")]
    assert better["verdict"] == "not supported" and better["p"] > 0.99
    # a record that does not name its CPU makes the count unknown
    df.loc[df.index[0], "machine"] = None
    assert judge_rows(df, study).set_index(["id", "budget"]).loc[
        ("Match", "30%"), "cross_machine"] == "unknown"


def test_holm_keeps_only_what_survives_the_family():
    from prunefuse.judge import holm, p_value, t_sf, verdict
    from prunefuse.stats import t975

    assert abs(t_sf(t975(14), 14) - 0.025) < 1e-4 and abs(t_sf(0.0, 3) - 0.5) < 1e-12
    assert holm([0.001, 0.02, 0.01, float("nan"), 0.5]) == [True, False, False, False, False]
    assert holm([0.001, 0.005]) == [True, True]
    # an interval inside the margin: equivalence supported, superiority undecided
    assert verdict(-0.3, 0.4, hypothesis="equivalence", margin=0.5) == "supported"
    assert verdict(-0.3, 0.4) == "undecided at this n"
    # lower is better: a ratio of seconds no more than 5% above 1
    assert verdict(0.97, 1.04, hypothesis="noninferiority", null=1, margin=0.05,
                   higher=False) == "supported"
    assert p_value(0.0, 1.0, 10, hypothesis="superiority", null=0, margin=0,
                   higher=True) == 0.5


def _fake_study(seed_shift=0.0):
    """A study_rows-like table: dense, pf and pf_authors at four pool sizes, five seeds each,
    PruneFuse 1.5 points behind at 2,000 images and level at 16,000."""
    import pandas as pd

    cells = []
    for group, pool in (("pool", 2000), ("main", 4000), ("pool", 8000), ("pool_large", 16000)):
        gap = -1.5 + 0.5 * [2000, 4000, 8000, 16000].index(pool)
        for role, shift, sec in (("dense", 0.0, 100.0), ("pf", gap, 50.0),
                                 ("pf_authors", gap + 0.2, 55.0)):
            acc = [85.0 + 0.3 * s + shift + 0.05 * ((s * 7 + pool) % 3) for s in range(5)]
            c = _cell(role, group, pool, 0.3, acc)
            c["final_pct"] = c["acc_pct"]
            c["selection_seconds"] = sec * pool / 4000
            c["run_seconds"] = sec * pool / 4000 + 200
            c["selection_macs"] = sec * 1e12
            c["finished"] = "2026-12-07T10:00:00"
            c["block"] = [f"{group}/{pool}/s{s}" for s in range(5)]
            c["run_id"] = [f"{role}-{pool}-{s}" for s in range(5)]
            c["pool_draw"] = [f"draw-{pool}-{s}" for s in range(5)]  # one per seed and size
            c["dataset"], c["arch"] = "fashion-mnist", "resnet20"
            c["git_commit"], c["device"], c["threads"], c["cpu"] = "abc", "cpu", 1, "m"
            cells.append(c)
    return pd.concat(cells, ignore_index=True)


def test_scaling_fits_the_gap_per_doubling_and_writes_its_files(tmp_path, monkeypatch):
    from prunefuse import study

    df = _fake_study()
    rows, fits = study.scaling_rows(df)
    fit = fits.set_index("id").loc["PFDense"]
    assert abs(fit["slope"] - 0.5) < 0.05 and fit["trend"] == "rises" and fit["pools"] == 4
    assert set(rows.loc[rows["id"] == "PFDense", "pool"]) == {2000, 4000, 8000, 16000}
    monkeypatch.setattr(study, "study_rows", lambda records, **kw: df)
    paths = study.scaling("unused", tmp_path, profile="study")
    assert {"csv", "md", "tex", "pdf", "png", "caption"} <= set(paths)
    caption = paths["caption"].read_text()
    assert "rises as the pool grows" in caption.split("- Profile")[0]  # the answer comes first
    assert "5 draws of 5 seeds at 2,000 images" in caption and "15 blocks on" not in caption
    assert "Dataset: fashion-mnist, target resnet20." in caption
    # a pair across machines is left out of the fit as it is of the claims
    mixed = df.copy()
    mixed.loc[(mixed["role"] == "pf") & (mixed["pool"] == 2000) & (mixed["seed"] == 0),
              "machine"] = "other"
    mixed_rows, mixed_fits = study.scaling_rows(mixed)
    assert mixed_fits.set_index("id").loc["PFDense", "n"] == fit["n"] - 1
    claims = study.study_claims("unused", tmp_path, profile="study")
    md = claims["md"].read_text()
    assert "non-inferiority, margin 1 point" in md and "family-wise (Holm)" in md
    assert claims["caption"].read_text().index("Verdicts first") < \
        claims["caption"].read_text().index("- Profile")


def test_the_page_and_the_captions_count_pool_draws_alike():
    import pandas as pd

    from prunefuse import study
    from prunefuse.report import _pool_draws

    def run(rid, size, digest, seed):
        return {"run_id": rid, "seed": seed,
                "data": {"pool": {"size": size, "indices_sha256": digest}}}

    runs = [run("r1", 4000, "a" * 64, 0), run("r2", 4000, "a" * 64, 0),
            run("r3", 4000, "b" * 64, 1), run("r4", 2000, "c" * 64, 0), {"data": {}}]
    expected = ("1 draw of 1 seed at 2,000 images; 2 draws of 2 seeds at 4,000 images; "
                "1 run(s) whose record does not name its draw")
    assert _pool_draws(runs) == expected
    # A results table lists a run once per budget; the caption counts it once.
    table = pd.DataFrame([{"run_id": r.get("run_id", "r5"), "seed": r.get("seed", 0),
                           "pool": r["data"].get("pool", {}).get("size", 4000),
                           "pool_draw": (r["data"].get("pool") or {}).get("indices_sha256",
                                                                           "")[:12] or None}
                          for r in runs for _ in range(2)])
    assert study.pool_draws(table) == ("Pools (sha256 of the drawn indices, in each "
                                       f"config.json): {expected}")


def test_kd_strength_is_judged_on_the_kd_blocks_in_the_claimed_direction():
    import pandas as pd

    from prunefuse.study import judge_rows

    ours = [84.0, 85.0, 83.5, 84.2, 85.1, 83.9, 84.4, 84.8]
    df = pd.concat([_cell("pf_fused_kd_ours", "kd", 4000, 0.3, ours),
                    _cell("pf_fused_kd_authors", "kd", 4000, 0.3, [a + 1.5 for a in ours])],
                   ignore_index=True)
    row = judge_rows(df).set_index("id").loc["KDOursAuthors"]
    assert row["n"] == 8 and row["mean"] == pytest.approx(-1.5)
    assert row["verdict"] == "supported" and "superiority" in row["hypothesis"]
    assert row["comparison"].startswith("fused + our KD - fused + the authors' KD")


def test_convergence_is_a_bound_on_the_gain_of_a_longer_schedule():
    import pandas as pd

    from prunefuse.study import judge_rows

    dense = [86.0, 87.1, 85.4, 86.6, 87.0]
    small = pd.concat([_cell("dense", "convergence", 4000, 0.3, dense),
                       _cell("dense_long", "convergence", 4000, 0.3,
                             [d + 0.3 + 0.1 * (i % 2) for i, d in enumerate(dense)])],
                      ignore_index=True)
    row = judge_rows(small).set_index("id").loc["Converged"]
    assert row["verdict"] == "supported"  # gains about 0.34 points, clearly under 1
    large = small.assign(acc_pct=[*dense, *[d + 2.0 for d in dense]])
    assert judge_rows(large).set_index("id").loc["Converged", "verdict"] == "not supported"


def test_budgets_draws_every_arm_and_difference_at_every_budget(tmp_path, monkeypatch):
    import pandas as pd

    from prunefuse import study

    cells = []
    for group, budget in (("budgets", 0.1), ("budgets", 0.2), ("main", 0.3)):
        for role, shift in (("dense", 0.0), ("pf", -1.0), ("pf_authors", 0.1), ("random", -2.0)):
            acc = [70 + 50 * budget + shift + 0.2 * s + 0.05 * (s % 2) for s in range(4)]
            c = _cell(role, group, 4000, budget, acc)
            c["final_pct"] = c["acc_pct"]
            c["block"] = [f"{group}/4000/s{s}" for s in range(4)]
            c["run_id"] = [f"{role}-{budget}-{s}" for s in range(4)]
            c["pool_draw"] = [f"draw-{s}" for s in range(4)]
            c["finished"], c["git_commit"], c["device"], c["threads"], c["cpu"] = (
                "2026-12-07T10:00:00", "abc", "cpu", 1, "m")
            c["dataset"], c["arch"] = "fashion-mnist", "resnet20"
            c["selection_macs"] = c["selection_seconds"] = c["run_seconds"] = 1.0
            cells.append(c)
    df = pd.concat(cells, ignore_index=True)
    acc, judged = study.budget_rows(df)
    assert sorted(set(acc["budget_pct"])) == [10.0, 20.0, 30.0] and len(acc) == 12
    assert set(judged["id"]) == {"PFDense", "AuthorsDense", "PFRandom", "DenseRandom"}
    assert set(judged["budget"]) == {"10%", "20%", "30%"}
    pf = judged.set_index(["id", "budget"]).loc[("PFDense", "10%")]
    assert pf["mean"] == pytest.approx(-1.0) and pf["n"] == 4
    monkeypatch.setattr(study, "study_rows", lambda records, **kw: df)
    paths = study.study_budgets("unused", tmp_path, profile="study")
    assert {"csv", "md", "tex", "pdf", "png", "caption"} <= set(paths)
    md = paths["md"].read_text()
    assert md.splitlines()[0] == "| arm | 10% | 20% | 30% |" and "(n=4)" in md
    assert paths["caption"].read_text().index("Answer first") < \
        paths["caption"].read_text().index("- Profile")


def test_study_rows_see_the_batchs_overrides_and_never_the_set_aside_runs(tmp_path):
    import shutil

    from prunefuse.comparisons import study_plan
    from prunefuse.config import make_config, run_id
    from prunefuse.study import study_rows

    over = {"target_epochs": 2}
    first = study_plan("study", dataset="synthetic", overrides=over)[0]
    assert first.run_id not in {r.run_id for r in study_plan("study", dataset="synthetic")}
    cfg = make_config("study", **first.params)
    run = tmp_path / "runs" / run_id(cfg)
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "config": cfg, "run_id": run.name, "device_name": "cpu", "threads": 1,
        "cpu": "some CPU", "torch_version": "2.x",
        "target": {"arch": cfg["arch"], "params": 1, "macs_per_sample": 1}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({
        "kind": "target", "budget": b, "labeled": 10, "final_test_acc": 0.5,
        "best_test_acc": 0.5, "best_epoch": 2, "epochs": [], "cumulative_selection_macs": 1,
        "cumulative_selection_seconds": 1.0, "target_training_macs": 1,
        "teacher_forward_macs": 0, "training_seconds": 1.0}) + "\n" for b in cfg["eval_budgets"]))
    (run / "DONE").write_text("2026-12-07T10:00:00+0000\n")
    assert run.name == first.run_id
    assert study_rows(tmp_path, profile="study", dataset="synthetic").empty  # other ids
    rows = study_rows(tmp_path, profile="study", dataset="synthetic", overrides=over)
    assert set(rows["run_id"]) == {first.run_id} and set(rows["arm"]) == {first.arm}
    shutil.copytree(run, tmp_path / SET_ASIDE / f"{run.name}.0")  # another machine's copy
    again = study_rows(tmp_path, profile="study", dataset="synthetic", overrides=over)
    assert len(again) == len(rows)


def test_one_pool_size_gives_no_slope():
    from prunefuse import study

    fit = study.slope([math.log2(4000)] * 15, [0.1 * i for i in range(15)])
    assert math.isnan(fit["slope"]) and math.isnan(fit["low"]) and fit["n"] == 15
    df = _fake_study()
    rows, fits = study.scaling_rows(df[df["pool"] == 4000])
    assert set(fits["trend"]) == {"cannot be fitted yet (one pool size)"}
