"""Greedy k-centers (Sener & Savarese 2018) on Euclidean distance: the ``kcenter`` score of
:mod:`prunefuse.select` (docs/method.md, "Step 2: select"). The lazy float32 rule that runs
(:func:`kcenter_greedy`), the float64 rule it reproduces (:func:`_kcenter_float64`), and each
sample's distance to the labeled set, recorded with every selection (:func:`kcenter_values`).
"""

from __future__ import annotations

import heapq

import torch

from .picks import check_budget, random


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
    check_budget(n, budget)
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
            # Refresh the stale top entries together (one at first, more while values keep
            # falling within this pick, as with no labeled set), against the picks since the
            # oldest of them; picks an entry already counts change nothing in its minimum.
            # In _kcenter_float64's order, (|x|^2 - 2 x.c) + |c|^2 clamped at 0, so that the
            # roundings, hence exact ties, are the same as there.
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
    check_budget(n, budget)
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


def kcenter_values(features: torch.Tensor, labeled_features: torch.Tensor | None) -> torch.Tensor:
    """Distance of each sample to its nearest labeled center (inf with no centers): what
    orders k-centers' first pick (later picks also depend on the earlier ones)."""
    x = features.double()
    if labeled_features is None or not labeled_features.numel():
        return torch.full((x.shape[0],), float("inf"))
    chunk = max(1, (1 << 22) // max(x.shape[0], 1))
    return _min_sq_dist(x, labeled_features.to(x), chunk).sqrt().float()
