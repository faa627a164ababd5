"""The experiment runner: every selector end to end, records, resume after a kill, config errors."""

import copy
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prunefuse.cli import main
from prunefuse.config import ConfigError, make_config, run_id
from prunefuse.demo import run_demo
from prunefuse.estimate import run_macs
from prunefuse.experiment import run_experiment
from prunefuse.runs import read_jsonl, read_scores, results_table, write_report

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _strip_time(rows):
    """Metrics without wall-clock fields, which legitimately differ between runs."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()
                    if "seconds" not in k and k != "images_per_s"}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return clean(rows)


@pytest.mark.parametrize("selector,score", [("prunefuse", "least_confidence"),
                                            ("prunefuse", "kcenter"), ("dense", "entropy"),
                                            ("svp", "margin"), ("random", "random"),
                                            ("prunefuse", "feature_dropout_mi")])
@pytest.mark.slow
def test_smoke_run_of_each_selector(tmp_path, selector, score):
    run = run_experiment(profile="smoke", out=tmp_path, selector=selector, score=score,
                         progress=False)
    assert (run / "DONE").exists()
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["selector"] == selector and record["config"]["seed"] == 0
    assert {"package_version", "git_commit", "torch_version", "device_name"} <= set(record)
    assert record["cpu"].endswith(f", {torch.backends.cpu.get_cpu_capability()}, "
                                  f"{os.cpu_count()} cores")
    metrics = read_jsonl(run / "metrics.jsonl")
    rounds = [m for m in metrics if m["kind"] == "round"]
    targets = [m for m in metrics if m["kind"] == "target"]
    assert [r["labeled"] for r in rounds] == [102, 154]  # 20% and 30% of 512
    assert len(targets) == 2 and all(len(t["epochs"]) == 1 for t in targets)
    labeled = json.loads((run / "selections" / "round_02.json").read_text())["labeled"]
    assert len(labeled) == len(set(labeled)) == 154
    ledger = json.loads((run / "ledger.json").read_text())
    if selector == "random":
        assert ledger["selection_macs"] == 0
    else:
        assert ledger["macs"]["selector_training"] > 0 and ledger["macs"]["pool_scoring"] > 0
    assert (run / "index_map.json").exists() == (selector == "prunefuse")
    assert (ledger["macs"]["teacher_forward"] > 0) == (selector == "prunefuse")
    # The teacher's forwards are timed on their own, not inside the target's training.
    assert (ledger["seconds"]["teacher_forward"] > 0) == (selector == "prunefuse")
    assert all((t["teacher_forward_seconds"] > 0) == (selector == "prunefuse") for t in targets)
    assert sum(t["teacher_forward_seconds"] for t in targets) == pytest.approx(
        ledger["seconds"]["teacher_forward"])
    # A finished run is skipped, not repeated.
    mtime = (run / "metrics.jsonl").stat().st_mtime_ns
    assert run_experiment(profile="smoke", out=tmp_path, selector=selector, score=score,
                          progress=False) == run
    assert (run / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_same_seed_same_selection(tmp_path):
    # device="cpu": bit-for-bit equal losses are promised on the CPU only (prunefuse.train);
    # without it, a machine with a GPU would run this on CUDA.
    kw = {"profile": "smoke", "progress": False, "eval_budgets": [0.3], "device": "cpu"}
    a = run_experiment(out=tmp_path / "a", **kw)
    b = run_experiment(out=tmp_path / "b", **kw)
    for r in range(3):
        name = f"round_{r:02d}.json"
        sa = json.loads((a / "selections" / name).read_text())
        sb = json.loads((b / "selections" / name).read_text())
        assert sa["added"] == sb["added"]
    assert _strip_time(read_jsonl(a / "metrics.jsonl")) == _strip_time(read_jsonl(b / "metrics.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("v2", [{}, {"t_sync": 1, "v2_derive": "reprune"}], ids=["v1", "v2"])
def test_kill_and_resume_matches_uninterrupted(tmp_path, v2):
    overrides = ["dataset=synthetic", "budgets=0.2,0.3,0.4,0.5", "selector_epochs=2",
                 "target_epochs=2", "device=cpu"]  # equal metrics: promised on the CPU
    overrides += [f"{k}={v}" for k, v in v2.items()]
    cmd = [sys.executable, "-m", "prunefuse.cli", "run", "--profile", "smoke", "--no-progress",
           "--out", str(tmp_path / "killed"), *overrides]
    cfg = make_config("smoke", budgets=[0.2, 0.3, 0.4, 0.5], selector_epochs=2, target_epochs=2,
                      device="cpu", **v2)
    run_dir = tmp_path / "killed" / run_id(cfg)
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once at least one round has committed
        state = run_dir / "state.json"
        if state.exists() and len(json.loads(state.read_text())["steps"]) >= 3:
            break
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "DONE").exists()
    steps_at_kill = json.loads((run_dir / "state.json").read_text())["steps"]
    assert 3 <= len(steps_at_kill) < 9
    assert subprocess.run(cmd).returncode == 0  # resume
    assert (run_dir / "DONE").exists()
    ref = run_experiment(cfg, out=tmp_path / "ref", progress=False)
    for name in sorted(p.name for p in (ref / "selections").glob("round_??.json")):
        assert json.loads((run_dir / "selections" / name).read_text())["labeled"] == \
            json.loads((ref / "selections" / name).read_text())["labeled"], name
    for path in sorted((ref / "selections").glob("round_??.scores.npz")):  # the scores too
        r = int(path.name[6:8])
        a, b = read_scores(run_dir, r), read_scores(ref, r)
        assert (a["picks"] == b["picks"]).all() and (a["values"] == b["values"]).all()
    assert _strip_time(read_jsonl(run_dir / "metrics.jsonl")) == \
        _strip_time(read_jsonl(ref / "metrics.jsonl"))
    assert json.loads((run_dir / "ledger.json").read_text())["macs"] == \
        json.loads((ref / "ledger.json").read_text())["macs"]
    assert not list(run_dir.rglob("*.tmp"))
    for p in ref.glob("index_map_round_*.json"):  # V2: the same derived index maps
        assert json.loads((run_dir / p.name).read_text()) == json.loads(p.read_text())
    assert len(list(ref.glob("index_map_round_*.json"))) == (3 if v2 else 0)


def test_target_from_saved_selection(tmp_path):
    source = run_experiment(profile="smoke", out=tmp_path, progress=False)
    reuse = run_experiment(profile="smoke", out=tmp_path, target_init="scratch", kd_lambda=0.0,
                           selection_from=str(source), progress=False)
    for r in range(3):
        name = f"round_{r:02d}.json"
        assert json.loads((reuse / "selections" / name).read_text())["labeled"] == \
            json.loads((source / "selections" / name).read_text())["labeled"]
    assert json.loads((reuse / "ledger.json").read_text())["macs"]["selector_training"] == 0
    # Labelled and costed as the selection it reused: the source's selection MACs per budget.
    table = results_table(tmp_path).set_index(["run_id", "budget"])
    assert set(table.loc[reuse.name, "method"]) == {"PruneFuse p=0.5 (scratch)"}
    assert table.loc[reuse.name, "selection_macs"].tolist() == \
        table.loc[source.name, "selection_macs"].tolist() and table["selection_macs"].min() > 0
    for override, line in [({"seed": 1}, "its seed=0 differs from this run's 1"),
                           ({"ratio": 0.7}, "its ratio=0.5 differs from this run's 0.7"),
                           ({"selector": "random"}, "its selector='prunefuse' differs from this "
                                                    "run's 'random'"),
                           ({"score": "entropy"}, "its score='least_confidence' differs"),
                           ({"arch": "resnet14"}, "its arch='resnet8' differs")]:
        with pytest.raises(ConfigError, match=f"selection_from={str(source)!r}: {line}"):
            run_experiment(profile="smoke", out=tmp_path / "x", target_init="scratch",
                           kd_lambda=0.0, selection_from=str(source), progress=False, **override)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("overrides,match", [
    ({"epochs": 3}, "unknown parameter 'epochs': did you mean 'target_epochs'\\?"),
    ({"ratio": 1.0}, "ratio=1.0: PruneFuse.s pruning ratio .* must be in \\(0, 1\\)"),
    ({"ratio": -0.1}, "ratio=-0.1: PruneFuse.s pruning ratio .* must be in \\(0, 1\\)"),
    ({"ratio": "0.5"}, "ratio='0.5': expected float or int, got str"),
    ({"budgets": [0.1, 1.5]}, "budgets=.*fraction in \\(0, 1\\]"),
    ({"budgets": [0.3, 0.2]}, "strictly increasing"),
    ({"arch": "resnet57"}, "arch='resnet57': unknown; choose one of"),
    ({"dataset": "cifar11"}, "dataset='cifar11': unknown"),
    ({"score": "confidence"}, "score='confidence': unknown"),
    ({"selector": "svp", "target_init": "fused"}, "need selector='prunefuse'"),
    ({"selector_epochs": True}, "selector_epochs=True: expected int, got bool"),
    ({"eval_budgets": [0.25]}, "not in budgets"),
    ({"eval_batch_size": 0}, "eval_batch_size=0: must be >= 1"),
    ({"compile": "yes"}, "compile='yes': expected bool, got str"),
    ({"fusion": "corner"}, "fusion='corner': unknown; choose one of"),
    ({"fusion": "fresh", "target_init": "scratch"}, "fusion='fresh': only applies with"),
    ({"selector_init": "fresh", "warm_start": True}, "selector_init='fresh' and warm_start"),
    ({"precision": "fp16"}, "precision='fp16': unknown; choose one of \\['bf16', 'fp32'\\]"),
    ({"cpu_precision": "fp16"}, "cpu_precision='fp16': unknown; choose one of \\['bf16', "
     "'fp32'\\]"),
    ({"schedule": "step"}, "schedule='step': unknown"),
    ({"t_sync": -1}, "t_sync=-1: must be >= 0"),
    ({"v2_derive": "reprune"}, "v2_derive='reprune': only applies with t_sync > 0"),
    ({"v2_derive": "copy", "t_sync": 1}, "v2_derive='copy': unknown"),
    ({"t_sync": 1, "selector": "svp", "kd_lambda": 0, "target_init": "scratch"},
     "t_sync=1: PruneFuse V2 needs selector='prunefuse'"),
    ({"t_sync": 1, "warm_start": True}, "t_sync=1: V2 derives"),
    ({"t_sync": 1, "eval_budgets": [0.3]}, "eval_budgets must include \\[0.2\\]"),
])
def test_config_errors_before_compute(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        run_experiment(profile="smoke", out=tmp_path, **overrides)
    assert not tmp_path.joinpath("x").exists() and not list(tmp_path.iterdir())


def test_how_to_compute_keys_do_not_change_the_run_id():
    assert make_config("paper")["eval_batch_size"] is None  # the device default
    base = make_config("smoke")
    assert run_id(make_config("smoke", eval_batch_size=64)) == run_id(base)
    assert run_id(make_config("smoke", compile=True)) == run_id(base)
    assert run_id(make_config("smoke", device="cpu")) == run_id(base)
    assert run_id(make_config("smoke", batch_size=32)) != run_id(base)


def test_new_parameters_at_their_default_keep_the_run_id():
    base = make_config("smoke")
    defaults = {"selector_init": "same", "fusion": "indices", "t_sync": 0,
                "v2_derive": "gather", "precision": "bf16", "cpu_precision": "fp32",
                "kd_t2": True, "freeze_fused_epochs": 0, "v2_loop": "ours", "prune_steps": 1,
                "report": "final", "reading": "ours"}
    assert {k: base[k] for k in defaults} == defaults
    assert run_id(make_config("smoke", **defaults)) == run_id(base) == "synthetic-resnet8-" \
        "pf0.5-fused-kd0.5-least_confidence-s0-" + run_id(base).rsplit("-", 1)[1]
    others = [{"selector_init": "fresh"}, {"fusion": "conv_only"}, {"t_sync": 1},
              {"t_sync": 1, "v2_derive": "reprune"}, {"precision": "fp32"},
              {"cpu_precision": "bf16"}, {"schedule": "cosine"}, {"kd_t2": False},
              {"freeze_fused_epochs": 1}, {"prune_steps": 5}, {"reading": "authors"},
              {"eval_every": 1, "report": "best"}]
    ids = {run_id(make_config("smoke", **o)) for o in others}
    assert len(ids) == len(others) and run_id(base) not in ids


def test_cli_run_dry_run_report_and_errors(tmp_path, capsys):
    assert main(["run", "--profile", "smoke", "--dry-run", "ratio=0.6", "budgets=0.2,0.3"]) == 0
    out = capsys.readouterr().out
    assert '"ratio": 0.6' in out and "run id:" in out
    assert main(["run", "--profile", "smoke", "ratio=1.2", "--out", str(tmp_path)]) == 2
    assert "ratio=1.2: PruneFuse's pruning ratio (the fraction of channels removed) must be " \
        "in (0, 1)" in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "ratoi=0.5", "--out", str(tmp_path)]) == 2
    assert "unknown parameter 'ratoi'" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    run_experiment(profile="smoke", out=tmp_path, progress=False)
    run_experiment(profile="smoke", out=tmp_path, seed=1, progress=False)
    assert main(["report", str(tmp_path)]) == 0
    paths = write_report(tmp_path)
    summary = paths["summary"].read_text().splitlines()
    assert summary[0].startswith("dataset,arch,method,score,budget,acc_mean,acc_std")
    assert len(summary) == 3 and summary[1].split(",")[-4] == "2"  # n_seeds == 2
    assert "± " in paths["markdown"].read_text()


def test_help_lists_every_parameter(capsys):
    from prunefuse.config import PARAMS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for key in PARAMS:
        assert key in text
    assert "default" in text and "fraction of the pool" in text


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not FMNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_demo_code_path_on_fashion_mnist(tmp_path, capsys):
    result = run_demo(tmp_path, progress=False, max_train=1500, max_test=500, arch="resnet8",
                      selector_epochs=10, target_epochs=10)
    table = result["table"]
    assert sorted(table["method"].unique()) == ["PruneFuse p=0.5", "SVP (resnet8)", "dense AL",
                                                "random"]
    last = table[table["budget"] == 0.2]
    assert (last["final_test_acc"] > 0.3).all(), last  # chance is 0.1
    assert all(p.exists() for p in result["figure"])
    caption = (tmp_path / "demo.caption.md").read_text()
    assert "n=1" in caption and "no difference between methods is evidence" in caption
    out = capsys.readouterr().out
    assert "| PruneFuse p=0.5 |" in out and "selection (GMACs)" in out
    assert results_table(tmp_path)["selection_macs"].max() > 0


# -- one charging rule (docs/method.md, "Cost accounting") ------------------------------------

def _closed_form(run, score="least_confidence"):
    """The ledger a run must have, from its config and per-sample MACs alone."""
    rec = json.loads((run / "config.json").read_text())
    cfg, n_test = rec["config"], rec["test_size"]
    sel = (rec["selector_model"] or {}).get("macs_per_sample", 0)
    tgt = rec["target"]["macs_per_sample"]
    sizes = [len(json.loads(p.read_text())["labeled"])
             for p in sorted((run / "selections").glob("round_??.json"))]
    pool = rec["pool_size"]
    es, et = cfg["selector_epochs"], cfg["target_epochs"]
    model = cfg["selector"] != "random" and score != "random"
    pf = cfg["selector"] == "prunefuse"
    selecting = sizes[:-1] if model else []  # selectors trained on L_0 .. L_{R-1}
    expect = {
        "selector_training": sum(3 * sel * n * es for n in selecting),
        "pool_scoring": sum(sel * (pool - n) for n in selecting),
        # PruneFuse's selector on the last labeled set selects nothing: fusion cost. With
        # score=random no selector selects, so every budget's selector is fusion cost.
        "fusion_source": (3 * sel * sizes[-1] * es if model else sum(3 * sel * n * es
                                                                     for n in sizes[1:]))
        if pf else 0,
        "teacher_forward": sum(sel * n * et for n in sizes[1:]) if pf else 0,
        "target_training": sum(3 * tgt * n * et for n in sizes[1:]),
    }
    n_sel_evals = (len(selecting) + (1 if pf and model else 0)) if model else (
        len(sizes) - 1 if pf else 0)
    expect["evaluation"] = sel * n_test * n_sel_evals + tgt * n_test * (len(sizes) - 1)
    return expect


# The charging rule, closed form (docs/method.md, "Cost accounting"): one sample-epoch of
# training costs 3 forwards, scoring a pool image 1, KD one teacher forward per training image
# and epoch, a test image 1. A pool of 1000 images and 100 test images; per-image forward MACs
# T (target) and S (selector); 2 selector and 3 target epochs; labeled sets L_0..L_3 of 20,
# 100, 200 and 300 images (2% at random, then budgets 10, 20 and 30%).
T, S, ES, ET, N_TEST = 1000, 250, 2, 3, 100
SIX = ("selector_training", "pool_scoring", "fusion_source", "teacher_forward",
       "target_training", "evaluation")


def _expected(**macs):
    return {c: macs.get(c, 0) for c in SIX}


# Selection: the selectors trained on L_0, L_1, L_2 and their pool passes (each selector is
# also tested once: S * N_TEST * 3 of evaluation).
SELECT = {"selector_training": 3 * S * ES * (20 + 100 + 200),
          "pool_scoring": S * (980 + 900 + 800)}
TARGETS = 3 * T * ET * (100 + 200 + 300)  # a target at every budget
TARGET_TESTS = T * N_TEST * 3 * 3  # 3 targets, tested after each of their 3 epochs
CHARGES = {
    "dense AL": ({"selector": "dense"}, _expected(
        **SELECT, target_training=TARGETS, evaluation=S * N_TEST * 3 + TARGET_TESTS)),
    # PruneFuse: the selector on L_3 selects nothing, so it is fusion cost (and tested once);
    # the teacher forwards every training image of each target once per target epoch.
    "PruneFuse": ({}, _expected(
        **SELECT, fusion_source=3 * S * ES * 300, teacher_forward=S * ET * (100 + 200 + 300),
        target_training=TARGETS, evaluation=S * N_TEST * 4 + TARGET_TESTS)),
    "PruneFuse, fused, no KD": ({"kd_lambda": 0.0}, _expected(
        **SELECT, fusion_source=3 * S * ES * 300, target_training=TARGETS,
        evaluation=S * N_TEST * 4 + TARGET_TESTS)),
    "PruneFuse's selection, target from scratch": (
        {"kd_lambda": 0.0, "target_init": "scratch"},
        _expected(**SELECT, target_training=TARGETS, evaluation=S * N_TEST * 3 + TARGET_TESTS)),
    # score=random: no selector selects, each budget's is trained as the fusion source only
    "PruneFuse, score=random": ({"score": "random"}, _expected(
        fusion_source=3 * S * ES * (100 + 200 + 300), teacher_forward=S * ET * 600,
        target_training=TARGETS, evaluation=S * N_TEST * 3 + TARGET_TESTS)),
    "random": ({"selector": "random", "score": "random"}, _expected(
        target_training=TARGETS, evaluation=TARGET_TESTS)),
    # k-centers also forwards the labeled set: the whole pool, every round
    "dense AL, k-centers": ({"selector": "dense", "score": "kcenter"}, _expected(
        selector_training=SELECT["selector_training"], pool_scoring=S * 1000 * 3, target_training=TARGETS,
        evaluation=S * N_TEST * 3 + TARGET_TESTS)),
    "SVP": ({"selector": "svp"}, _expected(
        **SELECT, target_training=TARGETS, evaluation=S * N_TEST * 3 + TARGET_TESTS)),
    # a target at 30% only, tested after its last epoch only
    "PruneFuse, last budget, eval_every=0": ({"eval_budgets": [0.3], "eval_every": 0},
                                             _expected(
        **SELECT, fusion_source=3 * S * ES * 300, teacher_forward=S * ET * 300,
        target_training=3 * T * ET * 300, evaluation=S * N_TEST * 4 + T * N_TEST)),
    "dense AL, eval_every=2": ({"selector": "dense", "eval_every": 2}, _expected(
        **SELECT, target_training=TARGETS, evaluation=S * N_TEST * 3 + T * N_TEST * 2 * 3)),
    # V2, t_sync=1: the targets at 10 and 20% yield the next selectors, so their training,
    # their teachers and their fusion sources (each tested) are selection cost
    "PruneFuse V2, t_sync=1": ({"t_sync": 1}, _expected(
        selector_training=SELECT["selector_training"] + sum(
            3 * T * ET * n + S * ET * n + 3 * S * ES * n for n in (100, 200)),
        pool_scoring=SELECT["pool_scoring"], fusion_source=3 * S * ES * 300,
        teacher_forward=S * ET * 300, target_training=3 * T * ET * 300,
        evaluation=S * N_TEST * (3 + 2 + 1) + TARGET_TESTS)),
}


@pytest.mark.parametrize("name", list(CHARGES))
def test_run_charges_closed_form(name):
    from prunefuse.charges import run_charges

    overrides, expect = CHARGES[name]
    cfg = make_config("smoke", **{"initial_fraction": 0.02, "budgets": [0.1, 0.2, 0.3],
                                  "selector_epochs": ES, "target_epochs": ET, "eval_every": 1,
                                  **overrides})
    got = dict.fromkeys(SIX, 0)
    for c in run_charges(cfg, pool=1000, n_test=N_TEST, target_macs=T, selector_macs=S):
        got[c.category] += c.macs
    assert got == expect


def test_run_charges_book_each_work_in_its_round_and_step():
    """PruneFuse: each round selects with the selector trained on the last labeled set, then
    trains its target; the fusion source is a step of its own only where nothing selects
    with it (the last round)."""
    from prunefuse.charges import run_charges

    cfg = make_config("smoke", initial_fraction=0.02, budgets=[0.1, 0.2, 0.3],
                      selector_epochs=ES, target_epochs=ET, eval_every=1)
    got = [(c.round, c.step, c.work, c.macs) for c in run_charges(
        cfg, pool=1000, n_test=N_TEST, target_macs=T, selector_macs=S)]
    want = []
    for r, (before, after) in enumerate(((20, 100), (100, 200), (200, 300)), start=1):
        want += [(r, "select", "selector", 3 * S * ES * before),
                 (r, "select", "selector_test", S * N_TEST),
                 (r, "select", "scoring", S * (1000 - before))]
        if r == 3:
            want += [(r, "target", "fusion_source", 3 * S * ES * after),
                     (r, "target", "fusion_source_test", S * N_TEST)]
        want += [(r, "target", "target", 3 * T * ET * after),
                 (r, "target", "teacher", S * ET * after),
                 (r, "target", "target_test", T * N_TEST * 3)]
    assert got == want


@pytest.mark.parametrize("selector,score", [("prunefuse", "least_confidence"),
                                            ("dense", "least_confidence"),
                                            ("svp", "least_confidence"), ("random", "random"),
                                            ("prunefuse", "random")])
@pytest.mark.slow
def test_ledger_closed_form(tmp_path, selector, score):
    run = run_experiment(profile="smoke", out=tmp_path, selector=selector, score=score,
                         eval_every=0, progress=False)
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["macs"] == _closed_form(run, score)
    assert run_macs(json.loads((run / "config.json").read_text())["config"]) == ledger["macs"]
    targets = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "target"]
    rounds = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "round"]
    # Selection cost of a budget is what chose its labeled set, and nothing else.
    assert [t["cumulative_selection_macs"] for t in targets] == [
        r["cumulative_selection_macs"] for r in rounds]
    assert all(t["evaluation_seconds"] > 0 and len([e for e in t["epochs"] if "test_acc" in e])
               == 1 for t in targets)
    if selector == "prunefuse" and score == "random":
        # No selector selects; each budget's is trained only as the fusion source.
        assert ledger["selection_macs"] == 0 and len(list(run.glob("cache/*.pt"))) == 2
    if score != "random":
        assert (run / "selections" / "round_01.scores.npz").exists()


def test_selection_macs_ratio_is_per_sample_ratio(tmp_path):
    """At equal rounds and score, PruneFuse / dense selection MACs = their per-sample MACs."""
    runs = {s: run_experiment(profile="smoke", out=tmp_path, selector=s, progress=False)
            for s in ("prunefuse", "dense")}
    recs = {s: json.loads((r / "config.json").read_text()) for s, r in runs.items()}
    want = (recs["dense"]["selector_model"]["macs_per_sample"]
            / recs["prunefuse"]["selector_model"]["macs_per_sample"])
    cum = {s: [m["cumulative_selection_macs"] for m in read_jsonl(r / "metrics.jsonl")
               if m["kind"] == "target"] for s, r in runs.items()}
    for d, p in zip(cum["dense"], cum["prunefuse"]):
        assert d / p == pytest.approx(want, rel=1e-12)


# -- PruneFuse V2 (our interpretation) and the readings to compare ----------------------------

def _v2_closed_form(run):
    """V1's ledger moved and extended by V2's syncs: after round r (r % t_sync == 0, r < R)
    the target at L_r is charged to selection with its teacher forwards, and round r+1's
    selector is trained (and tested) again on L_r, from the derived start."""
    expect = _closed_form(run)
    rec = json.loads((run / "config.json").read_text())
    cfg = rec["config"]
    sel, tgt = rec["selector_model"]["macs_per_sample"], rec["target"]["macs_per_sample"]
    sizes = [len(json.loads(p.read_text())["labeled"])
             for p in sorted((run / "selections").glob("round_??.json"))]
    es, et = cfg["selector_epochs"], cfg["target_epochs"]
    syncs = [sizes[r] for r in range(1, len(sizes) - 1) if r % cfg["t_sync"] == 0]
    for n in syncs:
        expect["selector_training"] += 3 * tgt * n * et + sel * n * et + 3 * sel * n * es
        expect["target_training"] -= 3 * tgt * n * et
        expect["teacher_forward"] -= sel * n * et
        expect["evaluation"] += sel * rec["test_size"]
    return expect, syncs


@pytest.fixture(scope="module")
def v1_v2_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("v2")
    kw = {"profile": "smoke", "out": out, "progress": False, "eval_every": 0, "device": "cpu",
          "budgets": [0.2, 0.3, 0.4]}
    return {name: run_experiment(**kw, **o) for name, o in (
        ("v1", {}), ("gather", {"t_sync": 1}), ("reprune", {"t_sync": 1, "v2_derive": "reprune"}),
        ("gather2", {"t_sync": 2}))}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gather", "reprune", "gather2"])
def test_v2_ledger_closed_form(v1_v2_runs, name):
    run = v1_v2_runs[name]
    expect, syncs = _v2_closed_form(run)
    assert len(syncs) == {"gather2": 1}.get(name, 2)
    assert json.loads((run / "ledger.json").read_text())["macs"] == expect
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert run_macs(cfg) == expect  # the dry run's estimate is the ledger, before running


@pytest.mark.slow
def test_v2_gather_and_reprune_differ_as_they_should(v1_v2_runs):
    from prunefuse.prune import pruned_from_index_map

    rec = {k: _strip_time(read_jsonl(r / "metrics.jsonl")) for k, r in v1_v2_runs.items()}
    first = json.loads((v1_v2_runs["v1"] / "index_map.json").read_text())
    # Before the first sync every run is V1: the same round 1 and the same target at 20%.
    for name in ("gather", "reprune"):
        assert rec[name][:2] == rec["v1"][:2]
        assert json.loads((v1_v2_runs[name] / "index_map.json").read_text()) == first
    maps = {name: [json.loads((v1_v2_runs[name] / f"index_map_round_{r:02d}.json").read_text())
                   for r in (1, 2)] for name in ("gather", "reprune")}
    assert maps["gather"] == [first, first]  # gather keeps the kept indices
    # Re-pruning ranks the trained dense net's channels by L2: after one smoke epoch the
    # trained (kept) filters may still be the largest, so the map may or may not move; what
    # must hold is that it is a valid pruning at the same widths.
    for m in maps["reprune"]:  # a valid channel pruning of the target, at the same widths
        pruned = pruned_from_index_map("resnet8", 10, m)
        assert [len(v[0]) for v in m.values() if v] == [len(v[0]) for v in first.values() if v]
        assert pruned(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # After the sync the selector starts elsewhere: round 2's selector is not V1's.
    sel_acc = {k: [m.get("selector_test_acc") for m in v if m["kind"] == "round"]
               for k, v in rec.items()}
    assert sel_acc["gather"][0] == sel_acc["v1"][0]
    # (their accuracies after one smoke epoch may well be equal: chance level)
    for name in ("gather", "reprune"):
        cache = [p.name for p in (v1_v2_runs[name] / "cache").iterdir()]
        assert any(n.endswith("-v2-round_01.pt") and n.startswith("selector-") for n in cache)
    assert not any("-v2-" in p.name for p in (v1_v2_runs["v1"] / "cache").iterdir())
    two = v1_v2_runs["gather2"]  # T_sync = 2 with 3 rounds: one sync, after round 2
    assert [(two / f"index_map_round_{r:02d}.json").exists() for r in (1, 2)] == [False, True]
    assert rec["gather2"][:4] == rec["v1"][:4]  # rounds 1-2 and the target at 20%: V1's


def test_selector_init_fresh_draws_a_new_init_per_round(tmp_path):
    from prunefuse.experiment import Experiment
    from prunefuse.fuse import gather
    from prunefuse.models import build_model

    for selector in ("prunefuse", "svp"):
        same = Experiment(make_config("smoke", selector=selector,
                                      **({} if selector == "prunefuse" else
                                         {"target_init": "scratch", "kd_lambda": 0})),
                          tmp_path, progress=False)
        fresh = Experiment({**same.cfg, "selector_init": "fresh"}, tmp_path, progress=False)
        a, b = same.selector_start(1), same.selector_start(2)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values()))
        f1, f1b, f2 = fresh.selector_start(1), fresh.selector_start(1), fresh.selector_start(2)
        assert all(torch.equal(x, y) for x, y in zip(f1.state_dict().values(),
                                                     f1b.state_dict().values()))
        assert not torch.equal(f1.conv1.weight, f2.conv1.weight)
        assert not torch.equal(f1.conv1.weight, a.conv1.weight)
        want = build_model("resnet8", 10, seed=fresh.seed("selector_init", 2))
        if selector == "prunefuse":  # the pruned architecture, cut from a fresh dense init
            want = gather(want, copy.deepcopy(same.selector_init), same.index_map)
        assert all(torch.equal(x, y) for x, y in zip(f2.state_dict().values(),
                                                     want.state_dict().values()))
        cpu = {**same.cfg, "device": "cpu"}  # there, cpu_precision decides (default fp32)
        amp = {(p, c): Experiment({**cpu, "precision": p, "cpu_precision": c}, tmp_path,
                                  progress=False)._train_kw()["amp"]
               for p in ("bf16", "fp32") for c in ("bf16", "fp32")}
        assert amp == {("bf16", "bf16"): True, ("fp32", "bf16"): True,
                       ("bf16", "fp32"): False, ("fp32", "fp32"): False}


@pytest.mark.parametrize("overrides", [{"fusion": "fork", "selector_init": "fresh"},
                                       {"fusion": "conv_only", "schedule": "constant",
                                        "precision": "fp32"}])
@pytest.mark.slow
def test_variants_run_end_to_end(tmp_path, overrides):
    base = run_experiment(profile="smoke", out=tmp_path, progress=False, eval_budgets=[0.3],
                          device="cpu")
    run = run_experiment(profile="smoke", out=tmp_path, progress=False, eval_budgets=[0.3],
                         device="cpu", **overrides)
    assert (run / "DONE").exists() and run != base
    assert json.loads((run / "config.json").read_text())["config"] == \
        make_config("smoke", eval_budgets=[0.3], device="cpu", **overrides)
    targets = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "target"]
    base_targets = [m for m in read_jsonl(base / "metrics.jsonl") if m["kind"] == "target"]
    assert targets[0]["epochs"][0]["train_loss"] != base_targets[0]["epochs"][0]["train_loss"]


def test_disk_full_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    from prunefuse import runs

    path = tmp_path / "record.json"
    runs.atomic_write_json(path, {"v": 1})
    real_fsync, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full)
    for write in (lambda: runs.atomic_write_json(path, {"v": 2}),
                  lambda: runs.atomic_torch_save({"v": 2}, path)):
        with pytest.raises(runs.DiskFullError) as info:
            write()
        assert str(info.value) == f"disk full: {path}" and info.value.errno == errno.ENOSPC
        assert json.loads(path.read_text()) == {"v": 1}  # the old version, untouched
        assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]  # no temp file
    # A run whose disk fills mid-way: one line, exit 1; the same command then finishes it,
    # with the metrics of a run that never stopped.
    fills_at = 6

    def fill_later(fd):
        calls.append(fd)
        if len(calls) == fills_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    calls.clear()
    monkeypatch.setattr(runs.os, "fsync", fill_later)
    out = tmp_path / "runs"
    args = ["run", "--profile", "smoke", "--out", str(out), "--no-progress", "selector=random"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    (run_dir,) = out.iterdir()
    assert err.startswith(f"prunefuse run: error: disk full: {run_dir}/") and "\n" not in err
    monkeypatch.setattr(runs.os, "fsync", real_fsync)
    assert main(args) == 0 and (run_dir / "DONE").exists()
    again = run_experiment(profile="smoke", out=tmp_path / "whole", selector="random",
                           progress=False)

    def strip(rows):
        return [{k: v for k, v in m.items() if "seconds" not in k and k != "epochs"}
                for m in rows]

    assert strip(read_jsonl(run_dir / "metrics.jsonl")) == strip(read_jsonl(again / "metrics.jsonl"))


@pytest.mark.slow
def test_v2_is_v1_until_its_first_sync(tmp_path):
    """Before its first synchronisation V2 selects and trains exactly as V1 (Table 2's first
    budget): on one machine, the first round's picks and target accuracy are V1's; from the
    next round V2 selects with the synced dense net and pays for it."""
    # enough epochs that the first target is above chance, so equal accuracies say something
    cfg = dict(dataset="synthetic", budgets=[0.2, 0.3], selector_epochs=3, target_epochs=6,
               device="cpu")
    v1 = run_experiment(make_config("smoke", **cfg), out=tmp_path, progress=False)
    v2 = run_experiment(make_config("smoke", **cfg, t_sync=1), out=tmp_path, progress=False)
    assert v1 != v2
    picks = [json.loads((run / "selections" / "round_01.json").read_text())["added"]
             for run in (v1, v2)]
    assert picks[0] == picks[1]
    rows = [{(r["kind"], r["round"]): r for r in read_jsonl(run / "metrics.jsonl")}
            for run in (v1, v2)]
    assert rows[0][("target", 1)]["final_test_acc"] == rows[1][("target", 1)]["final_test_acc"]
    assert rows[0][("round", 1)]["selection_macs"] == rows[1][("round", 1)]["selection_macs"]
    assert rows[0][("target", 1)]["final_test_acc"] > 0.2  # ten classes: chance is 0.1
    # the dense training V2 selects with is charged to selection once it has synced
    assert rows[1][("round", 2)]["cumulative_selection_macs"] > \
        rows[0][("round", 2)]["cumulative_selection_macs"]


def test_a_killed_writers_temporary_files_are_swept_before_the_run_goes_on(tmp_path):
    cfg = make_config(profile="smoke")
    run_dir = tmp_path / run_id(cfg)
    (run_dir / "selections").mkdir(parents=True)
    stray = [run_dir / ".metrics.jsonl.k3x9q_ab.tmp",  # as tempfile.mkstemp names them
             run_dir / "selections" / ".round_02.json.a1b2c3d4.tmp"]
    for path in stray:
        path.write_text("half a write")
    keep = [run_dir / "notes.tmp", run_dir / ".draft.tmp"]  # not ours: left alone
    for path in keep:
        path.write_text("the user's")
    assert run_experiment(cfg, out=tmp_path, progress=False) == run_dir
    assert (run_dir / "DONE").exists()
    assert not any(path.exists() for path in stray)
    assert all(path.read_text() == "the user's" for path in keep)
