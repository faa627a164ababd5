"""A given labeled set (labels_file, SVP's labeled_*.index format) replaces the selection: the
target trains on exactly those images, nothing is charged to selection, and a bad file is
refused in one line before any folder is made."""

import json

import numpy as np
import pytest

from prunefuse import explore as ex
from prunefuse.config import ConfigError, make_config, run_id
from prunefuse.estimate import run_macs
from prunefuse.experiment import run_experiment

POOL = 512  # the smoke profile's synthetic pool


@pytest.fixture
def labels(tmp_path):
    idx = np.random.default_rng(3).choice(POOL, 102, replace=False)
    path = tmp_path / "labeled_102.index"
    np.savetxt(path, idx, fmt="%d")  # as SVP's utils.save_index writes them
    return path, sorted(idx.tolist())


@pytest.mark.parametrize("selector", ["dense", "prunefuse"])
def test_the_target_trains_on_the_given_labels_with_no_selection_cost(tmp_path, labels, selector):
    path, idx = labels
    run = run_experiment(profile="smoke", out=tmp_path / "runs", progress=False,
                         selector=selector, labels_file=str(path), budgets=[0.2])
    sel = [json.loads(p.read_text()) for p in sorted((run / "selections").glob("round_*.json"))]
    assert sel[0]["labeled"] == idx and sel[-1]["labeled"] == idx and sel[-1]["added"] == []
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    target = [r for r in rows if r["kind"] == "target"]
    assert len(target) == 1 and target[0]["labeled"] == len(idx)
    assert target[0]["cumulative_selection_macs"] == 0
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["macs"]["selector_training"] == ledger["macs"]["pool_scoring"] == 0
    assert (ledger["macs"]["fusion_source"] > 0) == (selector == "prunefuse")
    assert ledger["macs"]["target_training"] > 0
    rec = json.loads((run / "config.json").read_text())["config"]
    assert rec["labels_file"] == str(path)
    assert run_macs(rec) == ledger["macs"]  # the dry run's estimate, before running
    costs = ex.round_costs(run).groupby("category")["macs"].sum()
    assert {c: int(costs.get(c, 0)) for c in ledger["macs"]} == ledger["macs"]


@pytest.mark.parametrize("content,match", [
    (None, "unreadable"),
    ("1\n2\nthree\n", "'three' is not an index"),
    ("1.5\n2\n", "whole-number pool indices"),
    ("", "empty file"),
    ("1\n1\n" + "\n".join(str(i) for i in range(2, 102)), "1 indices appear twice"),
    ("\n".join(str(i) for i in range(101)) + "\n512\n", "index 512 is outside the pool of 512"),
    ("\n".join(str(i) for i in range(50)), "holds 50 labels.*gives 102; set budgets=0.0976562"),
])
def test_a_bad_labels_file_is_refused_in_one_line_before_any_folder(tmp_path, content, match):
    path = tmp_path / "labels.index"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"labels_file=.*{match}") as err:
        run_experiment(profile="smoke", out=tmp_path / "runs", progress=False, selector="dense",
                       labels_file=str(path), budgets=[0.2])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_labels_file_config_rules(labels):
    path = str(labels[0])
    with pytest.raises(ConfigError, match="with labels_file the run trains one target"):
        make_config("smoke", labels_file=path)  # the smoke profile has two budgets
    with pytest.raises(ConfigError, match="cannot be combined with selection_from"):
        make_config("smoke", labels_file=path, budgets=[0.2], selection_from="x")
    with pytest.raises(ConfigError, match="no selection_from or labels_file"):
        make_config("smoke", labels_file=path, budgets=[0.2], t_sync=1)
    given = make_config("smoke", labels_file=path, budgets=[0.2])
    assert run_id(given) != run_id(make_config("smoke", budgets=[0.2]))


def test_a_changed_labels_file_is_refused_not_reported_as_finished(tmp_path, labels):
    path, idx = labels
    kw = dict(profile="smoke", out=tmp_path / "runs", progress=False, selector="dense",
              labels_file=str(path), budgets=[0.2])
    run = run_experiment(**kw)
    other = sorted(set(range(POOL)) - set(idx))[:len(idx)]
    path.write_text("\n".join(map(str, other)) + "\n")
    with pytest.raises(ConfigError, match=r"labels_file=.*holds other labels than the .* run "
                                          r"trained on") as err:
        run_experiment(**kw)
    assert "\n" not in str(err.value) and (run / "DONE").exists()
    path.write_text("\n".join(map(str, reversed(idx))))  # the same set, in another order
    assert run_experiment(**kw) == run
