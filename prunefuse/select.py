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

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import norm_constants, normalize
from .device import resolve_eval_batch
from .infer import FastForward

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


def _check_budget(n: int, budget: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget={budget!r}: must be an int")
    if n == 0:
        raise ValueError("pool: the unlabeled pool is empty; nothing left to select")
    if not 0 <= budget <= n:
        raise ValueError(f"budget={budget}: must be in [0, {n}] (the pool size)")


def _top(score: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices of the ``budget`` largest scores, ties to the lower index."""
    if score.ndim != 1:
        raise ValueError(f"scores: expected one score per sample, got shape {tuple(score.shape)}")
    _check_budget(score.numel(), budget)
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


def random(n: int, budget: int, seed: int) -> torch.Tensor:
    """``budget`` distinct indices from ``range(n)``, uniformly, from ``seed``."""
    _check_budget(n, budget)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:budget]


def _min_sq_dist(points: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    """For each point, the squared distance to its nearest center, centers taken in chunks."""
    best = torch.full((points.shape[0],), float("inf"), dtype=points.dtype, device=points.device)
    sq = (points * points).sum(1)
    centers_sq = (centers * centers).sum(1)
    for start in range(0, centers.shape[0], chunk):
        c = centers[start : start + chunk]
        d = sq[:, None] - 2 * points @ c.T + centers_sq[start : start + chunk][None, :]
        best = torch.minimum(best, d.min(dim=1).values.clamp_min_(0))
    return best


def _min_sq_dist_blocked(x: torch.Tensor, sq: torch.Tensor, centers: torch.Tensor,
                         max_elements: int) -> torch.Tensor:
    """Unclamped ``min_c |x|^2 - 2 x.c + |c|^2`` per row of ``x``, through matmul blocks of at
    most ``max_elements`` (rows x centers), so no pool x centers matrix ever exists."""
    n, m = x.shape[0], centers.shape[0]
    csq = (centers * centers).sum(1)
    cols = max(1, min(m, 1024, max_elements))
    rows = max(1, min(n, max_elements // cols))
    best = torch.empty(n, dtype=x.dtype, device=x.device)
    block = torch.empty(rows, cols, dtype=x.dtype, device=x.device)
    for r in range(0, n, rows):
        xr, out = x[r : r + rows], best[r : r + rows]
        out.fill_(float("inf"))
        for c in range(0, m, cols):
            b = block[: xr.shape[0], : min(cols, m - c)]
            torch.addmm(csq[c : c + cols], xr, centers[c : c + cols].T, alpha=-2, out=b)
            torch.minimum(out, b.amin(1), out=out)
    return best.add_(sq)


def _min_sq_dist_rows(points: torch.Tensor, sq: torch.Tensor, centers: torch.Tensor,
                      centers_sq: torch.Tensor, max_elements: int) -> torch.Tensor:
    """``max(0, min_c (|p|^2 - 2 p.c) + |c|^2)`` per row of ``points``: the arithmetic of
    :func:`_min_sq_dist`, step for step, but in one reused block of at most ``max_elements``
    entries (``points`` has at most that many rows) and with the squared norms given."""
    n, m = points.shape[0], centers.shape[0]
    cols = max(1, min(m, max_elements // n))
    buf = torch.empty(n * cols, dtype=points.dtype, device=points.device)
    best = torch.full((n,), float("inf"), dtype=points.dtype, device=points.device)
    twice, sq = 2 * points, sq[:, None]
    for c in range(0, m, cols):
        k = min(cols, m - c)
        d = torch.mm(twice, centers[c : c + k].T, out=buf[: n * k].view(n, k))
        torch.sub(sq, d, out=d).add_(centers_sq[c : c + k])
        torch.minimum(best, d.amin(1), out=best)
    return best.clamp_min_(0)


def kcenter_greedy(pool_features: torch.Tensor, labeled_features: torch.Tensor | None,
                   budget: int, *, seed: int = 0, max_elements: int = 1 << 20) -> torch.Tensor:
    """Greedy k-centers (Sener & Savarese 2018) on Euclidean distance (docs/method.md,
    "Step 2: select").

    Caveat first: the picks are those of the float64 rule (:func:`_kcenter_float64`), ties to
    the lower index, though most of the pool is only ever seen in float32. A float32 squared
    distance to the labeled set is within a proven bound ``tol`` of the exact one. The float64
    values use the reference's formula, but in other block shapes, so two samples whose float64
    distances differ only in the last bit could be ranked otherwise than the reference ranks
    them; exact ties (duplicated or integer rows) are exact in both.

    Lazy exact greedy: one float32 pass gives each sample's distance ``d32`` to the labeled
    centers, and ``d32 + tol`` bounds its distance at every later step, since distances only
    shrink as picks are added. Samples are refined in batches, in decreasing ``d32``, to their
    float64 distance to the labeled centers and the picks so far, and kept in a heap of values
    that bound the current ones in the same way; the heap top is refreshed against the picks
    made since, and picked once it is up to date and no unrefined sample's bound reaches it, so
    most of the pool is never refined and a pick costs a few small products, not a pool pass.

    Memory is O(pool): a float64 CPU copy of the pool and of the labeled set (all float64 work
    runs on the CPU, so the picks do not depend on the device), the float32 distances, a heap
    of the refined samples, and distance blocks of at most ``max_elements`` entries; never a
    labeled x pool matrix.

    Args:
        pool_features: (N, D) features of the unlabeled pool.
        labeled_features: (L, D) features of the labeled set (initial centers); may be empty
            or None, in which case the first center is drawn at random from ``seed``.
        budget: number of samples to pick.
        seed: only used when there are no labeled centers.
        max_elements: cap on the size of one pool x centers distance block.

    Returns:
        Indices into ``pool_features``, in the order they were picked.
    """
    if pool_features.ndim != 2:
        raise ValueError(f"pool_features: expected shape (pool, dim), got "
                         f"{tuple(pool_features.shape)}")
    n, dim = pool_features.shape
    _check_budget(n, budget)
    if torch.isnan(pool_features).any():
        raise ValueError("pool_features: contain NaN")
    cpu = torch.device("cpu")
    x64 = pool_features.detach().to(cpu, torch.float64).contiguous()
    sq64 = (x64 * x64).sum(1)
    picks64 = torch.empty(budget, dim, dtype=torch.float64)
    picks_sq64 = torch.empty(budget, dtype=torch.float64)
    picked: list[int] = []
    labeled64 = None
    if labeled_features is not None and labeled_features.numel() > 0:
        x = pool_features.detach().float().contiguous()
        sq = (x * x).sum(1)
        lab = labeled_features.detach().to(x)
        d32 = _min_sq_dist_blocked(x, sq, lab, max_elements)
        # |fl(d) - d| <= gamma * (|x|^2 + |c|^2) for a length-dim dot product and the input's
        # rounding to float32 (Higham, Accuracy and Stability, eq. 3.5), with room to spare
        # (also for the float64 rounding of the values it is compared with).
        u = torch.finfo(torch.float32).eps / 2
        max_c = torch.maximum(sq.max(), (lab * lab).sum(1).max())
        tol = float(4 * (dim + 8) * u * (sq.max() + max_c))
        order = torch.argsort(-d32, stable=True)  # bounds in decreasing order, ties by index
        # Clamped at 0 like the float64 values: a bound equal to a value of 0 must still be
        # refined, since its sample may win the tie on index.
        bounds = (d32[order].double() + tol).clamp_min_(0).tolist()
        order = order.cpu()
        lab64 = labeled_features.detach().to(cpu, torch.float64)
        labeled64 = (lab64, (lab64 * lab64).sum(1))
    elif budget:
        j = int(random(n, 1, seed)[0])
        picked.append(j)
        picks64[0], picks_sq64[0] = x64[j], sq64[j]
        order = torch.cat([torch.arange(j), torch.arange(j + 1, n)])
        bounds = [float("inf")] * (n - 1)
    else:
        return torch.empty(0, dtype=torch.long)

    # Refreshes are tiny products, thousands of them: numpy views cost less per call than torch.
    xs, xs_sq = x64.numpy(), sq64.numpy()
    ps, ps_sq = picks64.numpy(), picks_sq64.numpy()
    cap = max(1, min(1 << 14, max_elements))
    heap: list[tuple[float, int, int]] = []  # (-value, index, picks counted), lowest first
    nxt, m = 0, len(bounds)
    for i in range(len(picked), budget):
        batch, width = min(256, cap), 1
        while True:
            if nxt < m and (not heap or bounds[nxt] >= -heap[0][0]):
                idx = order[nxt : nxt + batch]
                nxt += idx.numel()
                rows, rows_sq = x64[idx], sq64[idx]
                value = torch.full((idx.numel(),), float("inf"), dtype=torch.float64)
                if labeled64 is not None:
                    value = _min_sq_dist_rows(rows, rows_sq, *labeled64, max_elements)
                if i:
                    value = torch.minimum(value, _min_sq_dist_rows(
                        rows, rows_sq, picks64[:i], picks_sq64[:i], max_elements))
                new = list(zip(value.neg_().tolist(), idx.tolist(), [i] * idx.numel()))
                if len(new) >= len(heap):
                    heap.extend(new)
                    heapq.heapify(heap)
                else:
                    for entry in new:
                        heapq.heappush(heap, entry)
                # A run of refinements within one pick means the bounds are flat here (no
                # labeled set: all infinite): grow the batch rather than pay per batch.
                batch = min(2 * batch, cap)
                continue
            neg, j, upto = heap[0]
            if upto == i:
                heapq.heappop(heap)
                break
            if width == 1:
                # In _kcenter_float64's order, (|x|^2 - 2 x.c) + |c|^2 clamped at 0, so that
                # the roundings, hence exact ties, are the same as there.
                d = ps[upto:i] @ xs[j]
                d *= -2
                d += xs_sq[j]
                d += ps_sq[upto:i]
                heapq.heapreplace(heap, (-min(-neg, max(float(d.min()), 0.0)), j, i))
            else:
                # Many refreshes in one pick (values falling fast, as with no labeled set):
                # refresh the stale top entries together, against the picks since the oldest;
                # picks an entry already counts change nothing in its minimum.
                stale = [heapq.heappop(heap)]
                while len(stale) < width and heap and heap[0][2] < i:
                    stale.append(heapq.heappop(heap))
                ids = [e[1] for e in stale]
                lo = min(e[2] for e in stale)
                d = xs[ids] @ ps[lo:i].T
                d *= -2
                d += xs_sq[ids][:, None]
                d += ps_sq[lo:i]
                for e, v in zip(stale, d.min(1).tolist()):
                    heapq.heappush(heap, (-min(-e[0], max(v, 0.0)), e[1], i))
            width = max(1, min(2 * width, 64, max_elements // i))  # i: the longest refresh
        picked.append(j)
        picks64[i], picks_sq64[i] = x64[j], sq64[j]
    return torch.tensor(picked, dtype=torch.long)


def _kcenter_float64(pool_features: torch.Tensor, labeled_features: torch.Tensor | None,
                     budget: int, *, seed: int = 0, max_elements: int = 1 << 22) -> torch.Tensor:
    """The float64 reference rule of :func:`kcenter_greedy` (the package's rule until the
    float32 path replaced it; kept for tests and benchmarks)."""
    n = pool_features.shape[0]
    _check_budget(n, budget)
    x = pool_features.double()
    chunk = max(1, max_elements // max(n, 1))
    if labeled_features is not None and labeled_features.numel():
        dist = _min_sq_dist(x, labeled_features.to(x), chunk)
    else:
        dist = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
    picked = []
    sq = (x * x).sum(1)
    d_j = torch.empty_like(dist)
    for i in range(budget):
        if i == 0 and torch.isinf(dist).all():
            j = int(random(n, 1, seed)[0])
        else:
            j = int(torch.argmax(dist))  # first maximum: ties go to the lower index
        picked.append(j)
        torch.mv(x, x[j], out=d_j).mul_(-2).add_(sq).add_(sq[j]).clamp_min_(0)
        torch.minimum(dist, d_j, out=dist)
        dist[j] = -1.0  # never picked twice, even among duplicates
    return torch.tensor(picked, dtype=torch.long)


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


def _kcenter_values(pool: PoolOutputs, labeled_features) -> torch.Tensor:
    """Distance of each pool sample to its nearest labeled center (inf with no centers)."""
    x = pool.features.double()
    if labeled_features is None or not labeled_features.numel():
        return torch.full((x.shape[0],), float("inf"))
    chunk = max(1, (1 << 22) // max(x.shape[0], 1))
    return _min_sq_dist(x, labeled_features.to(x), chunk).sqrt().float()


@register_score("kcenter", values=_kcenter_values, labeled_features=True)
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
