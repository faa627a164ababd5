"""Comparisons, declared once: arms, blocks, hypotheses and wording.

An :class:`Arm` is a named pattern of run parameters with its label, the one name it has in
every table, figure, caption and claim. A :class:`Group` is a family of blocks: for each of
its pool sizes and seeds, one block holds every arm of the group, and all of a block's runs
run on one machine (seconds and float rounding differ between CPUs, so a pair never crosses
machines). A :class:`Comparison` names two arms of one group, the statistic, the hypothesis
(superiority, non-inferiority at a margin, or equivalence within a margin) and its claim text.

The planner plans runs from the groups (:func:`study_plan`), and the study's artefacts select
rows by the run ids it plans for each arm (prunefuse.study.study_rows), so nothing else spells
a study's arm. The margins are argued in
docs/method.md ("Margins").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..run.config import READINGS, make_config, run_id
from ..run.records import SELECTOR_LABELS, pf_label, svp_label
from .judge import HYPOTHESES

DENSE, RANDOM = SELECTOR_LABELS["dense"], SELECTOR_LABELS["random"]

# The authors' KD values (their reading's preset), for the arms that use them alone.
AUTHORS_KD = {key: READINGS["authors"][key] for key in ("kd_lambda", "kd_temperature", "kd_t2")}
# The best-over-epochs reading of the authors tests every this many epochs in the study: with
# the full 10,000-image test set, testing after every one of 60 epochs would add about two
# hours of test passes to each run on one CPU thread; every 20th is three passes per target.
AUTHORS_EVAL_EVERY = 20

# SVP's selector in the study (the paper's Figure 5 proxy) and the readings of fusion that
# stand beside ours (``indices``: prunefuse.fuse).
SVP_PROXY = "resnet8"
FUSIONS = ("fresh", "conv_only", "fork")

STATISTICS = ("difference", "ratio")
# What a comparison measures: a column of prunefuse.study.study_rows, with its unit.
MEASURES = {"acc_pct": ("test accuracy as the run reports it", "points"),
            "final_pct": ("final-epoch test accuracy", "points"),
            "selection_macs": ("selection MACs", ""),
            "selection_seconds": ("selection seconds", ""),
            "run_seconds": ("whole-run seconds (selection, target training, fusion)", "")}
# Margins (docs/method.md, "Margins"): "matches" may lose at most MATCH_POINTS of test
# accuracy, a shorter schedule "reaches" dense AL within REACH_POINTS, and "no slower" allows
# SLOWER_RATIO more seconds.
MATCH_POINTS = 1.0
REACH_POINTS = 0.5
SLOWER_RATIO = 0.05
# The recipe counts as converged when training the same target CONVERGENCE_FACTOR times as
# long gains less than this.
CONVERGED_POINTS = 1.0
CONVERGENCE_FACTOR = 2


@dataclass(frozen=True)
class Arm:
    """A named pattern of run parameters (over the profile).

    ``on``: the arm whose selection this one retrains a target on (``selection_from`` that
    arm's run of the same seed and pool, in the group named by ``on_group``). ``times``: run
    parameters set to a multiple of what the batch would use (``{"target_epochs": 2}``:
    twice the profile's epochs, whatever the batch overrides).
    """

    key: str
    label: str
    params: Mapping[str, Any]
    on: str | None = None
    on_group: str = "main"
    role: str = ""  # what comparisons call it in its block (default: its key)
    times: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.role:
            object.__setattr__(self, "role", self.key)


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
    """One claim: ``arm`` against ``against`` (arm roles) within the blocks of each of
    ``groups``, paired by seed, judged at every pool size and budget those blocks ran.

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
    groups: tuple[str, ...] = ("main",)
    measure: str = "acc_pct"
    statistic: str = "difference"
    hypothesis: str = "superiority"
    margin: float = 0.0
    higher: bool = True
    budgets: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.hypothesis not in HYPOTHESES:
            raise ValueError(f"{self.key}: hypothesis={self.hypothesis!r}; one of {HYPOTHESES}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"{self.key}: statistic={self.statistic!r}; one of {STATISTICS}")
        if self.hypothesis != "superiority" and not self.margin > 0:
            raise ValueError(f"{self.key}: a {self.hypothesis} claim needs a margin > 0")

    def paired(self, arm, against):
        """The per-seed statistic of paired values: their difference or their ratio."""
        return arm - against if self.statistic == "difference" else arm / against


@dataclass(frozen=True)
class Study:
    """Everything a batch of the study declares: arms, groups (in run order) and claims."""

    arms: Mapping[str, Arm]
    groups: tuple[Group, ...]
    comparisons: tuple[Comparison, ...]
    score: str = "least_confidence"
    # The comparisons the scaling artefact draws against pool size, at the largest budget.
    scaling: tuple[str, ...] = ()
    # The groups and comparisons the budgets artefact draws against the budget (one pool).
    budget_groups: tuple[str, ...] = ()
    budget_comparisons: tuple[str, ...] = ()

    def group(self, key: str) -> Group:
        return next(g for g in self.groups if g.key == key)

    def comparison(self, key: str) -> Comparison:
        return next(c for c in self.comparisons if c.key == key)

    def label(self, group: str, role: str) -> str:
        """The label of the arm that plays ``role`` in ``group``'s blocks."""
        return next(self.arms[a].label for a in self.group(group).arms
                    if self.arms[a].role == role)


# The selectors every grid compares, each declared once: the study's arms below and the
# planner of the other grids (prunefuse.grid) take their parameters and labels from here.
DENSE_ARM = Arm("dense", DENSE, {"selector": "dense"})
RANDOM_ARM = Arm("random", RANDOM, {"selector": "random"})


def pf_arm(ratio: float, key: str = "pf") -> Arm:
    """PruneFuse at pruning ratio ``ratio`` (our reading, its own selection, fused + KD)."""
    return Arm(key, pf_label(ratio), {"selector": "prunefuse", "ratio": ratio})


def svp_arm(proxy: str, key: str = "svp") -> Arm:
    """SVP with ``proxy`` as its selector."""
    return Arm(key, svp_label(proxy), {"selector": "svp", "proxy_arch": proxy})


# PruneFuse's other arms, each a pattern over pf_arm's: the readings of the method and the
# retrained targets of the ablations. The study below and the planner of the other grids both
# take their parameters from these.
def scratch_arm(ratio: float, kd_lambda: float = 0.0, key: str = "pf_scratch") -> Arm:
    """PruneFuse's selection at ``ratio``, its target trained from scratch (no KD unless
    ``kd_lambda``)."""
    label = "PruneFuse's selection, from scratch" + (" + KD" if kd_lambda else "")
    return Arm(key, label, {**pf_arm(ratio).params, "target_init": "scratch",
                            "kd_lambda": kd_lambda})


def fused_arm(ratio: float, kd: Mapping[str, Any] | None = None, key: str = "pf_fused",
              label: str = "fused, no KD") -> Arm:
    """PruneFuse's fused target at ``ratio`` trained with the KD values ``kd`` (default: no
    KD, lambda 0)."""
    return Arm(key, label, {**pf_arm(ratio).params, **(kd if kd is not None
                                                       else {"kd_lambda": 0.0})})


def authors_arm(ratio: float, key: str = "pf_authors", **extra: Any) -> Arm:
    """PruneFuse at ``ratio`` under the authors' reading (prunefuse.config.READINGS)."""
    return Arm(key, f"{pf_label(ratio)} (authors' reading)",
               {**pf_arm(ratio).params, "reading": "authors", **extra})


def v2_arm(ratio: float, t_sync: int) -> Arm:
    """PruneFuse V2 at ``ratio``: the selector re-synchronised every ``t_sync`` rounds."""
    return Arm(f"pf_v2_{t_sync}", f"PruneFuse V2 (T_sync={t_sync})",
               {**pf_arm(ratio).params, "t_sync": t_sync})


def fusion_arm(ratio: float, fusion: str) -> Arm:
    """PruneFuse at ``ratio`` fused by the reading ``fusion`` (prunefuse.fuse) with our KD."""
    return Arm(f"pf_{fusion}", f"fused by the '{fusion}' reading (+ our KD)",
               {**pf_arm(ratio).params, "fusion": fusion})


def kd_strength_arms(ratio: float) -> tuple[Arm, Arm, Arm]:
    """KD strength on PruneFuse's fused target at ``ratio``: no KD, the authors' KD, ours."""
    return (fused_arm(ratio),
            fused_arm(ratio, AUTHORS_KD, "pf_fused_kd_authors", "fused + the authors' KD"),
            fused_arm(ratio, {}, "pf_fused_kd_ours", "fused + our KD"))


# Dense AL's selection with its target trained again (for a schedule of another length).
DENSE_RETRAINED = Arm("dense_retrained", f"{DENSE}'s selection", DENSE_ARM.params, on="dense")


def time_to_accuracy_arms(ratio: float) -> tuple[Arm, Arm, Arm]:
    """Time to accuracy's arms: PruneFuse's selection fused + our KD, PruneFuse's selection
    from scratch, and dense AL's selection (the reference)."""
    return kd_strength_arms(ratio)[2], scratch_arm(ratio), DENSE_RETRAINED


def arm_of(df, arms) -> list[str | None]:
    """Each results-table row's arm among ``arms``, by pattern: the arm whose every parameter
    the row has (those the table has a column for), the most specific where several match
    (our KD's pattern names no KD value, so every fused target matches it; the authors' KD
    names three). A label per row, None where no arm matches."""
    out = []
    for _, row in df.iterrows():
        best, size = None, -1
        for arm in arms:
            keys = [k for k in arm.params if k in df.columns]
            if all(_same(row[k], arm.params[k]) for k in keys) and len(keys) > size:
                best, size = arm.label, len(keys)
        out.append(best)
    return out


def _same(value, wanted) -> bool:
    if isinstance(wanted, bool) or not isinstance(wanted, (int, float)):
        return bool(value == wanted)
    try:
        return abs(float(value) - float(wanted)) < 1e-9
    except (TypeError, ValueError):
        return False


def _arms(*arms: Arm) -> dict[str, Arm]:
    return {a.key: a for a in arms}


def _study() -> Study:
    """The CPU study's declaration (profile ``study``)."""
    def on(arm: Arm, source: str, group: str = "main") -> Arm:
        return replace(arm, on=source, on_group=group)

    retrain = [on(scratch_arm(0.5), "pf"), *[on(a, "pf") for a in kd_strength_arms(0.5)],
               DENSE_RETRAINED]
    short = [Arm(f"{a.key}_{e}", f"{a.label}, {e} epochs", {**a.params, "target_epochs": e},
                 on="pf")
             for a in retrain[1:4] for e in (10, 20, 30)]
    arms = _arms(
        DENSE_ARM,
        pf_arm(0.5),
        authors_arm(0.5, eval_every=AUTHORS_EVAL_EVERY),
        RANDOM_ARM,
        *retrain, *short)
    # The rest of the paper's selectors and readings, each group on seeds of its own (a run
    # belongs to one block only, so every pair is within one machine).
    arms.update(_arms(
        pf_arm(0.6, "pf_06"),
        pf_arm(0.7, "pf_07"),
        svp_arm(SVP_PROXY),
        *[v2_arm(0.5, t) for t in (1, 2)],
        *[on(fusion_arm(0.5, f), "pf", "variants") for f in FUSIONS],
        Arm("dense_long", f"{DENSE}'s selection, {CONVERGENCE_FACTOR} times the epochs",
            DENSE_ARM.params, on="dense", on_group="convergence",
            times={"target_epochs": CONVERGENCE_FACTOR})))
    main = ("dense", "pf", "pf_authors", "random")
    # The lower budgets: each main arm's target retrained on that arm's own selection.
    arms.update(_arms(*[Arm(f"{k}_low", arms[k].label, arms[k].params, on=k, role=k)
                        for k in main]))
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
        Group("selectors", "Other pruning ratios and SVP", ("dense", "pf", "pf_06", "pf_07",
                                                             "svp"),
              tuple(range(15, 20)), (4000,), (0.1, 0.2, 0.3)),
        Group("variants", "PruneFuse V2 and the readings of fusion",
              ("pf", "pf_v2_1", "pf_v2_2", *[f"pf_{f}" for f in FUSIONS]),
              tuple(range(20, 25)), (4000,), (0.1, 0.2, 0.3)),
        Group("convergence", "Convergence of the recipe", ("dense", "dense_long"),
              tuple(range(25, 30)), (4000,), (0.3,)),
    )
    every = ("main", "budgets", "pool", "pool_large")
    pools = ("main", "pool", "pool_large")
    comparisons = [
        Comparison("PFDense", "PruneFuse p=0.5 selects at least as well as dense AL (the "
                   "paper: it matches or beats baseline AL)", "paper", "pf", "dense", every,
                   hypothesis="noninferiority", margin=MATCH_POINTS),
        Comparison("AuthorsDense", "Under the authors' reading, PruneFuse p=0.5 selects and "
                   "trains at least as well as dense AL (final epoch)", "ours", "pf_authors",
                   "dense", every, measure="final_pct", hypothesis="noninferiority",
                   margin=MATCH_POINTS),
        Comparison("ReadingsPF", "The reading matters: PruneFuse p=0.5 ends better under the "
                   "authors' reading than under ours (final epoch)", "ours", "pf_authors", "pf",
                   every, measure="final_pct"),
        Comparison("PFRandom", "PruneFuse p=0.5 beats random selection", "paper", "pf",
                   "random", ("main", "budgets")),
        Comparison("DenseRandom", "Dense AL beats random selection", "ours", "dense", "random",
                   ("main", "budgets")),
        Comparison("SelectionMACs", "PruneFuse p=0.5 selects with fewer MACs than dense AL",
                   "paper", "pf", "dense", pools, measure="selection_macs", statistic="ratio",
                   higher=False),
        Comparison("SelectionSeconds", "PruneFuse p=0.5 selects in less wall-clock time than "
                   "dense AL", "paper", "pf", "dense", pools, measure="selection_seconds",
                   statistic="ratio", higher=False),
        Comparison("RunSeconds", "A whole PruneFuse p=0.5 run (selection, fusion, target with "
                   "our KD) is no slower than dense AL's", "ours", "pf", "dense", pools,
                   measure="run_seconds", statistic="ratio", hypothesis="noninferiority",
                   margin=SLOWER_RATIO, higher=False),
        Comparison("FusionNoKD", "Fusion without KD trains the target better than training "
                   "from scratch on the same selection (60 epochs)", "paper", "pf_fused",
                   "pf_scratch", ("kd",)),
        Comparison("FusionKDAuthors", "Fusion with the authors' KD trains the target better "
                   "than training from scratch on the same selection (60 epochs)", "paper",
                   "pf_fused_kd_authors", "pf_scratch", ("kd",)),
        Comparison("FusionKDOurs", "Fusion with our KD trains the target better than training "
                   "from scratch on the same selection (60 epochs)", "paper",
                   "pf_fused_kd_ours", "pf_scratch", ("kd",)),
        Comparison("KDAuthors", "The authors' KD improves the fused target (60 epochs)",
                   "paper", "pf_fused_kd_authors", "pf_fused", ("kd",)),
        Comparison("KDOurs", "Our KD improves the fused target (60 epochs)", "paper",
                   "pf_fused_kd_ours", "pf_fused", ("kd",)),
        Comparison("KDOursAuthors", "KD strength matters: our stronger KD trains the fused "
                   "target worse than the authors' KD (60 epochs)", "ours", "pf_fused_kd_ours",
                   "pf_fused_kd_authors", ("kd",), higher=False),
        *[Comparison(f"Reach{_tag(a.key)}{_word(e)}", f"{a.label[0].upper()}{a.label[1:]} "
                     f"reaches dense AL's 60-epoch accuracy in {e} epochs (the paper: fusion "
                     "shortens training)", "paper", f"{a.key}_{e}", "dense_retrained", ("kd",),
                     hypothesis="noninferiority", margin=REACH_POINTS)
          for a in retrain[1:4] for e in (10, 20, 30)],
    ]
    comparisons += [
        *[Comparison(f"PF{_word(round(100 * r))}Dense", f"{pf_label(r)} selects at least "
                     "as well as dense AL (the paper: it matches or beats baseline AL)", "paper",
                     f"pf_0{round(10 * r)}", "dense", ("selectors",),
                     hypothesis="noninferiority", margin=MATCH_POINTS) for r in (0.6, 0.7)],
        *[Comparison(f"SelectionMACs{_word(round(100 * r))}", f"{pf_label(r)} selects with "
                     "fewer MACs than dense AL", "paper", f"pf_0{round(10 * r)}", "dense",
                     ("selectors",), measure="selection_macs", statistic="ratio", higher=False)
          for r in (0.6, 0.7)],
        Comparison("PFSVP", f"PruneFuse p=0.5 selects better than {svp_arm(SVP_PROXY).label}",
                   "paper", "pf", "svp", ("selectors",)),
        Comparison("SVPDense", f"{svp_arm(SVP_PROXY).label} selects at least as well as dense AL",
                   "ours", "svp", "dense", ("selectors",), hypothesis="noninferiority",
                   margin=MATCH_POINTS),
        *[Comparison(f"VTwoSync{_word(t)}", f"PruneFuse V2 (T_sync={t}) selects better than V1",
                     "paper", f"pf_v2_{t}", "pf", ("variants",)) for t in (1, 2)],
        *[Comparison(f"Fusion{_tag('x_' + f)}", f"The '{f}' reading of fusion trains the target "
                     "better than ours (each trained tensor at its kept indices), both with our "
                     "KD", "ours", f"pf_{f}", "pf", ("variants",)) for f in FUSIONS],
        Comparison("Converged", f"The recipe has converged: dense AL's target trained for "
                   f"{CONVERGENCE_FACTOR} times the epochs (120 instead of 60 in the study) "
                   f"gains less than {CONVERGED_POINTS:g} point", "ours", "dense_long", "dense",
                   ("convergence",),
                   hypothesis="noninferiority", margin=CONVERGED_POINTS, higher=False),
    ]
    return Study(arms, groups, tuple(comparisons),
                 scaling=("PFDense", "AuthorsDense", "SelectionSeconds", "RunSeconds"),
                 budget_groups=("budgets", "main"),
                 budget_comparisons=("PFDense", "AuthorsDense", "PFRandom", "DenseRandom"))


def _tag(key: str) -> str:
    """``pf_fused_kd_authors`` -> ``FusedKDAuthors``: a claim id's letters."""
    return "".join(w.upper() if w == "kd" else w.capitalize() for w in key.split("_")[1:])


def _word(n: int) -> str:
    """10 -> ``Ten``: numbers in claim ids, which are LaTeX macro stems (letters only)."""
    return {1: "One", 2: "Two", 10: "Ten", 20: "Twenty", 30: "Thirty", 60: "Sixty",
            70: "Seventy"}[n]


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
        for key, factor in arm.times.items():
            params[key] = factor * make_config(profile, **params)[key]
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
