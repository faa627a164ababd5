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
RECORD_READERS = {"grid_time.py", "svp_parity.py"}


def test_every_benchmark_is_covered():
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(TINY) | RECORD_READERS


@pytest.mark.slow
def test_grid_time_reads_a_batch(tmp_path):
    import json

    from prunefuse.experiment import run_experiment

    run = run_experiment(profile="smoke", out=tmp_path / "runs", progress=False, device="cpu")
    (tmp_path / "plan.json").write_text(json.dumps({"runs": [{"run_id": run.name},
                                                             {"run_id": "not-yet-run"}]}))
    (run / "log.txt").write_text("== exit status 1 after 1800.0 s\n== killed by SIGTERM after "
                                 "900.0 s\n== exit status 0 after 1800.0 s\n")
    ledger = json.loads((run / "ledger.json").read_text())
    proc = subprocess.run([sys.executable, str(BENCH / "grid_time.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 planned runs finished" in proc.stdout
    assert "3 attempts of 1 runs, 1.25 h summed" in proc.stdout  # from the run's log
    total = sum(ledger["seconds"].values())
    assert f"HEADLINE grid: 1 runs, {total:.0f} s charged" in proc.stdout
    assert f"{'target_training':<18} {ledger['seconds']['target_training']:8.0f} s" in proc.stdout
    assert "median 1800 s over 1 runs; the 2 planned runs at 2 at once: about 0.5 h" in proc.stdout


def test_grid_time_names_a_records_folder_without_a_plan(tmp_path):
    """A folder of run records has no plan.json: one line says to pass --profile, no traceback."""
    proc = subprocess.run([sys.executable, str(BENCH / "grid_time.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no plan.json" in proc.stderr and "--profile PROFILE" in proc.stderr


@pytest.mark.slow
def test_grid_time_estimates_a_profile_grid_from_records(tmp_path):
    """--profile: the planned runs are the profile's grid, the records any folder of runs."""
    from prunefuse.experiment import run_experiment
    from prunefuse.grid import plan

    the_plan = plan("smoke")
    first = the_plan.runs[0]
    run = run_experiment(profile="smoke", out=tmp_path, progress=False, **first.config)
    assert run.name == first.run_id
    (run / "log.txt").write_text("== exit status 0 after 600.0 s\n")
    proc = subprocess.run([sys.executable, str(BENCH / "grid_time.py"), str(tmp_path),
                           "--profile", "smoke", "--slots", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n = len(the_plan.runs)
    assert f"1 of {n} planned runs finished" in proc.stdout
    assert (f"median 600 s over 1 runs; the {n} planned runs at 1 at once: about "
            f"{n * 600 / 3600:.1f} h") in proc.stdout


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


SVP_RECORDS = Path(__file__).resolve().parents[1] / "records" / "svp-parity"


def _svp_parity(*args, timeout=300):
    proc = subprocess.run([sys.executable, str(BENCH / "svp_parity.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PRUNEFUSE_DEVICE": "cpu"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_svp_parity_table_of_the_committed_records_is_the_one_results_quotes():
    out = _svp_parity("table", SVP_RECORDS)
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(rows) >= 4  # at least 4 seeds finished in both tools
    results = (BENCH / "RESULTS.md").read_text()
    for line in rows + [ln for ln in out.splitlines() if "prunefuse - SVP" in ln]:
        assert line in results, line


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist (CI installs it)")
def test_svp_parity_data_reads_the_same_in_both_tools(tmp_path):
    import numpy as np
    import torch
    import torchvision.datasets.cifar as tv

    from prunefuse.config import make_config
    from prunefuse.data import load_dataset

    _svp_parity("data", tmp_path)
    root = tmp_path / "data" / "cifar10"
    ours = load_dataset("cifar10", root=root, download=False)
    want = load_dataset("fashion-mnist", max_train=6000, max_test=2000)
    assert torch.equal(ours.x_train, want.x_train) and torch.equal(ours.y_test, want.y_test)
    # torchvision (SVP's reader) takes the Python-2 pickles with str keys, md5 checks aside
    real = tv.check_integrity
    tv.check_integrity = lambda *a, **k: True
    try:
        svp = tv.CIFAR10(str(root), train=True, download=False)
    finally:
        tv.check_integrity = real
    assert np.array_equal(svp.data, want.x_train.permute(0, 2, 3, 1).numpy())
    assert svp.targets == want.y_train.tolist() and svp.classes[0] == "T-shirt/top"
    labels = np.loadtxt(tmp_path / "selection" / "proxy" / "1200" / "labeled_1200.index",
                        dtype=np.int64)
    assert len(set(labels.tolist())) == 1200 and labels.max() < 6000
    # the prunefuse side is a valid run config on those files
    sys.path.insert(0, str(BENCH))
    try:
        import svp_parity
    finally:
        sys.path.pop(0)
    from prunefuse.config import parse_override

    cfg = make_config("cpu", **dict(parse_override(a) for a in svp_parity.prunefuse_args(tmp_path, 0)))
    assert cfg["labels_file"].endswith("labeled_1200.index") and cfg["target_epochs"] == 30
    assert "--precomputed-selection" in _svp_parity("svp-command", tmp_path, "--seeds", "0")
