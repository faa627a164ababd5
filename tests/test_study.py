"""The declared study: its plan, blocks on one machine, a pool per seed and run ids."""

import json
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


@pytest.mark.parametrize("key", ["smoke", "smoke-ext", "cpu", "cpu-ext", "paper-ext"])
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
