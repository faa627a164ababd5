"""Executors: the shared driver loop (dependencies, retries, failures; no processes), the local
executor's slots, and a real local Ray cluster (2 CPUs) on the smoke main-table grid (3 runs
plus one that always fails): every run completes once, a run SIGKILLed mid-way (with its Ray
worker) is retried and completes, the failing run is reported with its log while the rest
finishes, and the records equal those of the local executor. About 2 minutes on 2 CPU cores.

Both batches run each experiment with one CPU thread (Ray: 1 CPU per run; local: 2 slots on 2
CPUs): float sums depend on the thread count, so records are equal only at equal threads.
"""

import importlib.util
import json
import os
import re
import signal
import time
from pathlib import Path

import nbformat
import pytest

from prunefuse import executors as ex
from prunefuse import reproduce as rep
from prunefuse.cli import main
from prunefuse.config import make_config, run_id
from prunefuse.execute import EXPERIMENT
from prunefuse.grid import Plan, Run, plan
from prunefuse.runs import LOG, committed_steps, read_jsonl

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed: pip install 'prunefuse[ray]' (the "
                               "test extra installs it)")
OVERRIDES = {"device": "cpu"}  # the same records on a machine with GPUs
MAIN = plan("smoke", overrides=OVERRIDES, artefacts=["main_table"])
KILLED = next(r.run_id for r in MAIN.runs if "-pf0.5-" in r.run_id)
KILL_MARKER = ".test-killed-once"  # in the killed run's folder: when it was killed
BAD = Run(run_id(make_config("smoke", **OVERRIDES, selection_from="runs/not-there")),
              {**OVERRIDES, "selection_from": "runs/not-there"}, ["main_table"])


def _kill_once(run_id: str):
    """A watch (:attr:`prunefuse.executors.Executor.watch`) that SIGKILLs run ``run_id`` once,
    after its second committed step, then the process that started it (the Ray worker), as
    when a node is lost. A closure, so that Ray ships it to its workers by value."""
    def watch(job, proc):
        run_dir = Path(job.run_dir)
        if job.run_id != run_id or (run_dir / KILL_MARKER).exists():
            return
        while proc.poll() is None and len(committed_steps(run_dir)) < 2:
            time.sleep(0.02)
        if proc.poll() is not None:
            return  # finished (or failed) before it could be killed
        (run_dir / KILL_MARKER).write_text(
            f"killed after {len(committed_steps(run_dir))} committed steps\n")
        proc.kill()
        proc.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    return watch


# -- the driver loop, with a scripted executor (no processes) ---------------------------------

class Scripted(ex.Executor):
    """Results come from ``script[run_id]``, one per attempt (True: done)."""

    def __init__(self, script, slots=1, **kw):
        self.script, self.slots, self.order = script, slots, []
        self.max_retries, self.keep_going = kw.get("max_retries", 0), kw.get("keep_going", False)

    def capacity(self):
        return self.slots

    def _submit(self, job, attempt):
        self.order.append((job.run_id, attempt))
        return (job.run_id, attempt)

    def _wait(self, handles, timeout):
        rid, attempt = handles[0]
        ok = self.script[rid][attempt - 1]
        return [(handles[0], {"ok": ok, "seconds": 2.0, "host": "h",
                              "error": None if ok else {"message": f"{rid} broke\ntraceback"}})]


def _jobs(tmp_path, *specs):
    return [ex.Job(rid, "nb", "out", {}, str(tmp_path), str(tmp_path / rid), needs=needs)
            for rid, needs in specs]


def test_driver_retries_then_reports_and_keeps_going(tmp_path):
    lines = []
    exe = Scripted({"a": [False, True], "b": [False, False], "c": [True], "d": [True]},
                   max_retries=1, keep_going=True)
    out = exe.run(_jobs(tmp_path, ("a", None), ("b", None), ("c", "b"), ("d", "a")),
                  log=lines.append)
    assert exe.order == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("d", 1)]
    assert [out[r].status for r in "abcd"] == ["done", "failed", "failed", "done"]
    assert out["a"].attempts == 2 and out["b"].attempts == 2 and out["c"].attempts == 0
    assert out["b"].log == str(tmp_path / "b" / LOG)
    assert "needs run b, which failed" in out["c"].error["message"]
    assert any(re.search(r"b FAILED after 2 attempt\(s\): b broke; log: .*b/log\.txt", x)
               for x in lines)
    assert lines[-1].startswith("[2/4 done, 0 running, 2 failed, 0 pending, eta 0 s]")


def test_driver_stops_at_the_first_failure_unless_told(tmp_path):
    exe = Scripted({"a": [True], "b": [False], "c": [True]})
    out = exe.run(_jobs(tmp_path, ("a", None), ("b", None), ("c", None)), log=lambda _: None)
    assert [out[r].status for r in "abc"] == ["done", "failed", "not started"]
    err = rep.batch_error(out, [o for o in out.values() if not o.ok])
    assert "1 of 3 runs failed (1 finished, 1 not started" in str(err)
    assert f"b broke\ntraceback\nlog: {tmp_path / 'b' / LOG}" in str(err)


def test_local_executor_gives_each_slot_its_gpu_and_threads(tmp_path, monkeypatch):
    seen = {}

    def fake(job, *, attempt, env, on_start, watch):
        seen[job.run_id] = env
        return {"ok": True, "seconds": 1.0, "host": "h", "error": None}

    monkeypatch.setattr(ex, "run_job", fake)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(ex, "_cpus", lambda: 8)
    exe = ex.LocalExecutor(2, gpus=["3", "5"])
    out = exe.run(_jobs(tmp_path, ("a", None), ("b", None), ("c", None)), log=lambda _: None)
    assert all(o.ok for o in out.values())
    assert seen["a"] == {"CUDA_VISIBLE_DEVICES": "3", "OMP_NUM_THREADS": "4"}
    assert seen["b"] == {"CUDA_VISIBLE_DEVICES": "5", "OMP_NUM_THREADS": "4"}
    assert seen["c"]["CUDA_VISIBLE_DEVICES"] in ("3", "5")
    assert ex.LocalExecutor(gpus=[]).slots == 1 and ex.LocalExecutor(gpus=[]).threads is None
    assert ex.LocalExecutor(gpus=["0", "1"]).slots == 2


def test_cli_refuses_options_of_the_other_executor(tmp_path, capsys):
    base = ["reproduce", "--profile", "smoke", "--out", str(tmp_path)]
    assert main([*base, "--num-gpus-per-run", "0.5"]) == 2
    assert "--num-gpus-per-run: only with --executor ray" in capsys.readouterr().err
    assert main([*base, "--executor", "ray", "--slots", "2", "--keep-going"]) == 2
    assert "--keep-going: only with --executor local; --slots: only with --executor local" in \
        capsys.readouterr().err
    assert main([*base, "--executor", "ray", "--num-gpus-per-run", "-1"]) == 2
    assert "GPUs per run must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cli_builds_the_named_executor_from_its_registered_options(monkeypatch, capsys):
    from prunefuse.cli import _executor, build_parser

    def parse(*argv):
        return build_parser().parse_args(["reproduce", "--profile", "smoke", *argv])

    local = _executor(parse("--slots", "3", "--keep-going"))
    assert type(local) is ex.LocalExecutor and (local.slots, local.keep_going) == (3, True)
    ray = _executor(parse("--executor", "ray", "--max-retries", "0", "--cpus-per-run", "2"))
    assert type(ray) is ex.RayExecutor and (ray.max_retries, ray.num_cpus) == (0, 2.0)
    assert ex.RayExecutor().max_retries == 2 and ex.LocalExecutor(gpus=[]).max_retries == 0

    # a new executor: a class, its options and one decorator; the command line follows
    monkeypatch.setattr(ex, "EXECUTORS", dict(ex.EXECUTORS))

    @ex.register_executor("echo")
    class Echo(Scripted):
        summary = "prints the runs"
        options = (ex.Option("--echo-word", "word", str, "what to print"),)

        def __init__(self, word="hi"):
            super().__init__({})
            self.word = word

    echo = _executor(parse("--executor", "echo", "--echo-word", "bye"))
    assert type(echo) is Echo and echo.word == "bye" and echo.name == "echo"
    assert main(["reproduce", "--profile", "smoke", "--executor", "echo", "--slots", "2"]) == 2
    assert "--slots: only with --executor local" in capsys.readouterr().err
    with pytest.raises(ValueError, match="registered twice"):
        ex.register_executor("echo")(Echo)


# -- a real local Ray cluster against the local executor ---------------------------------------

def _strip_time(x):
    if isinstance(x, dict):
        return {k: _strip_time(v) for k, v in x.items() if "seconds" not in k
                and k != "images_per_s"}
    if isinstance(x, list):
        return [_strip_time(v) for v in x]
    return x


def _record(run_dir: Path) -> dict:
    """What the tables read, without wall-clock fields."""
    sel = {p.name: json.loads(p.read_text()) for p in sorted((run_dir / "selections").glob("round_??.json"))}
    index_map = run_dir / "index_map.json"
    return {"metrics": _strip_time(read_jsonl(run_dir / "metrics.jsonl")),
            "selections": _strip_time(sel),
            "ledger_macs": json.loads((run_dir / "ledger.json").read_text())["macs"],
            "index_map": json.loads(index_map.read_text()) if index_map.exists() else None}


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = rep.reproduce("smoke", out, overrides=OVERRIDES, artefacts=["main_table"],
                           run_figures=False, executor=ex.LocalExecutor(2, gpus=[]))
    assert len(result["executed"]) == 3
    return out


@pytest.fixture(scope="module")
def ray_batch(tmp_path_factory):
    """The main-table runs plus one that always fails, on a local Ray cluster of 2 CPUs and one
    (pretend) GPU shared by two runs; one run is SIGKILLed once mid-way with its worker."""
    out = tmp_path_factory.mktemp("ray")
    lines = []
    executor = ex.RayExecutor(num_gpus=0.5, max_retries=1, local_cpus=2, local_gpus=1)
    executor.watch = _kill_once(KILLED)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rep, "plan", lambda *a, **k: Plan("smoke", [*MAIN.runs, BAD], {}))
        with pytest.raises(rep.BatchError) as err:
            rep.reproduce("smoke", out, executor=executor, log=lines.append)
    return out, lines, err.value


@pytest.mark.slow
@needs_ray
def test_ray_runs_every_run_once_and_retries_the_killed_one(ray_batch):
    out, lines, _ = ray_batch
    for run in MAIN.runs:
        run_dir = out / "runs" / run.run_id
        assert (run_dir / "DONE").exists()
        nb = nbformat.read(run_dir / EXPERIMENT, as_version=4)
        assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                    if o.output_type == "error"]
        log = (run_dir / LOG).read_text()
        assert log.count("\nfinished\n") == 1 and log.count("exit status 0") == 1, log
        assert "CUDA_VISIBLE_DEVICES=0," in log and "OMP_NUM_THREADS=1" in log  # 0.5 GPU, 1 CPU
        assert sum(f"{run.run_id} finished in" in x for x in lines) == 1
        attempts = log.count("== attempt ")
        if run.run_id != KILLED:
            # one attempt; a retry only after the cluster lost the task (never after a cell
            # of the run failed), as the executor promises
            earlier = log.split("== attempt ")[1:-1]
            assert not (run_dir / KILL_MARKER).exists(), log
            assert all("== Ray task lost" in a and "failed in cell" not in a
                       for a in earlier), log
            assert attempts == 1 or any(f"{run.run_id} failed (attempt 1): Ray task lost" in x
                                        for x in lines), log
            continue
        # killed after >= 2 committed steps of 5, the worker lost, then resumed to DONE
        steps = int(re.search(r"after (\d+) committed", (run_dir / KILL_MARKER).read_text())[1])
        assert 2 <= steps < 5
        assert attempts == 2 and "== Ray task lost: WorkerCrashedError" in log
        assert any(f"{KILLED} failed (attempt 1): Ray task lost" in x for x in lines)
        assert json.loads((run_dir / "state.json").read_text())["steps"][-1] == "target_2"


@needs_ray
@pytest.mark.slow
def test_ray_reports_the_failing_run_with_its_log(ray_batch):
    out, lines, err = ray_batch
    bad = err.outcomes[BAD.run_id]
    assert bad.status == "failed" and bad.attempts == 2
    assert [o.status for rid, o in err.outcomes.items() if rid != BAD.run_id] == ["done"] * 3
    log = out / "runs" / BAD.run_id / LOG
    assert bad.log == str(log) and log.read_text().count("== attempt ") == 2
    assert "1 of 4 runs failed (3 finished); artefact notebooks not run" in str(err)
    assert f"run {BAD.run_id} failed after 2 attempt(s): experiment.ipynb failed in cell" in str(err)
    assert "ConfigError" in str(err) and f"log: {log}" in str(err)
    assert err.ename == "ConfigError"
    assert not (out / "notebooks").exists()


@pytest.mark.slow
@needs_ray
def test_ray_records_equal_local_records(ray_batch, local_batch):
    out, _, _ = ray_batch
    for run in MAIN.runs:
        assert _record(out / "runs" / run.run_id) == _record(local_batch / "runs" / run.run_id)


@pytest.mark.slow
@needs_ray
def test_resubmitted_batch_skips_finished_runs_then_builds_the_table(ray_batch):
    out, _, _ = ray_batch
    lines = []
    executor = ex.RayExecutor(max_retries=0)
    result = rep.reproduce("smoke", out, overrides=OVERRIDES, artefacts=["main_table"],
                           executor=executor, log=lines.append)
    assert result["executed"] == [] and len(result["skipped"]) == 3
    assert executor._ray is None, "nothing to run: no cluster started"
    assert (out / "figures" / "main_table.md").exists()
