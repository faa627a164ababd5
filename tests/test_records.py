"""Run records on shared storage and the report over them: nothing lost silently, files a
colleague can read, one process per run, and a log of what `prunefuse run` did."""

import json
import os
import subprocess
import sys
import time

import pytest

from prunefuse.cli import main
from prunefuse.config import make_config, run_id
from prunefuse.runs import LOCK, RunBusyError, atomic_write_text, find_runs, run_lock


def test_report_names_and_skips_every_unreadable_record(tmp_path, capsys, write_record):
    good = write_record(tmp_path, 0, (0.5, 0.6))
    truncated = write_record(tmp_path, 1)
    text = (truncated / "metrics.jsonl").read_text()
    (truncated / "metrics.jsonl").write_text(text[:-30])  # cut inside the last line
    empty = write_record(tmp_path, 2)
    (empty / "metrics.jsonl").write_text("")
    half = write_record(tmp_path, 3)
    (half / "metrics.jsonl").write_text(text.splitlines(keepends=True)[0] +
                                        text.splitlines(keepends=True)[1])
    bad_config = write_record(tmp_path, 4)
    (bad_config / "config.json").write_text('{"config": {"seed": 4,')
    unfinished = write_record(tmp_path, 5)
    (unfinished / "DONE").unlink()  # in progress: not a problem, not in the report

    with pytest.raises(json.JSONDecodeError) as cut:
        json.loads(text[:-30].splitlines()[-1])
    assert main(["report", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert cap.err.splitlines() == [
        f"prunefuse report: warning: skipped {truncated}: {truncated / 'metrics.jsonl'}: line 3 "
        f"is not valid JSON ({cut.value.msg}); truncated or corrupt",
        f"prunefuse report: warning: skipped {empty}: finished (DONE) but "
        f"{empty / 'metrics.jsonl'} holds targets at budgets [], not at every one of "
        "eval_budgets [0.2, 0.3]; empty or cut short",
        f"prunefuse report: warning: skipped {half}: finished (DONE) but "
        f"{half / 'metrics.jsonl'} holds targets at budgets [0.2], not at every one of "
        "eval_budgets [0.2, 0.3]; empty or cut short",
        f"prunefuse report: warning: skipped {bad_config}: {bad_config / 'config.json'}: not "
        "valid JSON (line 1: Expecting property name enclosed in double quotes); truncated or "
        "corrupt",
    ]
    results = (tmp_path / "results.csv").read_text().splitlines()
    assert len(results) == 3 and all(good.name in r for r in results[1:])
    assert "| 50.00 | 1 |" in cap.out and "| 60.00 | 1 |" in cap.out  # one seed: no sd

    (tmp_path / "results.csv").unlink()
    assert main(["report", str(tmp_path), "--strict"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and err[0].startswith(f"prunefuse report: error: skipped {truncated}")
    assert err[-1] == ("prunefuse report: error: 4 record(s) cannot be read; nothing written "
                       "(--strict)")
    assert not (tmp_path / "results.csv").exists()
    with pytest.warns(UserWarning, match=f"skipped {empty}: finished"):
        assert [r["path"] for r in find_runs(tmp_path)] == [str(good)]


def test_record_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert atomic_write_text(tmp_path / "a.json", "{}").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        assert atomic_write_text(tmp_path / "b.json", "{}").stat().st_mode & 0o777 == 0o664
        os.umask(0o077)
        assert atomic_write_text(tmp_path / "c.json", "{}").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


HOLD = """
import sys, time
from prunefuse.runs import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_second_process_on_the_same_run_gets_a_clear_message(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), "600"],
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunBusyError, match=f"{run_dir}: another process is computing this "
                           rf"run \(pid {holder.pid} on .* since .*\); wait for it"):
            with run_lock(run_dir):
                pass
        # The same from the command line: exit 3, one line, the run left to its holder.
        cfg = make_config("smoke")
        busy = tmp_path / run_id(cfg)
        busy.mkdir()
        os.link(run_dir / LOCK, busy / LOCK)  # the holder's lock, on the smoke run's folder
        proc = subprocess.run([sys.executable, "-m", "prunefuse.cli", "run", "--profile", "smoke",
                               "--out", str(tmp_path), "--no-progress"], capture_output=True,
                              text=True, env=os.environ)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.startswith(f"prunefuse run: error: {busy}: another process is "
                                      f"computing this run (pid {holder.pid} on ")
        assert proc.stderr.count("\n") == 1 and not (busy / "state.json").exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run_dir):  # a killed holder's lock is released by the kernel
        pass


def test_run_says_start_skip_and_result_and_keeps_a_log(tmp_path, capsys):
    args = ["run", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "device=cpu"]
    assert main(args) == 0
    run_dir = tmp_path / run_id(make_config("smoke", device="cpu"))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"profile smoke, run {run_dir}"
    assert out[1].startswith("starting: 5 steps (initial set, 2 selection rounds, 2 targets) "
                             "on synthetic: 512 train / 256 test, 3x32x32, 10 classes, cpu")
    assert out[2] == "step 1/5 round_0: 51 random initial labels"
    assert out[3] == "step 2/5 round_1: 102 labeled (20% of the pool)"
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = metrics[-1]
    assert out[-2] == f"finished: records in {run_dir}"
    assert out[-1] == (f"result: test accuracy {100 * last['final_test_acc']:.2f}% at budget "
                       f"30% of the pool (154 labeled images); selection "
                       f"{last['cumulative_selection_macs'] / 1e9:.3f} GMACs, "
                       f"{last['cumulative_selection_seconds']:.1f} s")
    log = (run_dir / "log.txt").read_text().splitlines()
    assert [x[20:] for x in log] == out[1:]  # each line after its timestamp
    time.sleep(1)
    assert main(args) == 0
    again = capsys.readouterr().out.splitlines()
    done = (run_dir / "DONE").read_text().strip()
    assert again[1:] == [f"skipped: finished {done}, records in {run_dir}", out[-1]]
    assert (run_dir / "log.txt").read_text().splitlines()[len(log):][0][20:] == again[1]
