"""Comparisons, declared once: arms, blocks, hypotheses and wording.

An :class:`Arm` is a named pattern of run parameters with its label, the one name it has in
every table, figure, caption and claim. A :class:`Group` is a family of blocks: for each of
its pool sizes and seeds, one block holds every arm of the group, and all of a block's runs
run on one machine (seconds and float rounding differ between CPUs, so a pair never crosses
machines). A :class:`Comparison` names two arms of one group, the statistic, the hypothesis
(superiority, non-inferiority at a margin, or equivalence within a margin) and its claim text.

The planner plans runs from the groups (:func:`study_runs`), and the builders select rows by
the arms' patterns (:func:`arm_mask`); nothing else spells an arm. The margins are argued in
docs/method.md ("Margins").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import READINGS, make_config, run_id

# The authors' KD values (their reading's preset), for the arms that use them alone.
AUTHORS_KD = {key: READINGS["authors"][key] for key in ("kd_lambda", "kd_temperature", "kd_t2")}
# The best-over-epochs reading of the authors tests every this many epochs in the study: with
# the full 10,000-image test set, testing after every one of 60 epochs would add about two
# hours of test passes to each run on one CPU thread; every 20th is three passes per target.
AUTHORS_EVAL_EVERY = 20

HYPOTHESES = ("superiority", "noninferiority", "equivalence")
STATISTICS = ("difference", "ratio")


@dataclass(frozen=True)
class Arm:
    """A named pattern of run parameters (over the profile).

    ``on``: the arm whose selection this one retrains a target on (``selection_from`` that
    arm's run of the same seed and pool, in the group named by ``on_group``).
    """

    key: str
    label: str
    params: Mapping[str, Any]
    on: str | None = None
    on_group: str = "main"


@dataclass(frozen=True)
class Group:
    """A family of blocks: every arm of ``arms`` for each pool size and seed, with the
    targets trained at ``eval_budgets`` (fractions of the pool)."""

    key: str
    title: str
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    pools: tuple[int, ...]
    eval_budgets: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """One claim: ``arm`` against ``against`` within each block of ``group``, paired by seed.

    ``statistic``: ``difference`` (arm minus comparator, in the measure's unit) or ``ratio``
    (arm over comparator). ``hypothesis``: ``superiority`` (the interval lies beyond the null
    in ``higher``'s direction), ``noninferiority`` (it lies beyond null minus ``margin``), or
    ``equivalence`` (it lies within null +- ``margin``). ``budgets``: where it is judged
    (``None``: every budget both arms ran).
    """

    key: str
    claim: str
    source: str  # "paper" or "ours"
    arm: str
    against: str
    group: str = "main"
    measure: str = "acc_pct"
    statistic: str = "difference"
    hypothesis: str = "superiority"
    margin: float = 0.0
    higher: bool = True
    budgets: tuple[float, ...] | None = None
    pool: int | None = None  # the group's pool size it is judged at (None: every one)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.hypothesis not in HYPOTHESES:
            raise ValueError(f"{self.key}: hypothesis={self.hypothesis!r}; one of {HYPOTHESES}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"{self.key}: statistic={self.statistic!r}; one of {STATISTICS}")
        if self.hypothesis != "superiority" and self.margin <= 0:
            raise ValueError(f"{self.key}: a {self.hypothesis} claim needs a margin > 0")


@dataclass(frozen=True)
class Study:
    """Everything a batch of the study declares: arms, groups (in run order) and claims."""

    arms: Mapping[str, Arm]
    groups: tuple[Group, ...]
    comparisons: tuple[Comparison, ...]
    score: str = "least_confidence"

    def group(self, key: str) -> Group:
        return next(g for g in self.groups if g.key == key)


def _arms(*arms: Arm) -> dict[str, Arm]:
    return {a.key: a for a in arms}


def _study() -> Study:
    """The CPU study's declaration (profile ``study``)."""
    pf = {"selector": "prunefuse", "ratio": 0.5}
    authors = {**pf, "reading": "authors", "eval_every": AUTHORS_EVAL_EVERY}
    retrain = [
        Arm("pf_scratch", "PruneFuse's selection, from scratch", {**pf, "target_init": "scratch",
                                                                  "kd_lambda": 0.0}, on="pf"),
        Arm("pf_fused", "fused, no KD", {**pf, "kd_lambda": 0.0}, on="pf"),
        Arm("pf_fused_kd_authors", "fused + the authors' KD", {**pf, **AUTHORS_KD}, on="pf"),
        Arm("pf_fused_kd_ours", "fused + our KD", dict(pf), on="pf"),
        Arm("dense_retrained", "dense AL's selection", {"selector": "dense"}, on="dense"),
    ]
    short = [Arm(f"{a.key}_{e}", f"{a.label}, {e} epochs", {**a.params, "target_epochs": e},
                 on="pf")
             for a in retrain[1:4] for e in (10, 20, 30)]
    arms = _arms(
        Arm("dense", "dense AL", {"selector": "dense"}),
        Arm("pf", "PruneFuse p=0.5", pf),
        Arm("pf_authors", "PruneFuse p=0.5 (authors' reading)", authors),
        Arm("random", "random", {"selector": "random"}),
        *[Arm(f"{k}_low", label, params, on=k)
          for k, label, params in (("dense", "dense AL", {"selector": "dense"}),
                                   ("pf", "PruneFuse p=0.5", pf),
                                   ("pf_authors", "PruneFuse p=0.5 (authors' reading)", authors),
                                   ("random", "random", {"selector": "random"}))],
        *retrain, *short)
    main = ("dense", "pf", "pf_authors", "random")
    groups = (
        Group("main", "The main comparison", main, tuple(range(15)), (4000,), (0.3,)),
        Group("budgets", "The main comparison at the lower budgets",
              tuple(f"{a}_low" for a in main), tuple(range(8)), (4000,), (0.1, 0.2)),
        Group("pool", "Pool size", ("dense", "pf", "pf_authors"), tuple(range(5)),
              (2000, 8000), (0.3,)),
        Group("pool_large", "Pool size, the largest pool", ("dense", "pf", "pf_authors"),
              tuple(range(3)), (16000,), (0.3,)),
        Group("kd", "Fusion and KD on PruneFuse's selection",
              tuple(a.key for a in retrain + short), tuple(range(8)), (4000,), (0.3,)),
    )
    return Study(arms, groups, ())


STUDY = _study()


@dataclass(frozen=True)
class BlockRun:
    """One planned run of the study: its block, arm, parameters (over the profile) and the
    run whose selection it retrains on (``needs``)."""

    run_id: str
    group: str
    pool: int
    seed: int
    arm: str
    params: Mapping[str, Any]
    needs: str | None = None

    @property
    def block(self) -> str:
        return f"{self.group}/{self.pool}/s{self.seed}"


def study_plan(profile: str, *, dataset: str, overrides: Mapping[str, Any] | None = None,
               runs_folder: str = "runs", study: Study = STUDY) -> list[BlockRun]:
    """Every run of ``study``, group by group in declaration order, then pool size, then
    seed, each block's arms in their order; an arm that retrains on another's selection
    comes right after that run (``selection_from`` = ``runs_folder/<its run id>``).

    A run that two blocks would share is listed once, in the first."""
    overrides = dict(overrides or {})
    planned: dict[str, BlockRun] = {}

    def arm_run(group: Group, arm_key: str, pool: int, seed: int) -> str:
        arm = study.arms[arm_key]
        params = {**overrides, "dataset": dataset, "score": study.score, **arm.params,
                  "seed": seed, "max_train": pool, "eval_budgets": list(group.eval_budgets)}
        needs = None
        if arm.on is not None:
            needs = arm_run(study.group(arm.on_group), arm.on, pool, seed)
            params["selection_from"] = f"{runs_folder}/{needs}"
        rid = run_id(make_config(profile, **params))
        planned.setdefault(rid, BlockRun(rid, group.key, pool, seed, arm_key, params, needs))
        return rid

    for group in study.groups:
        for pool in group.pools:
            for seed in group.seeds:
                for arm_key in group.arms:
                    arm_run(group, arm_key, pool, seed)
    return list(planned.values())
