"""The batch that regenerates every table and figure of the paper (``prunefuse reproduce``).

``reproduce(profile, out)`` plans the grid of runs each artefact needs
(:func:`prunefuse.grid.plan`), executes the experiment notebook once per run, each in a fresh
kernel (finished runs are skipped, unfinished ones resume), then one notebook per artefact
(:data:`prunefuse.artefacts.ARTEFACTS`), which reads only the run records and writes into
``out/figures``.

Everything is checked before anything runs: every run config while planning, and every
notebook parameter against the notebook's ``parameters`` cell (:mod:`prunefuse.execute`). A
failing notebook stops the batch with its failing cell's error; the partially executed
notebook stays where it was written (``out/runs/<run_id>/experiment.ipynb`` for a run,
``out/notebooks/<name>.ipynb`` for an artefact).

Runs execute on this machine or on a Ray cluster (:mod:`prunefuse.executors`); a run that fails
is retried up to a limit, the batch stops (local) or finishes the other runs (Ray), and
:class:`BatchError` names every failed run and its log. Submitting the same batch again skips
the finished runs and resumes the others.

Layout of ``out``: ``plan.json``, ``runs/<run_id>/`` (records + executed notebook + ``log.txt``),
``notebooks/`` (executed artefact notebooks), ``figures/`` (tables, figures, captions) and
``report.html`` (:mod:`prunefuse.report`: every figure, table, caption and the provenance on
one self-contained page). :func:`rebuild` (``--records``) builds the same artefacts and page
from existing records without training.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis.artefacts import ARTEFACTS
from ..analysis.report import write_page
from ..run.blocks import set_aside_foreign, this_machine
from ..run.config import ConfigError
from ..run.records import BATCH_FIGURES, BATCH_NOTEBOOKS, BATCH_RUNS, PLAN, REPORT, atomic_write_json, is_done
from .execute import EXPERIMENT, NOTEBOOKS, NotebookRunError, check_kernel, check_parameters, execute_notebook
from .executors import Executor, Job, LocalExecutor
from .grid import Run, plan


class BatchError(NotebookRunError):
    """Runs of a batch failed for good; ``outcomes`` holds every run's
    :class:`prunefuse.executors.Outcome` (the failed ones name their error and log)."""

    def __init__(self, message: str, *, outcomes: dict, **kw):
        super().__init__(message, **kw)
        self.outcomes = outcomes


def run_parameters(profile: str, run: Run) -> dict[str, Any]:
    """The experiment notebook's parameters for one planned run (working directory: ``out``):
    the run parameters over the profile, each a notebook parameter of its own, as
    ``papermill -p key value`` would pass them."""
    return {"profile": profile, **run.config, "out": BATCH_RUNS, "progress": False}


def reproduce(profile: str, out: str | os.PathLike, *, figures: str | os.PathLike | None = None,
              overrides: dict[str, Any] | None = None, artefacts: list[str] | None = None,
              run_figures: bool = True, notebooks: str | os.PathLike = NOTEBOOKS,
              executor: Executor | None = None, command: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, check, then execute every run and every artefact notebook of ``profile``.

    Args:
        profile: a key of :data:`prunefuse.grid.GRIDS` (``paper``, ``cpu``, ``smoke``).
        out: the batch folder (see the module docstring for its layout); with a Ray cluster,
            a path every worker sees (shared storage).
        figures: where artefacts write (default ``out/figures``).
        overrides: run parameters for every run (see :func:`prunefuse.grid.plan`).
        artefacts: only these artefacts and their runs (default: all).
        run_figures: False to execute the runs only.
        notebooks: folder holding ``experiment.ipynb`` and the artefact notebooks (default:
            the ones shipped with the package).
        executor: where the runs execute (default :class:`prunefuse.executors.LocalExecutor`:
            one run per visible GPU, else one at a time; stops at the first failure).
        command: the command line shown in ``report.html``'s provenance.
        log: progress lines go here.

    Returns:
        ``{"plan": Plan, "executed": [run ids], "skipped": [run ids], "outcomes": {run id:
        Outcome}, "notebooks": [paths], "figures": Path}``.

    Raises:
        ConfigError: (including :class:`prunefuse.execute.ParameterError`) before anything runs.
        BatchError: runs failed for good (after their retries); names each with its error and
            log; the artefact notebooks did not run.
        NotebookRunError: an artefact notebook failed.
    """
    out = Path(out).resolve()
    figures = (out / BATCH_FIGURES) if figures is None else Path(figures).resolve()
    notebooks = Path(notebooks).resolve()
    the_plan = plan(profile, overrides=overrides, artefacts=artefacts)
    experiment = notebooks / EXPERIMENT
    jobs = [(notebooks / ARTEFACTS[a].notebook,
             {"records": str(out / BATCH_RUNS), "figures": str(figures), **p})
            for a, p in the_plan.notebooks.items()]
    for nb in [experiment] + [nb for nb, _ in jobs]:
        if not nb.exists():
            raise FileNotFoundError(f"notebook {str(nb)!r} is missing (notebooks="
                                    f"{str(notebooks)!r}); the package ships them in "
                                    f"{NOTEBOOKS}")
    for run in the_plan.runs:
        check_parameters(experiment, run_parameters(profile, run))
    for nb, params in jobs:
        check_parameters(nb, params)
    check_kernel()

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / PLAN, the_plan.to_dict())
    executor = executor or LocalExecutor()
    if any(run.block for run in the_plan.runs):
        set_aside_foreign(the_plan.runs, out / BATCH_RUNS, log=log,
                          machine=this_machine(getattr(executor, "threads", None)))
    skipped, todo = [], []
    n = len(the_plan.runs)
    for i, run in enumerate(the_plan.runs, 1):
        run_dir = out / BATCH_RUNS / run.run_id
        if is_done(run_dir):
            skipped.append(run.run_id)
            log(f"[{i}/{n}] {run.run_id}: done, skipped")
            continue
        todo.append(Job(run.run_id, str(experiment), str(run_dir / EXPERIMENT),
                        run_parameters(profile, run), str(out), str(run_dir), needs=run.needs,
                        label=", ".join(run.artefacts)))
    check_done_data(profile, [r for r in the_plan.runs if r.run_id in set(skipped)],
                    out / BATCH_RUNS)
    outcomes = {}
    if todo:
        log(f"{len(todo)} of {n} runs to execute ({len(skipped)} done) on {executor.describe()}")
        start = time.perf_counter()
        outcomes = executor.run(todo, log=log)
        failed = [o for o in outcomes.values() if not o.ok]
        if failed:
            raise batch_error(outcomes, failed)
        log(f"{len(todo)} runs finished in {time.perf_counter() - start:.0f} s")
    written = []
    if run_figures:
        for nb, params in jobs:
            start = time.perf_counter()
            log(f"artefact {nb.stem} ...")
            written.append(execute_notebook(nb, out / BATCH_NOTEBOOKS / nb.name, params, cwd=out))
            log(f"      finished in {time.perf_counter() - start:.0f} s")
        page = write_page(out / REPORT, figures=figures, records=out / BATCH_RUNS,
                          artefacts=list(the_plan.notebooks), commands=[command or
                          f"prunefuse reproduce --profile {profile} --out {out}"],
                          title=f"prunefuse reproduce --profile {profile}")
        log(f"figures and tables: {figures}; the page: {page}")
    return {"plan": the_plan, "executed": [rid for rid, o in outcomes.items() if o.ok],
            "skipped": skipped, "outcomes": outcomes, "notebooks": written, "figures": figures}


def check_done_data(profile: str, runs: list[Run], runs_dir: str | os.PathLike) -> None:
    """Refuse a batch whose finished runs were made on other data than this machine loads
    now (a changed folder, other files), before anything runs: a finished run on changed
    data is neither skipped as current nor overwritten. The data of each distinct data
    configuration are loaded once; records without a fingerprint (older revisions) pass.

    Raises:
        ConfigError: one line naming the run folder and what changed.
    """
    from ..data import check_data, pool_seed_of
    from ..data.fingerprint import check_unchanged
    from ..run.config import make_config
    from ..run.records import read_config

    loaded: dict[str, Any] = {}
    for run in runs:
        record = read_config(Path(runs_dir) / run.run_id)
        if "data_fingerprint" not in record:
            continue
        cfg = make_config(profile, **run.config)
        key = json.dumps({**{k: cfg.get(k) for k in DATA_KEYS}, "pool_seed": pool_seed_of(cfg)},
                         sort_keys=True, default=str)
        if key not in loaded:
            loaded[key] = check_data(cfg)
        check_unchanged(record, loaded[key], str(Path(runs_dir) / run.run_id))


# The run parameters that decide which images a run reads.
DATA_KEYS = ("dataset", "data_root", "max_train", "max_test", "image_size", "channels",
             "test_fraction", "classes")


def rebuild(profile: str, records: str | os.PathLike, out: str | os.PathLike, *,
            figures: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
            artefacts: list[str] | None = None, command: str | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every artefact of ``profile`` from existing records, never training.

    The builders run in this process on the finished runs under ``records`` (nothing is
    written there). An artefact that lacks a run it needs is not built: its missing runs are
    named, one line each, and the others are built.

    Args:
        profile: a key of :data:`prunefuse.grid.GRIDS`.
        records: the folder holding the run folders (``<run_id>/`` each, as a batch's
            ``runs/``).
        out: where the artefacts go (``out/figures``) with ``out/report.html``.
        figures: the artefacts go here instead of ``out/figures`` (a committed figures
            folder, say).
        overrides, artefacts: as :func:`reproduce` (default: every artefact the grid offers,
            the optional ones included, since building them costs no training).
        command: the command line shown in the page's provenance.
        log: progress lines.

    Returns:
        ``{"built": [names], "missing": {name: [run ids]}, "figures": Path, "report": Path}``.
    """
    from .grid import default_artefacts

    records, out = Path(records).resolve(), Path(out).resolve()
    if not records.is_dir():
        raise FileNotFoundError(f"--records {str(records)!r}: no such folder of run records")
    figures = Path(figures).resolve() if figures else out / BATCH_FIGURES
    for flag, path in (("--out", out), ("--figures", figures)):
        if path == records or records in path.parents:
            raise ConfigError(f"{flag} {str(path)!r}: inside --records; the records are only "
                              "read, write the artefacts elsewhere")
    wanted = artefacts or default_artefacts(profile, extended=True)
    the_plan = plan(profile, overrides=overrides, artefacts=wanted)
    built, missing = [], {}
    for name, params in the_plan.notebooks.items():
        lacks = [r.run_id for r in the_plan.runs if name in r.artefacts
                 and not is_done(records / r.run_id)]
        if lacks and not ARTEFACTS[name].partial:
            missing[name] = lacks
            log(f"artefact {name}: not built, {len(lacks)} run(s) missing from {records}: "
                + ", ".join(lacks[:3]) + (f" and {len(lacks) - 3} more" if len(lacks) > 3 else ""))
            continue
        if lacks:  # a study's artefact is built from the blocks that have finished
            log(f"artefact {name}: {len(lacks)} of its runs not finished yet; built from the "
                "others")
        start = time.perf_counter()
        try:
            ARTEFACTS[name].builder(records, figures, **params)
        except FileNotFoundError as err:  # the records hold no run it can use
            missing[name] = [str(err)]
            log(f"artefact {name}: not built: {err}")
            continue
        built.append(name)
        log(f"artefact {name}: built in {time.perf_counter() - start:.1f} s")
    page = write_page(out / REPORT, figures=figures, records=records, artefacts=built,
                      commands=[command or f"prunefuse reproduce --profile {profile} "
                                f"--records {records} --out {out}"],
                      title=f"prunefuse reproduce --profile {profile} (from records)")
    log(f"figures and tables: {figures}; the page: {page}")
    return {"built": built, "missing": missing, "figures": figures, "report": page}


def batch_error(outcomes: dict, failed: list) -> BatchError:
    """One error naming every failed run, its error and its log."""
    lost = [o for o in failed if o.status == "failed"]
    done = sum(o.ok for o in outcomes.values())
    lines = [f"{len(lost)} of {len(outcomes)} runs failed ({done} finished"
             + (f", {len(failed) - len(lost)} not started: the batch stopped at the failure"
                if len(lost) < len(failed) else "")
             + "); artefact notebooks not run. Submit the same command again to retry the "
               "failed runs (finished ones are skipped)."]
    for o in lost:
        attempts = f"after {o.attempts} attempt(s)" if o.attempts else "(not started)"
        lines.append(f"run {o.run_id} failed {attempts}: {(o.error or {}).get('message', '')}"
                     f"\nlog: {o.log}")
    first = (lost[0].error or {}) if lost else {}
    return BatchError("\n".join(lines), outcomes=outcomes,
                      output=Path(first.get("output") or lost[0].log),
                      cell=first.get("cell"), ename=first.get("ename"), evalue=first.get("evalue"))


__all__ = ["reproduce", "rebuild", "run_parameters", "batch_error", "BatchError"]
