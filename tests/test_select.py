"""Selection scores (step 2) against brute-force references on small random inputs."""

import math

import pytest
import torch

from prunefuse import kcenter as K
from prunefuse import select as S
from prunefuse.models import build_model


def _probs(n=40, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, k, generator=g) * 2, dim=1)


def _brute_top(scores, budget):
    # Highest score first; equal scores: lower index first.
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:budget]


@pytest.mark.parametrize("seed", range(5))
def test_uncertainty_scores_match_brute_force(seed):
    p = _probs(seed=seed).tolist()
    lc = [1 - max(row) for row in p]
    ent = [-sum(v * math.log(v) for v in row if v > 0) for row in p]
    mar = [-(sorted(row)[-1] - sorted(row)[-2]) for row in p]
    probs = torch.tensor(p)
    assert S.least_confidence(probs, 7).tolist() == _brute_top(lc, 7)
    assert S.entropy(probs, 7).tolist() == _brute_top(ent, 7)
    assert S.margin(probs, 7).tolist() == _brute_top(mar, 7)


def test_bald_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    mc = torch.softmax(torch.randn(6, 30, 4, generator=g), dim=2)
    scores = []
    for i in range(30):
        mean = [sum(float(mc[t, i, c]) for t in range(6)) / 6 for c in range(4)]
        h_mean = -sum(v * math.log(v) for v in mean)
        mean_h = sum(-sum(float(v) * math.log(float(v)) for v in mc[t, i]) for t in range(6)) / 6
        scores.append(h_mean - mean_h)
    assert S.bald(mc, 5).tolist() == _brute_top(scores, 5)
    assert min(S.bald_scores(mc).tolist()) >= -1e-12  # mutual information is non-negative


def test_ties_break_to_lower_index():
    probs = torch.full((6, 3), 1 / 3)
    assert S.least_confidence(probs, 4).tolist() == [0, 1, 2, 3]
    assert S.entropy(probs, 6).tolist() == list(range(6))


def _brute_kcenter(pool, labeled, budget):
    def d2(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b))

    centers = [list(c) for c in labeled]
    picked = []
    for _ in range(budget):
        best, best_d = None, -1.0
        for i, p in enumerate(pool):
            if i in picked:
                continue
            d = min(d2(p, c) for c in centers)
            if d > best_d:
                best, best_d = i, d
        picked.append(best)
        centers.append(pool[best])
    return picked


@pytest.mark.parametrize("seed", range(4))
def test_kcenter_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    pool, labeled = torch.randn(60, 3, generator=g), torch.randn(9, 3, generator=g)
    expected = _brute_kcenter(pool.tolist(), labeled.tolist(), 12)
    # A tiny block size forces many chunks over the labeled set.
    got = K.kcenter_greedy(pool, labeled, 12, max_elements=130)
    assert got.tolist() == expected
    assert K.kcenter_greedy(pool, labeled, 12).tolist() == expected


def _kcenter_cases():
    """(pool, labeled) pairs: Gaussian; duplicated rows; small integers (exact ties in every
    dtype); a far offset that makes float32 distances too coarse to rank on their own."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(40, 5, generator=g)
    dup = torch.cat([base, base[torch.randperm(40, generator=g)[:25]]])
    grid = torch.randint(-2, 3, (70, 3), generator=g).float()
    far = torch.randn(60, 4, generator=g) * 1e-2 + 300.0
    return [
        (torch.randn(80, 6, generator=g), torch.randn(7, 6, generator=g)),
        (dup, torch.cat([base[:3], base[:3]])),
        (grid, grid[:4]),
        (grid, torch.empty(0, 3)),
        (far, far[:2] + 1e-3),
    ]


@pytest.mark.parametrize("case", range(5))
def test_kcenter_float32_picks_the_float64_and_brute_force_centers(case):
    pool, labeled = _kcenter_cases()[case]
    budget = 30
    ref = K._kcenter_float64(pool, labeled, budget, seed=1).tolist()
    assert K.kcenter_greedy(pool, labeled, budget, seed=1).tolist() == ref
    assert K.kcenter_greedy(pool, labeled, budget, seed=1, max_elements=50).tolist() == ref
    assert K.kcenter_greedy(pool.double(), labeled.double(), budget, seed=1).tolist() == ref
    if labeled.numel():  # the brute force has no seeded first pick
        assert ref == _brute_kcenter(pool.tolist(), labeled.tolist(), budget)


def _lazy_cases():
    """(pool, labeled, budget) where the lazy greedy has to work: tight clusters in 2 and 8
    dimensions, where each pick lowers the distances of a whole cluster (many refreshes); a
    Gaussian pool, where a labeled run leaves most of the pool unrefined, so the bounds decide;
    a 3 x 3 integer grid with hundreds of exact duplicates, so most picks are ties (at 0 once
    every distinct row is a center) that go to the lower index, down to the last row."""
    g = torch.Generator().manual_seed(11)
    out = []
    for dim in (2, 8):
        centers = torch.randn(12, dim, generator=g) * 10
        pool = centers[torch.randint(0, 12, (500,), generator=g)]
        pool = pool + 0.3 * torch.randn(500, dim, generator=g)
        out.append((pool, pool[torch.randperm(500, generator=g)[:20]] + 0.05, 120))
    out.append((torch.randn(1500, 4, generator=g), torch.randn(300, 4, generator=g), 150))
    grid = torch.randint(0, 3, (300, 2), generator=g).float()
    out.append((grid, grid[:2], 300))
    return out


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("labeled", [True, False])
@pytest.mark.parametrize("max_elements", [1 << 20, 50])  # 50: refined in many small batches
def test_kcenter_lazy_greedy_matches_float64_on_clusters_and_ties(case, labeled, max_elements):
    pool, lab, budget = _lazy_cases()[case]
    lab = lab if labeled else None
    ref = K._kcenter_float64(pool, lab, budget, seed=2).tolist()
    got = K.kcenter_greedy(pool, lab, budget, seed=2, max_elements=max_elements).tolist()
    assert got == ref
    assert len(set(got)) == budget


def test_kcenter_without_labeled_is_seeded_and_distinct():
    pool = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    a = K.kcenter_greedy(pool, None, 20, seed=3)
    assert a.tolist() == K.kcenter_greedy(pool, torch.empty(0, 4), 20, seed=3).tolist()
    assert len(set(a.tolist())) == 20
    dup = torch.zeros(5, 2)  # all identical: still distinct picks
    assert sorted(K.kcenter_greedy(dup, dup[:1], 5).tolist()) == [0, 1, 2, 3, 4]


def test_random_is_seeded():
    a, b = S.random(100, 10, seed=4), S.random(100, 10, seed=4)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 10
    assert a.tolist() != S.random(100, 10, seed=5).tolist()


def test_bad_inputs_are_clear_errors():
    probs = _probs()
    with pytest.raises(ValueError, match="budget=41: must be in \\[0, 40\\]"):
        S.entropy(probs, 41)
    with pytest.raises(ValueError, match="pool is empty"):
        S.least_confidence(torch.empty(0, 5), 1)
    with pytest.raises(ValueError, match="pool is empty"):
        K.kcenter_greedy(torch.empty(0, 3), None, 1)
    bad = probs.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        S.margin(bad, 2)
    with pytest.raises(TypeError, match="budget=2.5"):
        S.random(10, 2.5, seed=0)
    with pytest.raises(ValueError, match="score='typo'.*choose one of"):
        S.select("typo", S.PoolOutputs(probs, torch.zeros(40, 2)), None, 1)


def test_score_pool_one_unaugmented_pass():
    model = build_model("resnet8", 10, seed=0).train()
    images = torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    out = S.score_pool(model, images, mean, std, batch_size=16, mc_samples=3)
    assert model.training  # mode restored
    assert out.probs.shape == (37, 10) and out.features.shape == (37, 64)
    assert out.mc_probs.shape == (3, 37, 10)
    torch.testing.assert_close(out.probs.sum(1), torch.ones(37))
    again = S.score_pool(model, images, mean, std, batch_size=37, mc_samples=3)
    torch.testing.assert_close(out.probs, again.probs)
    torch.testing.assert_close(out.mc_probs, again.mc_probs)  # seeded dropout masks
    picked = S.select("kcenter", out, out.features[:5], 4)
    assert len(set(picked.tolist())) == 4


def test_kcenter_keeps_its_old_import_path_and_its_registered_score():
    assert S.kcenter_greedy is K.kcenter_greedy and S._kcenter_float64 is K._kcenter_float64
    assert S.SCORE_SPECS["kcenter"].labeled_features
    g = torch.Generator().manual_seed(5)
    pool = S.PoolOutputs(probs=torch.rand(30, 4, generator=g), features=torch.randn(30, 3, generator=g))
    lab = torch.randn(4, 3, generator=g)
    assert S.select("kcenter", pool, lab, 6).tolist() == K.kcenter_greedy(pool.features, lab, 6).tolist()
    values = S.score_values("kcenter", pool, lab)
    assert int(values.argmax()) == int(K.kcenter_greedy(pool.features, lab, 1)[0])
