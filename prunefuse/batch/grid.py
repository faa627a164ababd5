"""The grid of runs behind the paper's artefacts: which runs each table and figure needs.

:func:`plan` reads the artefact registry (:data:`prunefuse.artefacts.ARTEFACTS`): each
artefact adds the runs it needs through a :class:`Planner` and names its notebook's
parameters. Every run config is validated (:func:`prunefuse.config.make_config`) while
planning, so a bad grid or override fails before anything runs. Runs are identified by their
run id; a run several artefacts need is planned once.

Ablation runs reuse the selection of their PruneFuse run through ``selection_from``, a path
relative to the batch folder (the notebooks run with it as working directory), so run ids do
not depend on where the batch folder is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..analysis.artefacts import ARTEFACTS
from ..analysis.comparisons import (
    DENSE_ARM,
    RANDOM_ARM,
    Arm,
    authors_arm,
    fused_arm,
    fusion_arm,
    kd_strength_arms,
    pf_arm,
    scratch_arm,
    svp_arm,
    v2_arm,
)
from ..run.config import ConfigError, make_config, run_id
from ..run.records import BATCH_RUNS

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
        # The rest of the paper, planned only with `reproduce --extended` (the extended
        # table): ResNet-56 on Tiny ImageNet-200 (a 100,000-image pool, 64x64), and the deeper
        # targets on the focus dataset. Baseline AL and PruneFuse, focus score.
        "extended": {"blocks": [["tiny-imagenet", "resnet56"], ["cifar10", "resnet110"],
                                ["cifar10", "preact-resnet164"], ["cifar10", "wrn-16-8"]],
                     "ratios": [0.5, 0.6, 0.7, 0.8]},
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
        "figure4_ratios": [0.5], "figure5_archs": ["resnet20"], "figure5_ratios": [0.5, 0.6, 0.7],
        "svp_proxy": "resnet8",
        # Table 2 (V1 vs V2 at T_sync = 1, 2; full runs) and the fusion readings (the V1
        # run's selection, target at the largest budget only), 3 seeds at p = 0.5; they run
        # after everything else, and only with `reproduce --extended` (whose --dry-run says
        # their hours).
        "variants": {"ratio": 0.5, "seeds": [0, 1, 2], "t_syncs": [1, 2],
                     "fusions": ["fresh", "conv_only", "fork"], "fusion_budgets": [0.3]},
        # The evidence arms, all on the main comparison's seeds, pools, initial labels and
        # dense inits, so that every difference is paired: extra seeds of dense AL,
        # PruneFuse p=0.5 and random with the target at the largest budget only; the
        # authors' reading of PruneFuse (full runs); KD strength, time to accuracy and
        # convergence (dense AL's target trained twice as long), each a target at the largest
        # budget trained on a main run's selection.
        # Time to accuracy's fused + KD arm also runs on the extra seeds ("reach_seeds"),
        # paired with their dense AL targets: whether a shorter schedule reaches dense AL is
        # the question fusion's promise stands on, and five seeds left it undecided.
        "evidence": {"extra_seeds": list(range(5, 15)), "seeds": [0, 1, 2, 3, 4],
                     "budget": 0.3, "epochs": [10, 20, 30, 60], "reach_seeds": list(range(5, 15)),
                     "convergence_factor": 2},
    },
    # The CPU study re-decided (prunefuse.comparisons.STUDY declares its arms, blocks and
    # claims): one machine per block, a pool per seed, the full test set.
    "study": {"datasets": ["fashion-mnist"], "focus": "fashion-mnist",
              "scores": ["least_confidence"], "focus_score": "least_confidence",
              "ratios": [0.5], "seeds": list(range(15)), "study": True},
    # Ten runs of seconds each, for the tests.
    "smoke": {
        "datasets": ["synthetic"], "focus": "synthetic",
        "scores": ["least_confidence"], "focus_score": "least_confidence",
        "ratios": [0.5, 0.6], "seeds": [0], "figure3_budgets": [0.2, 0.3],
        "figure4_ratios": [0.5, 0.6], "figure5_archs": ["resnet8"], "figure5_ratios": [0.5, 0.6],
        "svp_proxy": "resnet8",
        "variants": {"ratio": 0.5, "seeds": [0], "t_syncs": [1],
                     "fusions": ["fresh", "conv_only", "fork"], "fusion_budgets": [0.3]},
        "main_ratio": 0.5,
        "evidence": {"extra_seeds": [2], "seeds": [0, 1], "budget": 0.3, "epochs": [1, 2],
                     "reach_seeds": [2], "convergence_factor": 2},
    },
}

# Run parameters the grid sets; overriding them for every run would break the grid.
GRID_KEYS = ("dataset", "arch", "selector", "ratio", "proxy_arch", "score", "target_init",
             "kd_lambda", "seed", "selection_from", "t_sync", "fusion")
# Grid keys an override may still set for every run: the data and the target network. The
# grid's blocks then all use them (the extended table keeps its own blocks).
RETARGETABLE = ("dataset", "arch")


@dataclass
class Run:
    """One planned experiment: its parameters over the profile and who needs it."""

    run_id: str
    config: dict[str, Any]  # run parameters over the profile
    artefacts: list[str] = field(default_factory=list)
    needs: str | None = None  # run id whose selection this run reuses (runs before it)
    # The block it belongs to ("group/pool/s<seed>", prunefuse.comparisons): every run of a
    # block runs on one machine. None outside a declared study.
    block: str | None = None
    arm: str | None = None  # its arm's key there


@dataclass
class Plan:
    """The runs, in execution order, and the parameters of each artefact notebook."""

    profile: str
    runs: list[Run]
    notebooks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict:
        return {"profile": self.profile, "runs": [asdict(r) for r in self.runs],
                "notebooks": self.notebooks}


class Planner:
    """Collects the runs of one batch; an artefact's declaration adds its runs through the
    methods below (each adds to the artefact being planned, :attr:`artefact`).

    Attributes:
        profile, grid: the profile and its :data:`GRIDS` entry.
        arch: the target architecture of the profile (after overrides).
        focus, focus_score: dataset and score of the figures beyond the main table.
        shown: ``{"dataset", "arch", "score"}`` of those figures, for notebook parameters.
        ablation_ratios: pruning ratios of the ablation (default: the grid's ratios).
    """

    def __init__(self, profile: str, overrides: dict[str, Any]):
        self.profile, self.grid, self.overrides = profile, dict(GRIDS[profile]), overrides
        if "dataset" in overrides:  # your data: every block of the grid on it
            self.grid.update(datasets=[overrides["dataset"]], focus=overrides["dataset"])
        if "arch" in overrides:  # your model: the target of every figure
            self.grid["figure5_archs"] = [overrides["arch"]]
        resolved = make_config(profile, **overrides)
        self.arch = resolved["arch"]
        self.budget = resolved["budgets"][-1]  # the largest budget: the claims' budget
        self.focus, self.focus_score = self.grid["focus"], self.grid["focus_score"]
        self.shown = {"dataset": self.focus, "arch": self.arch, "score": self.focus_score}
        self.ablation_ratios = self.grid.get("ablation_ratios", self.grid["ratios"])
        self.runs: dict[str, Run] = {}
        self.artefact = ""

    def add(self, needs: str | None = None, **params: Any) -> str:
        """Plan the run with ``params`` (over the overrides) for the current artefact; returns
        its run id."""
        config = {**self.overrides, **params}
        rid = run_id(make_config(self.profile, **config))
        run = self.runs.setdefault(rid, Run(rid, config, needs=needs))
        if self.artefact not in run.artefacts:
            run.artefacts.append(self.artefact)
        return rid

    def _prunefuse(self, dataset: str, score: str, seed: int, ratio: float, **kw: Any) -> str:
        return self._arm(pf_arm(ratio), dataset, score, seed, **kw)

    def _arm(self, arm: Arm, dataset: str, score: str, seed: int, **kw: Any) -> str:
        """Plan ``arm`` (a declared pattern of parameters, prunefuse.comparisons) on
        ``dataset`` with ``score`` and ``seed``; ``kw``: what its context adds (a reused
        selection, the target's budgets or epochs, another target network)."""
        return self.add(dataset=dataset, **arm.params, score=score, seed=seed, **kw)

    def _seeds(self, ratio: float | None) -> list[int]:
        """The main comparison (baselines, PruneFuse at the main ratio) may get more seeds."""
        if ratio is None or ratio == self.grid.get("main_ratio"):
            return self.grid.get("main_seeds", self.grid["seeds"])
        return self.grid["seeds"]

    def main_runs(self, datasets: list[str] | None = None, scores: list[str] | None = None) -> None:
        """Baseline AL (random selection for the ``random`` score), the grid's extra baselines
        and PruneFuse at every ratio, for each dataset and score (default: the focus ones)."""
        extra = self.grid.get("main_extra", [])
        for dataset in datasets or [self.focus]:
            for score in scores or [self.focus_score]:
                for seed in self._seeds(None):
                    if score == "random":
                        self.add(dataset=dataset, **RANDOM_ARM.params, seed=seed)
                    else:
                        self.add(dataset=dataset, **DENSE_ARM.params, score=score, seed=seed)
                    if "svp" in extra and seed in self.grid.get("main_extra_seeds", [seed]):
                        self.add(dataset=dataset, **svp_arm(self.grid["svp_proxy"]).params,
                                 score=score, seed=seed)
                    if "random" in extra and score != "random":
                        self.add(dataset=dataset, **RANDOM_ARM.params, seed=seed)
                for p in self.grid["ratios"]:
                    for seed in self._seeds(p):
                        self._prunefuse(dataset, score, seed, p)

    def variant_runs(self, ratios: list[float], *, scratch_kd: bool = False,
                     every_epoch: bool = False) -> None:
        """PruneFuse at ``ratios`` and, on its selection, the target fused without KD and from
        scratch (and from scratch with KD when ``scratch_kd`` and the grid's ``scratch_kd``
        allow): the fusion / KD ablation. ``every_epoch``: those targets are tested after every
        epoch (``eval_every=1``, not part of the run id), for curves over epochs."""
        budgets = self.grid.get("ablation_budgets")
        scratch_kd = scratch_kd and self.grid.get("scratch_kd", True)
        for seed in self.grid["seeds"]:
            for p in ratios:
                main = self._prunefuse(self.focus, self.focus_score, seed, p)
                kd = make_config(self.profile, **self.runs[main].config)["kd_lambda"]
                arms = [fused_arm(p), scratch_arm(p)] + ([scratch_arm(p, kd)] if scratch_kd
                                                         else [])
                for arm in arms:
                    rid = self._arm(arm, self.focus, self.focus_score, seed, needs=main,
                                    selection_from=f"{BATCH_RUNS}/{main}",
                                    **({"eval_budgets": budgets} if budgets else {}))
                    if every_epoch:
                        self.runs[rid].config["eval_every"] = 1

    def extended_blocks(self) -> list[list[str]]:
        """``[dataset, target architecture]`` of each block of the extended table."""
        return [list(b) for b in self.grid["extended"]["blocks"]]

    def extended_runs(self) -> None:
        """Per block of the grid's ``extended`` entry: Baseline AL (the dense target selects)
        and PruneFuse at each of its ratios, on the focus score, every seed."""
        ext = self.grid["extended"]
        for dataset, arch in self.extended_blocks():
            for seed in self.grid["seeds"]:
                self.add(dataset=dataset, arch=arch, **DENSE_ARM.params, score=self.focus_score,
                         seed=seed)
                for p in ext["ratios"]:
                    self._prunefuse(dataset, self.focus_score, seed, p, arch=arch)

    def v2_runs(self) -> None:
        """Table 2: PruneFuse V1 and V2 at each of the grid's ``t_syncs``, full runs, per seed."""
        var = self.grid["variants"]
        for seed in var["seeds"]:
            self._prunefuse(self.focus, self.focus_score, seed, var["ratio"])
            for t in var["t_syncs"]:
                self._arm(v2_arm(var["ratio"], t), self.focus, self.focus_score, seed)

    def fusion_runs(self) -> None:
        """The readings of fusion: on the selection of the V1 run of the same seed, the
        target at ``fusion_budgets`` fused by each of the grid's ``fusions``."""
        var = self.grid["variants"]
        for seed in var["seeds"]:
            main = self._prunefuse(self.focus, self.focus_score, seed, var["ratio"])
            for fusion in var["fusions"]:
                self._arm(fusion_arm(var["ratio"], fusion), self.focus, self.focus_score, seed,
                          needs=main, selection_from=f"{BATCH_RUNS}/{main}",
                          eval_budgets=var["fusion_budgets"])

    def extra_seed_runs(self) -> None:
        """The main comparison with the extra seeds of the grid's ``evidence`` entry: dense
        AL, PruneFuse at the main ratio and random, full runs on the main seeds and the
        target at the largest budget only on the extra ones."""
        ev = self.grid["evidence"]
        for seed in self._seeds(None):
            self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score, seed=seed)
            self._prunefuse(self.focus, self.focus_score, seed, self.grid["main_ratio"])
            self.add(dataset=self.focus, **RANDOM_ARM.params, seed=seed)
        only = {"eval_budgets": [ev["budget"]]}
        for seed in ev["extra_seeds"]:
            self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score, seed=seed,
                     **only)
            self._prunefuse(self.focus, self.focus_score, seed, self.grid["main_ratio"], **only)
            self.add(dataset=self.focus, **RANDOM_ARM.params, seed=seed, **only)

    def authors_runs(self) -> None:
        """PruneFuse at the main ratio under the authors' reading (``reading="authors"``),
        full runs, on the evidence seeds."""
        for seed in self.grid["evidence"]["seeds"]:
            self._arm(authors_arm(self.grid["main_ratio"]), self.focus, self.focus_score, seed)

    def kd_runs(self) -> None:
        """KD strength: on each evidence seed's PruneFuse selection, the fused target at the
        largest budget with no KD and with the authors' KD (prunefuse.comparisons.
        kd_strength_arms; ours is the main run)."""
        ev, p = self.grid["evidence"], self.grid["main_ratio"]
        for seed in ev["seeds"]:
            main = self._prunefuse(self.focus, self.focus_score, seed, p)
            for arm in kd_strength_arms(p)[:2]:
                self._arm(arm, self.focus, self.focus_score, seed, needs=main,
                          selection_from=f"{BATCH_RUNS}/{main}", eval_budgets=[ev["budget"]])

    def time_to_accuracy_runs(self) -> None:
        """Targets at the largest budget trained for each of the grid's epochs (a full
        schedule of that length) on the evidence seeds: PruneFuse's selection fused + KD and
        from scratch, dense AL's selection from scratch; on the ``reach_seeds`` too, the fused
        + KD arm alone (its question, whether a shorter schedule reaches dense AL, needs the
        most seeds). The profile's own epochs are the main runs themselves."""
        ev, p = self.grid["evidence"], self.grid["main_ratio"]
        own = make_config(self.profile, **self.overrides)["target_epochs"]

        def fused(seed: int, pf: str, epochs: int) -> None:
            self._prunefuse(self.focus, self.focus_score, seed, p, needs=pf,
                            selection_from=f"{BATCH_RUNS}/{pf}", eval_budgets=[ev["budget"]],
                            target_epochs=epochs)

        for seed in ev["seeds"]:
            pf = self._prunefuse(self.focus, self.focus_score, seed, p)
            dense = self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score,
                             seed=seed)
            for epochs in ev["epochs"]:
                on = {"eval_budgets": [ev["budget"]], "target_epochs": epochs}
                if epochs != own:
                    fused(seed, pf, epochs)
                    self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score,
                             seed=seed, needs=dense, selection_from=f"{BATCH_RUNS}/{dense}", **on)
                self._arm(scratch_arm(p), self.focus, self.focus_score, seed, needs=pf,
                          selection_from=f"{BATCH_RUNS}/{pf}", **on)
        # On an extra seed the selection is its main-comparison PruneFuse run's (target at the
        # largest budget only), which is also its profile-length schedule.
        for seed in ev.get("reach_seeds", []):
            pf = self._prunefuse(self.focus, self.focus_score, seed, p,
                                 eval_budgets=[ev["budget"]])
            for epochs in ev["epochs"]:
                if epochs != own:
                    fused(seed, pf, epochs)

    def convergence_runs(self) -> None:
        """Convergence of the recipe: on each evidence seed's dense-AL selection, the target at
        the largest budget trained for ``convergence_factor`` times the profile's epochs (a
        full schedule of that length); the profile's own epochs are the main runs."""
        ev = self.grid["evidence"]
        own = make_config(self.profile, **self.overrides)["target_epochs"]
        for seed in ev["seeds"]:
            dense = self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score,
                             seed=seed)
            self.add(dataset=self.focus, **DENSE_ARM.params, score=self.focus_score, seed=seed,
                     needs=dense, selection_from=f"{BATCH_RUNS}/{dense}",
                     eval_budgets=[ev["budget"]],
                     target_epochs=ev["convergence_factor"] * own)

    def study_runs(self) -> None:
        """Every block of the declared study (:func:`prunefuse.comparisons.study_plan`), in
        its order: group by group, then pool size, then seed."""
        from ..analysis.comparisons import study_plan

        for br in study_plan(self.profile, dataset=self.focus, overrides=self.overrides,
                             runs_folder=BATCH_RUNS):
            rid = self.add(needs=br.needs, **br.params)
            if self.runs[rid].block is None:
                self.runs[rid].block, self.runs[rid].arm = br.block, br.arm

    def selector_size_runs(self) -> None:
        """Each Figure 5 target pruned at the Figure 5 ratios, and SVP's proxy selecting for it."""
        for target in self.grid["figure5_archs"]:
            for seed in self.grid["seeds"]:
                for p in self.grid["figure5_ratios"]:
                    self._prunefuse(self.focus, self.focus_score, seed, p, arch=target)
                self.add(dataset=self.focus, arch=target, **svp_arm(self.grid["svp_proxy"]).params,
                         score=self.focus_score, seed=seed)


def plan(profile: str, *, overrides: dict[str, Any] | None = None,
         artefacts: list[str] | None = None) -> Plan:
    """The runs every artefact of ``profile`` needs, each config validated, in run order.

    Args:
        profile: a key of :data:`GRIDS` (``paper``, ``cpu``, ``smoke``).
        overrides: run parameters applied to every run (``device``, ``target_epochs``, ...);
            ``dataset`` and ``arch`` put every block on your data and target network; the
            grid's other keys (:data:`GRID_KEYS`) are refused.
        artefacts: only these keys of :data:`prunefuse.artefacts.ARTEFACTS` (default: all).

    Returns:
        A :class:`Plan`; a run reusing another's selection comes after it.

    Raises:
        ConfigError: unknown profile or artefact, a grid key in ``overrides``, or any run
            config that :func:`prunefuse.config.make_config` rejects.
    """
    if profile not in GRIDS:
        raise ConfigError(f"profile={profile!r}: unknown; choose one of {sorted(GRIDS)}")
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & (set(GRID_KEYS) - set(RETARGETABLE)))
    if clash:
        raise ConfigError(f"{clash}: set by the {profile} grid, cannot be overridden for every "
                          f"run; overridable: dataset, arch and any key of "
                          f"prunefuse.config.PARAMS outside {list(GRID_KEYS)}")
    offered = default_artefacts(profile, extended=True)  # the optional ones may be asked for
    wanted = default_artefacts(profile) if artefacts is None else list(artefacts)
    bad = sorted(set(wanted) - set(offered))
    if bad:
        raise ConfigError(f"artefacts {bad}: unknown for the {profile} grid; choose from "
                          f"{offered}")
    planner = Planner(profile, overrides)
    notebooks = {}
    for name, art in ARTEFACTS.items():
        if name not in wanted:
            continue
        planner.artefact = name
        art.runs(planner)
        notebooks[name] = {"profile": profile, **art.params(planner)}
    return Plan(profile, _ordered(profile, list(planner.runs.values())), notebooks)


def default_artefacts(profile: str, *, extended: bool = False) -> list[str]:
    """The artefacts a batch of ``profile`` builds unless told otherwise: those its grid
    offers (an artefact that ``needs`` a grid entry, only where the grid has it), without the
    ``optional`` ones unless ``extended`` (:class:`prunefuse.registry.Artefact`)."""
    grid = GRIDS[profile]
    if "study" in grid:  # a declared study builds its own artefacts only
        return [a for a, art in ARTEFACTS.items() if art.needs == "study"
                and (extended or not art.optional)]
    return [a for a, art in ARTEFACTS.items()
            if (art.needs is None or art.needs in grid) and (extended or not art.optional)]


def _ordered(profile: str, runs: list[Run]) -> list[Run]:
    """By the grid's run order (``order``: tiers of rules), then seed by seed: a batch stopped
    early leaves complete, paired seeds of the most important runs behind. A run reusing a
    selection has its source's seed and tier, and was planned after it, so it still comes
    later."""
    if "study" in GRIDS[profile]:  # a declared study runs block by block, as planned
        return runs
    tiers = GRIDS[profile].get("order", [])

    def key(run: Run) -> tuple[int, int]:
        cfg = make_config(profile, **run.config)
        if cfg["t_sync"] or cfg["fusion"] != "indices":  # Table 2 and fusion readings: last
            return len(tiers) + 1, cfg["seed"]
        for i, rules in enumerate(tiers):
            if any(all(cfg[k] in v if isinstance(v, list) else cfg[k] == v
                       for k, v in rule.items()) for rule in rules):
                return i, cfg["seed"]
        return len(tiers), cfg["seed"]

    return sorted(runs, key=key)


def describe_plan(the_plan: Plan) -> str:
    """One line per run (id and the artefacts it serves), then the artefact notebooks."""
    lines = [f"{len(the_plan.runs)} runs ({the_plan.profile} profile):"]
    lines += [f"  {r.run_id}  [{', '.join(r.artefacts)}]" for r in the_plan.runs]
    lines.append("artefact notebooks:")
    lines += [f"  {ARTEFACTS[a].notebook}  {json.dumps(p)}" for a, p in the_plan.notebooks.items()]
    return "\n".join(lines)


__all__ = ["GRIDS", "GRID_KEYS", "Run", "Plan", "Planner", "plan", "default_artefacts",
           "describe_plan"]
