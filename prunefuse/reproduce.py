"""Regenerate every table and figure of the paper with papermill.

``prunefuse reproduce --profile smoke|demo|paper --out DIR`` plans the grid of runs each
artefact needs (:func:`plan`), executes ``notebooks/experiment.ipynb`` once per run, each in
a fresh kernel (runs already ``DONE`` are skipped, unfinished ones resume), then one notebook
per artefact, which reads only the run records and writes into ``DIR/figures``.

Everything is checked before anything runs: every run config (:func:`prunefuse.config.make_config`)
and every notebook parameter against the notebook's ``parameters`` cell (papermill itself only
warns about unknown names). A failing notebook stops the batch with its failing cell's error;
the partially executed notebook stays where it was written (``DIR/runs/<run_id>/experiment.ipynb``
for a run, ``DIR/notebooks/<name>.ipynb`` for an artefact).

Runs execute on this machine, one per visible GPU or CPU slot, or as Ray tasks on a cluster
(:mod:`prunefuse.executors`); a run that fails is retried up to a limit, the batch stops (local)
or finishes the other runs (Ray), and :class:`BatchError` names every failed run and its log.
Submitting the same batch again skips the finished runs and resumes the others.

Layout of ``DIR``: ``plan.json``, ``runs/<run_id>/`` (records + executed notebook + ``log.txt``),
``notebooks/`` (executed artefact notebooks), ``figures/`` (tables, figures, captions).
Ablation runs reuse the selection of their PruneFuse run through ``selection_from``, a path
relative to ``DIR`` (the notebooks run with ``DIR`` as working directory), so run ids do not
depend on where ``DIR`` is.
"""

from __future__ import annotations

import ast
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, make_config, run_id
from .executors import Executor, Job, LocalExecutor

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPERIMENT = "experiment.ipynb"
# Artefact -> the notebook that builds it (each calls the builder of the same name in
# prunefuse.artefacts.BUILDERS).
ARTEFACTS = {
    "main_table": "main_table.ipynb",
    "figure3": "figure3_selection_macs.ipynb",
    "figure4": "figure4_epochs.ipynb",
    "figure5": "figure5_selector_size.ipynb",
    "ablation": "ablation.ipynb",
    "cost": "cost_accuracy.ipynb",
    "table2": "table2.ipynb",
    "fusion_variants": "fusion_variants.ipynb",
}
# Artefacts a grid plans only when it has a "variants" entry (PruneFuse V2 and the readings
# of fusion, each paired with the V1 run of the same seed at the grid's "ratio").
VARIANT_ARTEFACTS = ("table2", "fusion_variants")

# The grid per profile. The run parameters not named here come from the profile
# (prunefuse.config.PROFILES): target architecture, budgets, epochs, ...
GRIDS: dict[str, dict[str, Any]] = {
    "paper": {
        "datasets": ["cifar10", "cifar100"],  # main table: one block per dataset
        "focus": "cifar10",  # dataset of Figures 3-5, the ablation and the cost figure
        "scores": ["least_confidence", "entropy", "kcenter", "random"],  # main table
        "focus_score": "least_confidence",  # score of Figures 3-5, ablation and cost
        "ratios": [0.5, 0.6, 0.7, 0.8],  # pruning ratios p, fraction of channels removed
        "seeds": [0, 1, 2],
        "figure3_budgets": [0.1, 0.3, 0.5],  # fractions of the pool
        "figure4_ratios": [0.5, 0.6],
        "figure5_archs": ["resnet14", "resnet20"],  # targets pruned for Figure 5
        "figure5_ratios": [0.5, 0.6],
        "svp_proxy": "resnet8",  # SVP's selector in Figure 5
    },
    # The CPU study (docs/method.md, "The CPU study"): 5 seeds for the main comparison (dense
    # AL, SVP, random and PruneFuse at p=0.5), 3 for p=0.6 and 0.7 and the ablations. The
    # ablation variants reuse the selection of their PruneFuse run and train the target at the
    # largest budget only; Figures 3-5 and the cost figure reuse the main runs.
    "cpu": {
        "datasets": ["fashion-mnist"], "focus": "fashion-mnist",
        "scores": ["least_confidence"], "focus_score": "least_confidence",
        "ratios": [0.5, 0.6, 0.7], "seeds": [0, 1, 2], "main_seeds": [0, 1, 2, 3, 4],
        "main_ratio": 0.5, "main_extra": ["svp", "random"], "main_extra_seeds": [0, 1, 2],
        "ablation_ratios": [0.5], "ablation_budgets": [0.3], "scratch_kd": False,
        "figure3_budgets": [0.1, 0.2, 0.3],
        # Run order, tier by tier (a run is in the first tier one of whose rules it matches):
        # every method at seeds 0-2 but p=0.7, then the main comparison's seeds 3-4, then p=0.7.
        "order": [[{"seed": [0, 1, 2], "selector": ["dense", "random", "svp"]},
                   {"seed": [0, 1, 2], "selector": "prunefuse", "ratio": [0.5, 0.6]}],
                  [{"selector": ["dense", "random"]},
                   {"selector": "prunefuse", "ratio": 0.5}]],
        "figure4_ratios": [0.5], "figure5_archs": ["resnet20"], "figure5_ratios": [0.5, 0.6],
        "svp_proxy": "resnet8",
        # Table 2 (V1 vs V2 at T_sync = 1, 2; full runs) and the fusion readings (the V1
        # run's selection, target at the largest budget only), 3 seeds at p = 0.5; they run
        # after everything else.
        "variants": {"ratio": 0.5, "seeds": [0, 1, 2], "t_syncs": [1, 2],
                     "fusions": ["fresh", "conv_only", "fork"], "fusion_budgets": [0.3]},
    },
    # Ten runs of seconds each, for the tests.
    "smoke": {
        "datasets": ["synthetic"], "focus": "synthetic",
        "scores": ["least_confidence"], "focus_score": "least_confidence",
        "ratios": [0.5, 0.6], "seeds": [0], "figure3_budgets": [0.2, 0.3],
        "figure4_ratios": [0.5, 0.6], "figure5_archs": ["resnet8"], "figure5_ratios": [0.5, 0.6],
        "svp_proxy": "resnet8",
        "variants": {"ratio": 0.5, "seeds": [0], "t_syncs": [1],
                     "fusions": ["fresh", "conv_only", "fork"], "fusion_budgets": [0.3]},
    },
}

# Run parameters the grid sets; overriding them for every run would break the grid.
GRID_KEYS = ("dataset", "arch", "selector", "ratio", "proxy_arch", "score", "target_init",
             "kd_lambda", "seed", "selection_from", "t_sync", "fusion")


class ParameterError(ConfigError):
    """A notebook parameter is unknown or of the wrong type."""


class NotebookRunError(RuntimeError):
    """A notebook failed; names the cell and its error, and where the partial notebook is."""

    def __init__(self, message: str, *, output: Path, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None):
        super().__init__(message)
        self.output, self.cell, self.ename, self.evalue = output, cell, ename, evalue


class BatchError(NotebookRunError):
    """Runs of a batch failed for good; ``outcomes`` holds every run's
    :class:`prunefuse.executors.Outcome` (the failed ones name their error and log)."""

    def __init__(self, message: str, *, outcomes: dict, **kw):
        super().__init__(message, **kw)
        self.outcomes = outcomes


@dataclass
class Run:
    """One planned experiment: its parameters over the profile and who needs it."""

    run_id: str
    config: dict[str, Any]  # run parameters over the profile
    artefacts: list[str] = field(default_factory=list)
    needs: str | None = None  # run id whose selection this run reuses (runs before it)


@dataclass
class Plan:
    """The runs, in execution order, and the parameters of each artefact notebook."""

    profile: str
    runs: list[Run]
    notebooks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict:
        return {"profile": self.profile, "runs": [asdict(r) for r in self.runs],
                "notebooks": self.notebooks}


# -- planning ----------------------------------------------------------------------------------

def plan(profile: str, *, overrides: dict[str, Any] | None = None,
         artefacts: list[str] | None = None) -> Plan:
    """The runs every artefact of ``profile`` needs, each config validated, in run order.

    Args:
        profile: a key of :data:`GRIDS` (``paper``, ``demo``, ``smoke``).
        overrides: run parameters applied to every run (``device``, ``target_epochs``, ...);
            the grid's own keys (:data:`GRID_KEYS`) are refused.
        artefacts: only these keys of :data:`ARTEFACTS` (default: all).

    Returns:
        A :class:`Plan`; a run reusing another's selection comes after it.

    Raises:
        ConfigError: unknown profile or artefact, a grid key in ``overrides``, or any run
            config that :func:`prunefuse.config.make_config` rejects.
    """
    if profile not in GRIDS:
        raise ConfigError(f"profile={profile!r}: unknown; choose one of {sorted(GRIDS)}")
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & set(GRID_KEYS))
    if clash:
        raise ConfigError(f"{clash}: set by the {profile} grid, cannot be overridden for every "
                          f"run; overridable: any other key of prunefuse.config.PARAMS")
    grid = GRIDS[profile]
    offered = [a for a in ARTEFACTS if "variants" in grid or a not in VARIANT_ARTEFACTS]
    wanted = offered if artefacts is None else list(artefacts)
    bad = sorted(set(wanted) - set(offered))
    if bad:
        raise ConfigError(f"artefacts {bad}: unknown for the {profile} grid; choose from "
                          f"{offered}")
    arch = make_config(profile, **overrides)["arch"]
    runs: dict[str, Run] = {}

    def add(artefact: str, needs: str | None = None, **params) -> str:
        config = {**overrides, **params}
        rid = run_id(make_config(profile, **config))
        run = runs.setdefault(rid, Run(rid, config, needs=needs))
        if artefact not in run.artefacts:
            run.artefacts.append(artefact)
        if artefact == "figure4" and needs:  # its fused / scratch curves: every epoch tested
            run.config["eval_every"] = 1
        return rid

    def baseline(artefact: str, dataset: str, score: str, seed: int) -> str:
        if score == "random":
            return add(artefact, dataset=dataset, selector="random", seed=seed)
        return add(artefact, dataset=dataset, selector="dense", score=score, seed=seed)

    def prunefuse(artefact: str, dataset: str, score: str, seed: int, ratio: float, **kw) -> str:
        return add(artefact, dataset=dataset, selector="prunefuse", ratio=ratio, score=score,
                   seed=seed, **kw)

    focus, fscore, seeds = grid["focus"], grid["focus_score"], grid["seeds"]
    main_seeds = grid.get("main_seeds", seeds)

    def seeds_for(p: float | None) -> list[int]:
        """The main comparison (baselines, PruneFuse at the main ratio) gets more seeds."""
        return main_seeds if p is None or p == grid.get("main_ratio") else seeds

    def main_runs(artefact: str, dataset: str, score: str) -> None:
        for seed in seeds_for(None):
            baseline(artefact, dataset, score, seed)
            if "svp" in grid.get("main_extra", []) and seed in grid.get("main_extra_seeds", [seed]):
                add(artefact, dataset=dataset, selector="svp", proxy_arch=grid["svp_proxy"],
                    score=score, seed=seed)
            if "random" in grid.get("main_extra", []) and score != "random":
                add(artefact, dataset=dataset, selector="random", seed=seed)
        for p in grid["ratios"]:
            for seed in seeds_for(p):
                prunefuse(artefact, dataset, score, seed, p)

    if "main_table" in wanted:
        for dataset in grid["datasets"]:
            for score in grid["scores"]:
                main_runs("main_table", dataset, score)
    for artefact in ("figure3", "cost"):
        if artefact in wanted:
            main_runs(artefact, focus, fscore)
    for artefact, ratios in (("ablation", grid.get("ablation_ratios", grid["ratios"])),
                             ("figure4", grid["figure4_ratios"])):
        if artefact not in wanted:
            continue
        budgets = grid.get("ablation_budgets")
        for seed in seeds:
            for p in ratios:
                main = prunefuse(artefact, focus, fscore, seed, p)
                kd = make_config(profile, **runs[main].config)["kd_lambda"]
                variants = [("fused", 0.0), ("scratch", 0.0)]
                if artefact == "ablation" and grid.get("scratch_kd", True):
                    variants.append(("scratch", kd))
                for init, lam in variants:
                    prunefuse(artefact, focus, fscore, seed, p, needs=main, target_init=init,
                              kd_lambda=lam, selection_from=f"runs/{main}",
                              **({"eval_budgets": budgets} if budgets else {}))
    if "figure5" in wanted:
        for target in grid["figure5_archs"]:
            for seed in seeds:
                for p in grid["figure5_ratios"]:
                    prunefuse("figure5", focus, fscore, seed, p, arch=target)
                add("figure5", dataset=focus, arch=target, selector="svp",
                    proxy_arch=grid["svp_proxy"], score=fscore, seed=seed)

    var = grid.get("variants", {})
    for seed in var.get("seeds", []) if "table2" in wanted else []:
        prunefuse("table2", focus, fscore, seed, var["ratio"])
        for t in var["t_syncs"]:
            prunefuse("table2", focus, fscore, seed, var["ratio"], t_sync=t)
    for seed in var.get("seeds", []) if "fusion_variants" in wanted else []:
        main = prunefuse("fusion_variants", focus, fscore, seed, var["ratio"])
        for fusion in var["fusions"]:
            prunefuse("fusion_variants", focus, fscore, seed, var["ratio"], needs=main,
                      fusion=fusion, selection_from=f"runs/{main}",
                      eval_budgets=var["fusion_budgets"])

    shown = {"dataset": focus, "arch": arch, "score": fscore}
    params = {
        "main_table": {"datasets": grid["datasets"], "arch": arch, "scores": grid["scores"],
                       "ratios": grid["ratios"]},
        "figure3": {**shown, "ratios": grid["ratios"], "budgets": grid["figure3_budgets"]},
        "figure4": {**shown, "ratios": grid["figure4_ratios"]},
        "figure5": {"dataset": focus, "archs": grid["figure5_archs"], "score": fscore,
                    "ratios": grid["figure5_ratios"], "proxy_arch": grid["svp_proxy"]},
        "ablation": {**shown, "ratios": grid.get("ablation_ratios", grid["ratios"])},
        "cost": {**shown, "ratios": grid["ratios"]},
    }
    if var:
        params["table2"] = {**shown, "ratio": var["ratio"], "t_syncs": var["t_syncs"]}
        params["fusion_variants"] = {**shown, "ratio": var["ratio"], "fusions": var["fusions"]}
    notebooks = {a: {"profile": profile, **params[a]} for a in ARTEFACTS if a in wanted}
    # By the grid's run order, then seed by seed: a batch stopped early leaves complete, paired
    # seeds of the most important runs behind. A run reusing a selection has its source's seed
    # and tier, and was added after it, so it still comes later.
    tiers = grid.get("order", [])

    def tier(run: Run) -> int:
        cfg = make_config(profile, **run.config)
        if cfg["t_sync"] or cfg["fusion"] != "indices":  # Table 2 and fusion readings: last
            return len(tiers) + 1
        for i, rules in enumerate(tiers):
            if any(all(cfg[k] in v if isinstance(v, list) else cfg[k] == v
                       for k, v in rule.items()) for rule in rules):
                return i
        return len(tiers)

    ordered = sorted(runs.values(), key=lambda r: (tier(r), make_config(profile, **r.config)[
        "seed"]))
    return Plan(profile, ordered, notebooks)


# -- notebooks ---------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int),
                                       "bool": (bool,), "list": (list,), "dict": (dict,)}


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """The parameters a notebook declares (papermill's view of its ``parameters`` cell):
    name -> {``inferred_type_name``, ``default``, ``help``}."""
    import papermill

    path = Path(notebook)
    if not path.exists():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    return papermill.inspect_notebook(str(path))


def check_parameters(notebook: str | os.PathLike, parameters: dict[str, Any]) -> None:
    """Refuse parameters a notebook does not declare, or of another type than its default.

    Raises:
        ParameterError: naming the parameter, what it got, and what the notebook declares.
    """
    declared = notebook_parameters(notebook)
    name = Path(notebook).name
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ParameterError(f"{name}: unknown parameter(s) {unknown}; it declares "
                             f"{sorted(declared)}")
    for key, value in parameters.items():
        spec = declared[key]
        types = _TYPES.get(spec["inferred_type_name"])
        if types is None:  # no annotation: take the type of the default literal
            try:
                types = (type(ast.literal_eval(spec["default"])),)
            except (ValueError, SyntaxError):
                continue
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ParameterError(
                f"{name}: parameter {key}={value!r} is {type(value).__name__}, expected "
                f"{' or '.join(t.__name__ for t in types)} (default {spec['default']}: "
                f"{spec['help']})")


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike,
                     parameters: dict[str, Any], *, cwd: str | os.PathLike | None = None) -> Path:
    """Check ``parameters``, then execute ``notebook`` into ``output`` in a fresh ``python3``
    kernel (a process of its own); ``output`` is saved after every cell.

    Raises:
        ParameterError: before anything runs (see :func:`check_parameters`).
        NotebookRunError: a cell raised, or the kernel died; ``output`` keeps the partial
            notebook and the message names the cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_parameters(notebook, parameters)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                                   kernel_name="python3", progress_bar=False,
                                   cwd=None if cwd is None else str(cwd),
                                   request_save_on_cell_execute=True)
    except PapermillExecutionError as err:
        first = next((line for line in err.source.splitlines() if line.strip()), "")
        raise NotebookRunError(
            f"{Path(notebook).name} failed in cell In [{err.exec_count}] (`{first.strip()}`): "
            f"{err.ename}: {err.evalue}\npartial notebook kept at {output}",
            output=output, cell=err.exec_count, ename=err.ename, evalue=err.evalue) from None
    except Exception as err:  # kernel died, timed out, could not start
        raise NotebookRunError(f"{Path(notebook).name} did not finish: {type(err).__name__}: "
                               f"{err}\npartial notebook kept at {output}", output=output) from err
    return output


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel as err:
        raise ConfigError("jupyter kernel 'python3' is not installed; run `python -m ipykernel "
                          "install --sys-prefix --name python3`") from err


# -- the batch ---------------------------------------------------------------------------------

def run_parameters(profile: str, run: Run) -> dict[str, Any]:
    """The experiment notebook's parameters for one planned run (working directory: ``out``)."""
    return {"profile": profile, "config": run.config, "out": "runs", "progress": False}


def reproduce(profile: str, out: str | os.PathLike, *, figures: str | os.PathLike | None = None,
              overrides: dict[str, Any] | None = None, artefacts: list[str] | None = None,
              run_figures: bool = True, notebooks: str | os.PathLike = NOTEBOOKS,
              executor: Executor | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, check, then execute every run and every artefact notebook of ``profile``.

    Args:
        profile: ``paper``, ``demo`` or ``smoke``.
        out: the batch folder (see the module docstring for its layout); with a Ray cluster,
            a path every worker sees (shared storage).
        figures: where artefacts write (default ``out/figures``).
        overrides: run parameters for every run (see :func:`plan`).
        artefacts: only these artefacts and their runs (default: all).
        run_figures: False to execute the runs only.
        notebooks: folder holding ``experiment.ipynb`` and the artefact notebooks.
        executor: where the runs execute (default :class:`prunefuse.executors.LocalExecutor`:
            one run per visible GPU, else one at a time; stops at the first failure).
        log: progress lines go here.

    Returns:
        ``{"plan": Plan, "executed": [run ids], "skipped": [run ids], "outcomes": {run id:
        Outcome}, "notebooks": [paths], "figures": Path}``.

    Raises:
        ConfigError: (including :class:`ParameterError`) before anything runs.
        BatchError: runs failed for good (after their retries); names each with its error and
            log; the artefact notebooks did not run.
        NotebookRunError: an artefact notebook failed.
    """
    out = Path(out).resolve()
    figures = (out / "figures") if figures is None else Path(figures).resolve()
    notebooks = Path(notebooks).resolve()
    the_plan = plan(profile, overrides=overrides, artefacts=artefacts)
    experiment = notebooks / EXPERIMENT
    jobs = [(notebooks / ARTEFACTS[a], {"records": str(out / "runs"), "figures": str(figures),
                                        **p}) for a, p in the_plan.notebooks.items()]
    for nb in [experiment] + [nb for nb, _ in jobs]:
        if not nb.exists():
            raise FileNotFoundError(f"notebook {str(nb)!r} is missing; reproduce needs the "
                                    f"repository's notebooks/ folder (notebooks={str(notebooks)!r})")
    for run in the_plan.runs:
        check_parameters(experiment, run_parameters(profile, run))
    for nb, params in jobs:
        check_parameters(nb, params)
    _check_kernel()

    from .runs import atomic_write_json  # imports torch: only once there is work to do

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "plan.json", the_plan.to_dict())
    skipped, todo = [], []
    n = len(the_plan.runs)
    for i, run in enumerate(the_plan.runs, 1):
        run_dir = out / "runs" / run.run_id
        if (run_dir / "DONE").exists():
            skipped.append(run.run_id)
            log(f"[{i}/{n}] {run.run_id}: done, skipped")
            continue
        todo.append(Job(run.run_id, str(experiment), str(run_dir / EXPERIMENT),
                        run_parameters(profile, run), str(out), str(run_dir), needs=run.needs,
                        label=", ".join(run.artefacts)))
    outcomes = {}
    if todo:
        executor = executor or LocalExecutor()
        log(f"{len(todo)} of {n} runs to execute ({len(skipped)} done) on {executor.describe()}")
        start = time.perf_counter()
        outcomes = executor.run(todo, log=log)
        failed = [o for o in outcomes.values() if not o.ok]
        if failed:
            raise _batch_error(outcomes, failed)
        log(f"{len(todo)} runs finished in {time.perf_counter() - start:.0f} s")
    written = []
    if run_figures:
        for nb, params in jobs:
            start = time.perf_counter()
            log(f"artefact {nb.stem} ...")
            written.append(execute_notebook(nb, out / "notebooks" / nb.name, params, cwd=out))
            log(f"      finished in {time.perf_counter() - start:.0f} s")
        log(f"figures and tables: {figures}")
    return {"plan": the_plan, "executed": [rid for rid, o in outcomes.items() if o.ok],
            "skipped": skipped, "outcomes": outcomes, "notebooks": written, "figures": figures}


def _batch_error(outcomes: dict, failed: list) -> BatchError:
    """One message naming every failed run, its error and its log."""
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


def describe_plan(the_plan: Plan) -> str:
    """One line per run (id and the artefacts it serves), then the artefact notebooks."""
    lines = [f"{len(the_plan.runs)} runs ({the_plan.profile} profile):"]
    lines += [f"  {r.run_id}  [{', '.join(r.artefacts)}]" for r in the_plan.runs]
    lines.append("artefact notebooks:")
    lines += [f"  {ARTEFACTS[a]}  {json.dumps(p)}" for a, p in the_plan.notebooks.items()]
    return "\n".join(lines)


__all__ = ["GRIDS", "ARTEFACTS", "plan", "reproduce", "check_parameters",
           "execute_notebook", "notebook_parameters", "ParameterError", "NotebookRunError",
           "BatchError"]
