"""Where the runs of a ``reproduce`` batch execute, registered by name in :data:`EXECUTORS`:
``local`` (this machine, :class:`LocalExecutor`) or ``ray`` (a Ray cluster, :class:`RayExecutor`).

Caveat first: a run is retried by executing it again, which is safe only because runs are
idempotent (deterministic run id, ``DONE`` written last, resume from the last committed step;
:mod:`prunefuse.experiment`). Do not point two batches at the same folder at the same time.

Both executors execute the same unit, :func:`run_job`: the experiment notebook under papermill
in a Python subprocess of its own (which starts its own kernel), stdout and stderr appended to
``<run folder>/log.txt``. The driver loop (:meth:`Executor.run`) is shared: it submits a run
once the run whose selection it reuses is done, retries a failed run up to ``max_retries``
times, prints progress (done, running, failed, pending, time left) and returns one
:class:`Outcome` per run. Each run writes only inside its own folder; only the driver prints.

Ray is imported only by :class:`RayExecutor` (``pip install 'prunefuse[ray]'``).

Adding an executor: subclass :class:`Executor` (``_submit`` and ``_wait``), declare its command
line options in ``options`` and register it with ``@register_executor("name")``;
``prunefuse reproduce --executor name`` then builds it from those options.
"""

from __future__ import annotations

import abc
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..run.records import DONE, LOG, is_done
from .execute import EXPERIMENT, NotebookRunError, execute_notebook

# A callable given (job, process) once a run's process has started, in the process that
# started it: the local driver, or the Ray worker.
Watch = Callable[["Job", subprocess.Popen], None]


@dataclass
class Job:
    """One run to execute: ``notebook`` with ``parameters`` into ``output``, working directory
    ``cwd`` (the batch folder). Paths are absolute and must be the same on every worker."""

    run_id: str
    notebook: str
    output: str
    parameters: dict[str, Any]
    cwd: str
    run_dir: str  # the run's record folder (prunefuse.runs), where its log goes too
    needs: str | None = None  # run id that must be done first (its selection is reused)
    label: str = ""  # shown in progress lines (the artefacts the run serves)


@dataclass
class Outcome:
    """What became of one run. ``status``: ``done``, ``failed`` (retries exhausted, or the run
    it needs failed) or ``not started`` (the batch stopped first)."""

    run_id: str
    status: str
    attempts: int
    seconds: float  # of the last attempt
    log: str
    error: dict | None = None  # message, output, cell, ename, evalue
    host: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


# -- one run -----------------------------------------------------------------------------------

def _signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def run_job(job: Job, *, attempt: int = 1, env: dict[str, str] | None = None,
            on_start: Callable[[subprocess.Popen], None] | None = None,
            watch: Watch | None = None) -> dict[str, Any]:
    """Execute one run in a subprocess (``python -m prunefuse.batch.executors``), its output appended
    to ``<run_dir>/log.txt``.

    Args:
        job: the run.
        attempt: 1 for the first execution; written in the log.
        env: variables set for the subprocess over this process's environment.
        on_start: called with the subprocess once started (the local executor keeps it to
            kill it on interrupt).
        watch: called with the job and the subprocess once started, before waiting for it
            (see :attr:`Executor.watch`).

    Returns:
        ``{"ok", "returncode", "seconds", "host", "error"}``; ``ok`` when the subprocess exited
        0 and the run folder holds ``DONE``; ``error`` as in :class:`Outcome`.
    """
    host = socket.gethostname()
    cwd = Path(job.cwd)
    if not cwd.is_dir():
        return {"ok": False, "returncode": None, "seconds": 0.0, "host": host, "error": {
            "message": f"batch folder {job.cwd} is not visible on {host}: --out must be on "
                       f"storage every worker mounts at the same path"}}
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {})}
    fd, err_file = tempfile.mkstemp(prefix=f"prunefuse-{job.run_id[:40]}-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "prunefuse.batch.executors", json.dumps(asdict(job)), err_file]
    start = time.perf_counter()
    try:
        with open(run_dir / LOG, "a") as log:
            log.write(f"== attempt {attempt} on {host}, pid {os.getpid()}, "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}, CUDA_VISIBLE_DEVICES="
                      f"{child_env.get('CUDA_VISIBLE_DEVICES', '(unset)')}, OMP_NUM_THREADS="
                      f"{child_env.get('OMP_NUM_THREADS', '(unset)')}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                    cwd=cwd)
            try:
                if on_start is not None:
                    on_start(proc)
                if watch is not None:
                    watch(job, proc)
                returncode = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            seconds = time.perf_counter() - start
            log.write(f"== {_signal_name(returncode)} after {seconds:.1f} s\n")
        text = Path(err_file).read_text()
        error = json.loads(text) if text else None
    finally:
        Path(err_file).unlink(missing_ok=True)
    ok = returncode == 0 and is_done(run_dir)
    if not ok and error is None:
        error = {"message": f"the run's process ended with {_signal_name(returncode)} on {host}; "
                            f"partial notebook at {job.output}"}
    return {"ok": ok, "returncode": returncode, "seconds": seconds, "host": host, "error": error}


def _exit_with_parent() -> None:
    """Die when the process that started us dies (a killed Ray worker, an interrupted driver):
    an orphaned run must not keep writing into a folder its retry is writing into. The kernel
    follows (ipykernel polls its parent too)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _child(argv: list[str]) -> int:
    """The subprocess of :func:`run_job`: execute the notebook; on failure write the error as
    JSON to ``argv[1]`` and exit 1."""
    job, err_file = Job(**json.loads(argv[0])), Path(argv[1])
    _exit_with_parent()
    error = None
    try:
        execute_notebook(job.notebook, job.output, job.parameters, cwd=job.cwd)
    except NotebookRunError as err:
        error = {"message": str(err), "output": str(err.output), "cell": err.cell,
                 "ename": err.ename, "evalue": err.evalue}
    except Exception as err:  # noqa: BLE001 - reported to the driver, not swallowed
        error = {"message": f"{type(err).__name__}: {err}", "output": job.output}
    if error is None and not is_done(job.run_dir):
        error = {"message": f"{EXPERIMENT} finished but {job.run_dir} has no {DONE} marker",
                 "output": job.output}
    if error is not None:
        err_file.write_text(json.dumps(error))
        print(error["message"], file=sys.stderr, flush=True)
        return 1
    print("finished", flush=True)
    return 0


# -- the driver --------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _first_line(error: dict | None) -> str:
    lines = (error or {}).get("message", "").strip().splitlines()
    return lines[0] if lines else "(no message)"


@dataclass(frozen=True)
class Option:
    """A command line option of an executor: ``--flag`` sets constructor argument ``arg``."""

    flag: str
    arg: str
    type: type  # bool: a switch
    help: str


RETRIES = Option("--max-retries", "max_retries", int, "extra attempts of a failed run (a retry "
                 "resumes it)")


class Executor(abc.ABC):
    """Executes a list of :class:`Job` and returns their outcomes; subclasses say how one job is
    submitted and awaited. ``max_retries``: extra attempts of a failed run; ``keep_going``:
    False stops submitting at the first run that fails for good (runs in flight finish)."""

    name = "executor"
    summary = ""  # where it runs, in a few words, for --help
    options: tuple[Option, ...] = ()  # its command line options, read by prunefuse.cli
    max_retries = 0
    keep_going = False
    progress_every = 60.0  # seconds between progress lines while nothing changes
    # Called with (job, process) once each run's process has started, where it started (for
    # instance to observe or interrupt a run); None: nothing.
    watch: Watch | None = None

    def describe(self) -> str:
        return self.name

    def capacity(self) -> int:
        """How many runs can execute at once now (for the running count and the estimate)."""
        return 1

    def _limit(self) -> float:
        """How many runs to keep submitted at once."""
        return self.capacity()

    def _start(self, log: Callable[[str], None]) -> None:  # noqa: B027 - optional hook
        """Set up before the first submission (e.g. connect to a cluster); default: nothing."""

    def _stop(self, handles: list) -> None:  # noqa: B027 - optional hook
        """Cancel ``handles`` still in flight when the batch stops; default: nothing."""

    @abc.abstractmethod
    def _submit(self, job: Job, attempt: int) -> Any:
        """Start one attempt of ``job``; return a handle that :meth:`_wait` understands."""

    @abc.abstractmethod
    def _wait(self, handles: list, timeout: float) -> list[tuple[Any, dict]]:
        """Wait up to ``timeout`` s; return (handle, result dict) for each finished attempt."""

    def run(self, jobs: list[Job], *, log: Callable[[str], None] = print) -> dict[str, Outcome]:
        """Execute ``jobs`` (in order, as capacity allows; a job waits for the one it needs).

        Returns:
            run id -> :class:`Outcome`, for every job.
        """
        ids = {j.run_id for j in jobs}
        pending, inflight = list(jobs), {}
        attempts: dict[str, int] = {}
        outcomes: dict[str, Outcome] = {}
        durations: list[float] = []
        stop, last_line = False, time.time()

        def progress() -> str:
            total, done = len(jobs), sum(o.ok for o in outcomes.values())
            failed = sum(o.status == "failed" for o in outcomes.values())
            running = min(len(inflight), self.capacity())
            waiting = len(pending) + len(inflight) - running
            eta = "eta after the first run"
            if durations:
                left = sum(durations) / len(durations) * (len(pending) + len(inflight))
                eta = f"eta {_duration(left / max(1, self.capacity()))}"
            return (f"[{done}/{total} done, {running} running, {failed} failed, {waiting} "
                    f"pending, {eta}]")

        def finish(job: Job, status: str, result: dict | None, error: dict | None = None) -> None:
            result = result or {}
            outcomes[job.run_id] = Outcome(
                job.run_id, status, attempts.get(job.run_id, 0), result.get("seconds", 0.0),
                str(Path(job.run_dir) / LOG), error if error is not None else result.get("error"),
                result.get("host"))

        self._start(log)
        try:
            while pending or inflight:
                for job in list(pending):
                    if stop or len(inflight) >= self._limit():
                        break
                    if job.needs in ids:
                        need = outcomes.get(job.needs)
                        if need is None:
                            continue  # waits for the run whose selection it reuses
                        if not need.ok:
                            pending.remove(job)
                            finish(job, "failed", None, {"message": f"needs run {job.needs}, "
                                                         f"which failed; see {need.log}"})
                            log(f"{progress()} {job.run_id}: not started, needs {job.needs}")
                            continue
                    pending.remove(job)
                    attempts[job.run_id] = attempts.get(job.run_id, 0) + 1
                    inflight[self._submit(job, attempts[job.run_id])] = job
                    log(f"{progress()} {job.run_id} ({job.label}) submitted, attempt "
                        f"{attempts[job.run_id]}")
                if stop and not inflight:
                    for job in pending:
                        finish(job, "not started", None)
                    pending = []
                    break
                if not inflight:  # nothing can start: a needed run never finished (a bug)
                    for job in pending:
                        finish(job, "failed", None, {"message": f"needs run {job.needs}, "
                                                     f"which never finished"})
                    break
                timeout = max(0.1, self.progress_every - (time.time() - last_line))
                for handle, result in self._wait(list(inflight), timeout):
                    job = inflight.pop(handle)
                    n = attempts[job.run_id]
                    if result["ok"]:
                        durations.append(result["seconds"])
                        finish(job, "done", result)
                        log(f"{progress()} {job.run_id} finished in "
                            f"{_duration(result['seconds'])} (attempt {n}, {result['host']})")
                    elif n <= self.max_retries:
                        pending.insert(0, job)
                        log(f"{progress()} {job.run_id} failed (attempt {n}): "
                            f"{_first_line(result['error'])}; retrying")
                    else:
                        finish(job, "failed", result)
                        stop = stop or not self.keep_going
                        log(f"{progress()} {job.run_id} FAILED after {n} attempt(s): "
                            f"{_first_line(result['error'])}; log: {Path(job.run_dir) / LOG}")
                    last_line = time.time()
                if time.time() - last_line >= self.progress_every:
                    log(progress())
                    last_line = time.time()
        finally:
            self._stop(list(inflight))
        return {j.run_id: outcomes[j.run_id] for j in jobs}


EXECUTORS: dict[str, type[Executor]] = {}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: make an :class:`Executor` available as ``--executor name``."""
    def wrap(cls: type[Executor]) -> type[Executor]:
        if name in EXECUTORS:
            raise ValueError(f"executor {name!r} is registered twice")
        cls.name = name
        EXECUTORS[name] = cls
        return cls
    return wrap


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@register_executor("local")
class LocalExecutor(Executor):
    """Runs on this machine, one per visible GPU at once (else one), each in a subprocess.

    Args:
        slots: runs at once (default: one per visible GPU, else 1).
        gpus: GPU ids to spread the slots over, round robin, through ``CUDA_VISIBLE_DEVICES``
            (default :func:`visible_gpus`).
        threads: CPU threads per run (``OMP_NUM_THREADS``); default: left alone with one slot,
            else the CPUs divided among the slots.
        max_retries: extra attempts of a failed run (default 0).
        keep_going: False (default) stops at the first failed run, as a notebook batch does.
    """

    summary = "this machine, one run per visible GPU at once (else one)"
    options = (
        Option("--slots", "slots", int, "runs at once (default: one per visible GPU, else 1)"),
        RETRIES,
        Option("--keep-going", "keep_going", bool, "finish the other runs when one fails for "
               "good (default: stop at the first failure)"),
    )

    def __init__(self, slots: int | None = None, *, gpus: list[str] | None = None,
                 threads: int | None = None, max_retries: int = 0, keep_going: bool = False):
        self.gpus = visible_gpus() if gpus is None else [str(g) for g in gpus]
        self.slots = slots if slots is not None else max(1, len(self.gpus))
        if self.slots < 1:
            raise ValueError(f"slots={self.slots}: must be at least 1")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries}: must be >= 0")
        if threads is None and self.slots > 1 and "OMP_NUM_THREADS" not in os.environ:
            threads = max(1, _cpus() // self.slots)
        self.threads, self.max_retries, self.keep_going = threads, max_retries, keep_going

    def describe(self) -> str:
        where = f"GPUs {','.join(self.gpus)}" if self.gpus else "CPU"
        threads = f", {self.threads} threads each" if self.threads else ""
        return f"this machine, {self.slots} run(s) at once on {where}{threads}"

    def capacity(self) -> int:
        return self.slots

    def _start(self, log: Callable[[str], None]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="prunefuse-run")
        self._free, self._slot_of, self._procs = list(range(self.slots)), {}, set()

    def _submit(self, job: Job, attempt: int) -> Any:
        slot = self._free.pop(0)
        env = {}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        future = self._pool.submit(run_job, job, attempt=attempt, env=env,
                                   on_start=self._procs.add, watch=self.watch)
        self._slot_of[future] = slot
        return future

    def _wait(self, handles: list, timeout: float) -> list[tuple[Any, dict]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        results = []
        for future in done:
            self._free.append(self._slot_of.pop(future))
            try:
                results.append((future, future.result()))
            except Exception as err:  # noqa: BLE001 - e.g. the log folder is not writable
                results.append((future, {"ok": False, "seconds": 0.0, "host": socket.gethostname(),
                                         "error": {"message": f"{type(err).__name__}: {err}"}}))
        return results

    def _stop(self, handles: list) -> None:
        for proc in list(self._procs):  # only those still running: an interrupted batch
            if proc.poll() is None:
                proc.kill()
        self._pool.shutdown(wait=True)


def _ray_task(job: Job, attempt: int, env: dict[str, str], watch: Watch | None) -> dict[str, Any]:
    """One run as a Ray task (Ray already set ``CUDA_VISIBLE_DEVICES`` to this task's GPUs)."""
    return run_job(job, attempt=attempt, env=env, watch=watch)


@register_executor("ray")
class RayExecutor(Executor):
    """Each run is a Ray task on a cluster, executing the experiment notebook in a subprocess.

    Args:
        address: an existing cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``); None
            starts a local one for the batch and stops it afterwards.
        num_gpus: GPUs per run, a fraction lets small runs share a GPU (0.5: two per GPU);
            default 1 if the cluster has GPUs, else 0.
        num_cpus: CPUs per run (and its ``OMP_NUM_THREADS``).
        max_retries: extra attempts of a failed run, whatever the cause (a cell error, the
            kernel or the worker killed, out of memory); default 2.
        keep_going: True (default): the other runs finish when one fails for good.
        local_cpus, local_gpus: resources of the local cluster (default: all of this machine).

    The ``PRUNEFUSE_*`` variables of the driver are set for every run.
    """

    summary = "one Ray task per run on a cluster"
    options = (
        Option("--ray-address", "address", str, "the cluster to join (auto, HOST:6379, "
               "ray://HOST:10001); default: start a local one for this batch"),
        Option("--num-gpus-per-run", "num_gpus", float, "GPUs per run, a fraction lets small "
               "runs share one (0.5, 0.25); default 1 if the cluster has GPUs, else 0"),
        Option("--cpus-per-run", "num_cpus", float, "CPUs per run (default 1)"),
        RETRIES,
    )

    def __init__(self, address: str | None = None, *, num_gpus: float | None = None,
                 num_cpus: float = 1.0, max_retries: int = 2, keep_going: bool = True,
                 local_cpus: int | None = None, local_gpus: int | None = None):
        if num_gpus is not None and num_gpus < 0:
            raise ValueError(f"num_gpus={num_gpus}: GPUs per run must be >= 0 (0.5: two runs "
                             f"share a GPU)")
        if num_cpus <= 0:
            raise ValueError(f"num_cpus={num_cpus}: CPUs per run must be > 0")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries}: must be >= 0")
        self.address, self.num_gpus, self.num_cpus = address, num_gpus, num_cpus
        self.max_retries, self.keep_going = max_retries, keep_going
        self.local_cpus, self.local_gpus = local_cpus, local_gpus
        self._ray = None

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
        gpus = "auto" if self.num_gpus is None else f"{self.num_gpus:g}"
        return f"{where}, {self.num_cpus:g} CPU and {gpus} GPU per run"

    def capacity(self) -> int:
        res = self._ray.cluster_resources()
        n = res.get("CPU", 0) / self.num_cpus
        if self.num_gpus:
            n = min(n, res.get("GPU", 0) / self.num_gpus)
        return max(1, int(n + 1e-9))

    def _limit(self) -> float:
        return math.inf  # Ray queues what does not fit yet (and an autoscaler sees the demand)

    def _start(self, log: Callable[[str], None]) -> None:
        try:
            import ray
        except ImportError as err:
            raise ImportError("--executor ray needs the ray package: pip install "
                              "'prunefuse[ray]'") from err
        self._ray, self._owned = ray, not ray.is_initialized()
        if self._owned:
            if self.address:
                try:
                    ray.init(address=self.address)
                except ConnectionError as err:
                    raise ConnectionError(
                        f"--ray-address {self.address}: no Ray cluster there ({err}); start "
                        f"one with `ray start --head` (docs/cluster.md), or leave --ray-address "
                        f"out to start a local one") from None
            else:
                # "local": a new cluster even if `ray start` left one on this machine
                ray.init(address="local", num_cpus=self.local_cpus, num_gpus=self.local_gpus,
                         include_dashboard=False)
        res = ray.cluster_resources()
        cluster_gpus = res.get("GPU", 0)
        if self.num_gpus is None:
            self.num_gpus = 1.0 if cluster_gpus else 0.0
        if self.num_gpus and not cluster_gpus:
            log(f"warning: {self.num_gpus:g} GPU per run but the Ray cluster has no GPU yet; "
                f"runs wait until a GPU node joins")
        self._env = {k: v for k, v in os.environ.items() if k.startswith("PRUNEFUSE_")}
        self._env["OMP_NUM_THREADS"] = str(max(1, int(self.num_cpus)))
        self._remote, self._jobs = ray.remote(_ray_task), {}
        log(f"Ray cluster: {res.get('CPU', 0):g} CPUs, {cluster_gpus:g} GPUs; "
            f"{self.num_cpus:g} CPU and {self.num_gpus:g} GPU per run, up to "
            f"{self.capacity()} runs at once")

    def _submit(self, job: Job, attempt: int) -> Any:
        env = dict(self._env)
        if not self.num_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run must not take a GPU it was not given
        task = self._remote.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                    max_retries=0, retry_exceptions=False,
                                    name=f"prunefuse:{job.run_id}")
        ref = task.remote(job, attempt, env, self.watch)
        self._jobs[ref] = job
        return ref

    def _wait(self, handles: list, timeout: float) -> list[tuple[Any, dict]]:
        ray = self._ray
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        return [(ref, self._result(ref)) for ref in ready]

    def _result(self, ref: Any) -> dict:
        job = self._jobs.pop(ref)
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as err:  # the worker died (node lost, OOM, kill)
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            message = f"Ray task lost: {type(err).__name__}: {first}"
            try:  # the task could not close its attempt in the log
                with open(Path(job.run_dir) / LOG, "a") as log:
                    log.write(f"== {message}\n")
            except OSError:
                pass  # the driver does not see the shared storage
            return {"ok": False, "seconds": 0.0, "host": None, "error": {"message": message}}

    def _stop(self, handles: list) -> None:
        if self._ray is None:
            return
        for ref in handles:  # an interrupted batch
            self._ray.cancel(ref, force=True)
        if self._owned:
            self._ray.shutdown()


__all__ = ["Job", "Outcome", "Option", "Executor", "EXECUTORS", "register_executor",
           "LocalExecutor", "RayExecutor", "run_job", "visible_gpus"]

if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
