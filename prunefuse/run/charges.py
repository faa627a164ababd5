"""The charging rule: what a run's work costs in MACs, in which round and ledger category.

One function, :func:`run_charges`, lists a run's charges from its config and counts alone
(docs/method.md, "Cost accounting"). Everything that needs a run's MACs reads them from it:

- the runner (:mod:`prunefuse.experiment`) books each step's charges into the ledger and adds
  the seconds it measures to the same categories;
- the dry run (:func:`prunefuse.estimate.run_macs`) sums them before anything runs;
- :func:`prunefuse.explore.round_costs` groups them by round.

The rule, per round r = 1..R (L_r: the labeled set after round r):

- **select** (runs that select): the selector trained on L_{r-1} and its test evaluation, and
  the pool pass that scores the unlabeled images (k-centers also forwards L_{r-1}): selection.
- **target** (at each evaluated budget): PruneFuse's selector trained on L_r is the fusion
  source and KD teacher. When a later round selects with it, the select step of round r+1
  charges it (selection); otherwise it is fusion cost (``fusion_source``), as are the
  teacher's forwards (``teacher_forward``). The target's training and test evaluation have
  categories of their own.
- **V2 sync** (``t_sync``): the target at a sync round yields the next selector, so its
  training, its teacher's forwards and its fusion source are selection cost
  (``selector_training``); round r+1 then trains its selector on L_r again, from the derived
  start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..flops import training_macs
from ..select import SCORE_SPECS
from .config import labeled_counts, selects

STEPS = ("select", "target")  # the runner's steps of a round, in order


@dataclass(frozen=True)
class Charge:
    """One piece of a run's work: the round and step that do it, its ledger category, its
    MACs, and what it is (``work``: selector, selector_test, scoring, fusion_source,
    fusion_source_test, target, teacher, target_test)."""

    round: int
    step: str
    category: str
    macs: int
    work: str


def selects_later(cfg: dict[str, Any], round_: int) -> bool:
    """Whether a round after ``round_`` selects with the selector trained on L_round."""
    return selects(cfg) and round_ < len(cfg["budgets"])


def is_sync(cfg: dict[str, Any], round_: int) -> bool:
    """Whether the target at ``round_`` is a V2 sync: it yields the next round's selector."""
    t = cfg["t_sync"]
    return bool(t) and round_ % t == 0 and round_ < len(cfg["budgets"])


def test_evaluations(cfg: dict[str, Any]) -> int:
    """Test evaluations of one target: after every ``eval_every``-th epoch and the last."""
    epochs, every = cfg["target_epochs"], cfg["eval_every"]
    return math.ceil(epochs / every) if every else min(epochs, 1)


def run_charges(cfg: dict[str, Any], *, pool: int, n_test: int, target_macs: int,
                selector_macs: int) -> list[Charge]:
    """Every charge of a run, in the order the runner books them.

    Args:
        cfg: a config from :func:`prunefuse.config.make_config`.
        pool: images in the pool; n_test: test images.
        target_macs, selector_macs: forward MACs per image of the target and of the selector
            (the pruned target, SVP's proxy or the target itself; 0 for random).
    """
    sizes = labeled_counts(cfg, pool)
    es, et = cfg["selector_epochs"], cfg["target_epochs"]
    spec = SCORE_SPECS[cfg["score"]]
    pf = cfg["selector"] == "prunefuse"
    source = pf and (cfg["target_init"] == "fused" or cfg["kd_lambda"] > 0)
    out: list[Charge] = []
    for r, budget in enumerate(cfg["budgets"], start=1):
        def add(step, category, macs, work, r=r):
            out.append(Charge(r, step, category, int(macs), work))

        if selects(cfg):
            n = sizes[r - 1]
            add("select", "selector_training", training_macs(selector_macs, n, es), "selector")
            add("select", "evaluation", selector_macs * n_test, "selector_test")
            scored = pool - n + (n if spec.labeled_features else 0)
            add("select", "pool_scoring", selector_macs * scored, "scoring")
        if budget not in cfg["eval_budgets"]:
            continue
        n, sync = sizes[r], is_sync(cfg, r)
        if source and (sync or not selects_later(cfg, r)):
            add("target", "selector_training" if sync else "fusion_source",
                training_macs(selector_macs, n, es), "fusion_source")
            add("target", "evaluation", selector_macs * n_test, "fusion_source_test")
        add("target", "selector_training" if sync else "target_training",
            training_macs(target_macs, n, et), "target")
        if pf and cfg["kd_lambda"] > 0:
            add("target", "selector_training" if sync else "teacher_forward",
                selector_macs * n * et, "teacher")
        add("target", "evaluation", target_macs * n_test * test_evaluations(cfg), "target_test")
    return out


def step_charges(charges: list[Charge], round_: int, step: str) -> dict[str, Charge]:
    """``{work: charge}`` of one step: its MACs, and the category where the runner adds the
    seconds it measures for that work."""
    return {c.work: c for c in charges if c.round == round_ and c.step == step}


def totals(charges: list[Charge]) -> dict[str, int]:
    """MACs per ledger category, over :data:`prunefuse.flops.CATEGORIES`."""
    from ..flops import CATEGORIES

    out = dict.fromkeys(CATEGORIES, 0)
    for c in charges:
        out[c.category] += c.macs
    return out
