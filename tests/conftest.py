"""Fixtures that more than one test file uses: the smoke grid's batch, built once per session,
and a writer of finished run records with chosen numbers (no training)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from prunefuse import grid
from prunefuse.cli import main
from prunefuse.config import make_config, run_id
from prunefuse.experiment import run_experiment
from prunefuse.runs import is_done

# The smoke batch: the default artefacts and the optional variant ones (V2, the readings of
# fusion) through `prunefuse reproduce`, their runs and artefact notebooks executed in kernels
# (tests/test_notebooks.py), and beside them the runs of the evidence artefacts
# (tests/test_evidence.py), which those tests rebuild from the records.
SMOKE_BATCH = [*grid.default_artefacts("smoke"), "table2", "fusion_variants"]
EVIDENCE = ["main_comparison", "kd_strength", "authors_reading", "time_to_accuracy",
            "convergence", "claims"]


@pytest.fixture(scope="session")
def smoke_batch(tmp_path_factory) -> Path:
    """The folder of one smoke batch: plan.json, runs/, notebooks/ and figures/ of SMOKE_BATCH,
    and evidence/runs/ with every run of EVIDENCE. The evidence runs execute in-process, in
    their planned order, after the reproduce batch; the runs both plan are copied from it, not
    run twice. They sit in a folder of their own, as a batch of only those artefacts would
    leave them (test_evidence also builds them from one folder with the ablation's runs)."""
    out = tmp_path_factory.mktemp("smoke-batch")
    assert main(["reproduce", "--profile", "smoke", "--only", ",".join(SMOKE_BATCH),
                 "--out", str(out)]) == 0
    evidence = out / "evidence"
    evidence.mkdir()
    cwd = os.getcwd()
    os.chdir(evidence)  # selection_from is relative to the batch folder
    try:
        for run in grid.plan("smoke", artefacts=EVIDENCE).runs:
            if is_done(out / "runs" / run.run_id):
                shutil.copytree(out / "runs" / run.run_id, Path("runs") / run.run_id)
            else:
                run_experiment(profile="smoke", out="runs", progress=False, **run.config)
    finally:
        os.chdir(cwd)
    return out


def _write_record(root: Path, seed: int, accs=(0.5, 0.6), macs=(10**9, 10**9),
                  **params) -> Path:
    """A finished smoke run record under ``root``: its config (``make_config("smoke",
    seed=seed, **params)``), one round row, and a target row per budget with final (and best)
    test accuracies ``accs``, reached at epoch 2 from half of it at epoch 1, and cumulative
    selection MACs ``macs`` (one second per 10^9 of them). Returns the run folder."""
    cfg = make_config("smoke", seed=seed, **params)
    run_dir = root / run_id(cfg)
    run_dir.mkdir(parents=True)
    pf = cfg["selector"] == "prunefuse"
    meta = {"config": cfg, "run_id": run_dir.name, "device_name": "cpu", "threads": 2,
            "target": {"arch": cfg["arch"], "params": 78042, "macs_per_sample": 12677760},
            "selector_model": {"params": 20000 if pf else 78042,
                               "macs_per_sample": 3000000 if pf else 12677760}}
    (run_dir / "config.json").write_text(json.dumps(meta))
    lines = [{"kind": "round", "round": 1}] + [
        {"kind": "target", "budget": b, "labeled": int(512 * b), "final_test_acc": a,
         "best_test_acc": a, "best_epoch": 2,
         "epochs": [{"epoch": 1, "test_acc": a / 2}, {"epoch": 2, "test_acc": a}],
         "cumulative_selection_macs": m, "cumulative_selection_seconds": m / 1e9,
         "target_training_macs": 10**9, "teacher_forward_macs": 0, "training_seconds": 1.0}
        for b, a, m in zip(cfg["budgets"], accs, macs)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run_dir / "DONE").write_text("2025-01-02T03:04:05+0000\n")
    return run_dir


@pytest.fixture(scope="session")
def write_record():
    """:func:`_write_record`: ``write_record(root, seed, accs, macs, **params)``."""
    return _write_record
