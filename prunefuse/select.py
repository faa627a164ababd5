"""Step 2 of PruneFuse: selection scores, as pure functions, and one pass over the pool.

Each score returns the indices (into its input's rows) of the ``budget`` most informative
samples, most informative first. Ties break deterministically toward the lower index
(a stable sort on the negated score). The pool is scored without augmentation [choice].

Scores (SVP's set plus the reviewers' extras): least confidence ``1 - max p``, entropy
``-sum p log p``, margin (smallest gap between the top two classes), BALD (mutual
information under MC dropout, Gal et al. 2017), greedy k-centers on penultimate features
(Sener & Savarese 2018) with the labeled set as initial centers, and random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import norm_constants, normalize
from .device import resolve_eval_batch
from .infer import FastForward
from .kcenter import _kcenter_float64, kcenter_greedy, kcenter_values  # noqa: F401 (importable from here too)
from .picks import check_budget, random

SCORES: dict[str, Callable] = {}


@dataclass(frozen=True)
class ScoreSpec:
    """What a registered score needs, so the runner asks for exactly that and nothing else."""

    rule: Callable  # fn(pool: PoolOutputs, labeled_features, budget, seed) -> indices
    values: Callable | None  # fn(pool, labeled_features) -> per-sample values, or None
    model: bool  # needs a trained selector's forward pass over the pool
    mc_samples: bool  # needs MC-dropout probabilities (PoolOutputs.mc_probs)
    labeled_features: bool  # needs the labeled set's penultimate features


SCORE_SPECS: dict[str, ScoreSpec] = {}


def register_score(name: str, *, values: Callable | None = None, model: bool = True,
                   mc_samples: bool = False, labeled_features: bool = False) -> Callable:
    """Decorator adding a selection rule ``fn(pool: PoolOutputs, labeled_features, budget,
    seed) -> indices`` to :data:`SCORES`, with what it needs (:class:`ScoreSpec`) and
    ``values``, the per-sample quantity it ranks by (recorded with every selection)."""

    def wrap(fn: Callable) -> Callable:
        SCORES[name] = fn
        SCORE_SPECS[name] = ScoreSpec(fn, values, model, mc_samples, labeled_features)
        return fn

    return wrap


def _top(score: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` largest scores, ties to the lower index."""
    if score.ndim != 1:
        raise ValueError(f"scores: expected one score per sample, got shape {tuple(score.shape)}")
    check_budget(score.numel(), budget)
    if torch.isnan(score).any():
        raise ValueError("scores: contain NaN; the model's outputs are not finite")
    return torch.argsort(-score.double(), stable=True)[:budget]


def _check_probs(probs: torch.Tensor) -> torch.Tensor:
    if probs.ndim != 2:
        raise ValueError(f"probs: expected shape (pool, classes), got {tuple(probs.shape)}")
    return probs.double()


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    return 1 - _check_probs(probs).max(dim=1).values


def entropy_scores(probs: torch.Tensor) -> torch.Tensor:
    p = _check_probs(probs)
    return -torch.special.xlogy(p, p).sum(dim=1)


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    top2 = _check_probs(probs).topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


def bald_scores(mc_probs: torch.Tensor) -> torch.Tensor:
    """Mutual information H[mean_t p_t] - mean_t H[p_t] for ``mc_probs`` of shape (T, N, K)."""
    if mc_probs.ndim != 3:
        raise ValueError(f"mc_probs: expected shape (samples, pool, classes), got "
                         f"{tuple(mc_probs.shape)}")
    p = mc_probs.double()
    mean = p.mean(dim=0)
    return -torch.special.xlogy(mean, mean).sum(1) + torch.special.xlogy(p, p).sum(2).mean(0)


def least_confidence(probs: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` samples with the lowest top-class probability."""
    return _top(least_confidence_scores(probs), budget)


def entropy(probs: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` samples with the highest predictive entropy."""
    return _top(entropy_scores(probs), budget)


def margin(probs: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` samples with the smallest top-1 minus top-2 probability."""
    return _top(margin_scores(probs), budget)


def bald(mc_probs: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` samples with the highest BALD mutual information."""
    return _top(bald_scores(mc_probs), budget)


@dataclass
class PoolOutputs:
    """One un-augmented pass over a set of images."""

    probs: torch.Tensor  # (N, K) softmax probabilities, float32, CPU
    features: torch.Tensor  # (N, D) pooled penultimate features, float32, CPU
    mc_probs: torch.Tensor | None = None  # (T, N, K) under MC dropout, when asked for


@torch.no_grad()
def score_pool(model: nn.Module, images: torch.Tensor, mean, std, *, batch_size: int | None = None,
               device: torch.device | str | None = None, mc_samples: int = 0,
               mc_dropout: float = 0.5, seed: int = 0, backend: str | None = None) -> PoolOutputs:
    """Forward ``images`` (uint8, N x C x H x W) once, in eval mode, without augmentation.

    Dropout heads for ``feature_dropout_mi`` are applied to the penultimate features before
    the classifier (on a network trained without dropout, so this is not MC-dropout BALD):
    ``mc_samples`` dropout masks at rate ``mc_dropout``, each one a sampled sub-network shared
    by the whole pool (so results do not depend on ``batch_size``). It works for networks
    trained without dropout and costs one classifier pass per sample, not a full forward.

    Args:
        model: exposes ``features(x)`` and ``fc``.
        images: uint8 tensor, on any device.
        mean, std: per-channel normalization constants.
        batch_size: evaluation batch size (independent of the training batch); None = 1024
            on CUDA, 128 on CPU.
        device: where to compute; defaults to the model's device.
        mc_samples: number of dropout heads for ``feature_dropout_mi`` (0 = skip).
        mc_dropout: dropout rate of those samples.
        seed: seeds the dropout masks.
        backend: how the forward runs (:class:`prunefuse.infer.FastForward`, always with
            channels_last inputs): None = its default, the model's own forward; ``"folded"``
            = BatchNorm folded into the convolutions; ``"jit"``, ``"compile"``.

    Returns:
        :class:`PoolOutputs` on the CPU.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    batch_size = resolve_eval_batch(dev, batch_size)
    was_training = model.training
    model.eval()
    forward = FastForward(model, backend)
    mean, std = norm_constants(mean, std, dev)
    probs, feats, mc = [], [], []
    keep = 1.0 - mc_dropout
    masks = None
    if mc_samples:
        g = torch.Generator().manual_seed(seed)
        dim = model.fc.in_features
        masks = (torch.rand((mc_samples, 1, dim), generator=g) < keep).to(dev) / keep
    try:
        for start in range(0, images.shape[0], batch_size):
            xb = normalize(images[start : start + batch_size].to(dev, non_blocking=True), mean, std)
            f, logits = forward(xb)  # channels_last on every device, as FastForward does
            f = f.float()
            # Kept on the device until the end: a .cpu() per batch would make the host wait
            # for the GPU after every batch.
            feats.append(f)
            probs.append(F.softmax(logits.float(), dim=1))
            if masks is not None:
                mc.append(F.softmax(model.fc(f * masks), dim=2))
    finally:
        model.train(was_training)
    k = getattr(model.fc, "out_features", 0)
    return PoolOutputs(
        probs=torch.cat(probs).cpu() if probs else torch.empty(0, k),
        features=torch.cat(feats).cpu() if feats else torch.empty(0, 0),
        mc_probs=torch.cat(mc, dim=1).cpu() if mc else None,
    )


@register_score("least_confidence", values=lambda pool, lf: least_confidence_scores(pool.probs))
def _lc(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return least_confidence(pool.probs, budget)


@register_score("entropy", values=lambda pool, lf: entropy_scores(pool.probs))
def _ent(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return entropy(pool.probs, budget)


@register_score("margin", values=lambda pool, lf: margin_scores(pool.probs))
def _mar(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return margin(pool.probs, budget)


def _mc_probs(pool: PoolOutputs) -> torch.Tensor:
    if pool.mc_probs is None:
        raise ValueError("score='feature_dropout_mi': score_pool(..., mc_samples>0) must "
                         "provide mc_probs")
    return pool.mc_probs


def _bald_values(pool: PoolOutputs, labeled_features) -> torch.Tensor:
    return bald_scores(_mc_probs(pool))


# Not MC-dropout BALD (Gal et al. 2017): no registered network trains with dropout, so the
# heads are random half-feature classifiers applied at scoring time only. The score is their
# disagreement, named for what it is (docs/method.md, "Where we had to choose").
@register_score("feature_dropout_mi", values=_bald_values, mc_samples=True)
def _bald(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return bald(_mc_probs(pool), budget)


@register_score("kcenter", values=lambda pool, lf: kcenter_values(pool.features, lf),
                labeled_features=True)
def _kc(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return kcenter_greedy(pool.features, labeled_features, budget, seed=seed)


@register_score("random", model=False)
def _rand(pool: PoolOutputs, labeled_features, budget: int, seed: int) -> torch.Tensor:
    return random(pool.probs.shape[0], budget, seed)


def score_values(score: str, pool: PoolOutputs,
                 labeled_features: torch.Tensor | None) -> torch.Tensor | None:
    """The per-sample value behind a selection (higher = picked first), for the record;
    None for scores without one (random). k-centers: distance to the nearest labeled center,
    which orders its first pick; later picks also depend on the earlier ones."""
    fn = SCORE_SPECS[score].values
    return None if fn is None else fn(pool, labeled_features)


def select(score: str, pool: PoolOutputs, labeled_features: torch.Tensor | None, budget: int,
           seed: int = 0) -> torch.Tensor:
    """Apply the registered rule ``score``; indices are into the rows of ``pool``."""
    if score not in SCORES:
        raise ValueError(f"score={score!r}: unknown selection score; choose one of {sorted(SCORES)}")
    return SCORES[score](pool, labeled_features, budget, seed)
