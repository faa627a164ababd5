"""Every benchmark script runs end to end at a tiny size and prints its headline.

The figures themselves are not checked (speed goals are shown by the scripts' printed
tables, benchmarks/RESULTS.md, not by timed tests); what is checked is that each command
that RESULTS.md and the GPU checklist name still works, so time on a GPU machine goes to
measuring, not to fixing scripts.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

TINY = {
    "selection_cost.py": ["--arch", "resnet8", "--ratios", "0.5", "0.8", "--pool", "64",
                          "--train", "128", "--batch", "64", "--repeats", "1", "--bf16"],
    "trainer_throughput.py": ["--arch", "resnet8", "--images", "128", "--batch", "64",
                              "--workers", "0", "--repeats", "1"],
    "kcenter_scale.py": ["--pool", "3000", "--labeled", "500", "--dim", "16", "--budget", "40",
                         "--reference"],
    "optimizer_step.py": ["--arch", "resnet8", "--batch", "16", "--steps", "1", "--repeats", "1"],
    "end_to_end.py": ["--data", "synthetic", "--arch", "resnet8", "--pool", "300", "--test", "100",
                      "--initial", "100", "--budget", "50", "--selector-epochs", "1",
                      "--target-epochs", "1", "--rounds", "2"],
    "cpu_knobs.py": ["--arch", "resnet8", "--images", "128", "--batches", "64", "--steps", "1",
                     "--repeats", "1"],
    "full_training.py": ["--arch", "resnet8", "--images", "128", "--epochs", "2", "--batch", "64"],
    "record_size.py": ["--records", "no-such-folder"],
    "whole_run.py": ["--profile", "smoke"],
    "precision_step.py": ["--arch", "resnet8", "--batch", "8", "--steps", "1"],
    "slots.py": ["--profile", "smoke", "--images", "64", "--layouts", "1x1", "2x1",
                 "--repeats", "1"],
}


# Scripts that read a batch's records instead of timing anything; tested on a real record.
RECORD_READERS = {"grid_time.py"}


def test_every_benchmark_is_covered():
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(TINY) | RECORD_READERS


@pytest.mark.slow
def test_grid_time_reads_a_batch(tmp_path):
    import json

    from prunefuse.experiment import run_experiment

    run = run_experiment(profile="smoke", out=tmp_path / "runs", progress=False, device="cpu")
    (tmp_path / "plan.json").write_text(json.dumps({"runs": [{"run_id": run.name}] * 2}))
    ledger = json.loads((run / "ledger.json").read_text())
    proc = subprocess.run([sys.executable, str(BENCH / "grid_time.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 planned runs finished" in proc.stdout
    total = sum(ledger["seconds"].values())
    assert f"HEADLINE grid: 1 runs, {total:.0f} s charged" in proc.stdout
    assert f"{'target_training':<18} {ledger['seconds']['target_training']:8.0f} s" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_and_prints_headline(script):
    env = {**os.environ, "PRUNEFUSE_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / script), *TINY[script]], env=env,
                          capture_output=True, text=True, timeout=600, cwd=BENCH)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# ") and "device cpu" in lines[0]  # the machine header
    assert any(line.startswith("HEADLINE ") for line in lines), proc.stdout[-3000:]


@pytest.mark.parametrize("args, named", [(["selector=dense"], "selector"),
                                         (["lr=-1"], "lr"), (["--profile", "nope"], "nope")])
@pytest.mark.slow
def test_whole_run_rejects_bad_input_before_running(args, named, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "whole_run.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PRUNEFUSE_DEVICE": "cpu"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("whole_run.py: ") and named in last
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.slow
def test_full_training_rejects_bad_sizes():
    proc = subprocess.run([sys.executable, str(BENCH / "full_training.py"), "--images", "1",
                           "--arch", "resnet8"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PRUNEFUSE_DEVICE": "cpu"})
    assert proc.returncode == 2 and "--images 1" in proc.stderr


def test_gpu_checklist_script_parses_and_names_its_steps():
    script = BENCH / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # syntax
    proc = subprocess.run(["bash", str(script), "bogus"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "wheels|tests|bench|dense|pruned" in proc.stderr and "bogus" in proc.stderr
