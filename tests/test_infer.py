"""The fast forward (BatchNorm folded, channels_last) computes what the model computes: on
every registered architecture, the same probabilities within float tolerance and the same
selected indices for every score."""

import pytest
import torch

from prunefuse import select as S
from prunefuse.infer import BACKENDS, FastForward, fold_batchnorm
from prunefuse.models import MODELS, build_model
from prunefuse.train import evaluate

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def _trained_ish(arch: str) -> torch.nn.Module:
    """A model whose BatchNorms are not the identity, so folding them changes the weights:
    seeded random affine parameters, and running statistics taken from a forward pass in
    train mode (as training leaves them; random statistics would blow deep nets up)."""
    model = build_model(arch, 10, seed=0)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.2
            m.momentum = None  # running statistics = this pass's batch statistics
    size = 64 if arch == "resnet18" else 32
    with torch.no_grad():
        model.train()(torch.randn(8, 3, size, size, generator=g))
    model.fc.weight.data *= 0.2  # moderate logits: no probability rounds to 0 or 1
    return model


def _images(arch: str, n: int, seed: int) -> torch.Tensor:
    size = 64 if arch == "resnet18" else 32
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_folded_forward_selects_what_the_model_selects(arch):
    model = _trained_ish(arch).train()
    pool, labeled = _images(arch, 12, 0), _images(arch, 4, 1)
    kw = {"batch_size": 5, "mc_samples": 3, "seed": 2}
    paths = ("model", "folded")
    outs = {b: S.score_pool(model, pool, MEAN, STD, backend=b, **kw) for b in paths}
    lab = {b: S.score_pool(model, labeled, MEAN, STD, backend=b, batch_size=4).features
           for b in paths}
    assert model.training  # mode restored, weights untouched
    ref, fast = outs["model"], outs["folded"]
    assert ref.probs.min() > 1e-6  # no saturated probabilities: the indices are a real test
    torch.testing.assert_close(fast.probs, ref.probs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.features, ref.features, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.mc_probs, ref.mc_probs, rtol=1e-4, atol=1e-5)
    for score in S.SCORES:
        picked = [S.select(score, outs[b], lab[b], 5, seed=3).tolist() for b in paths]
        assert picked[0] == picked[1], score


def test_folding_removes_the_batchnorms_after_convolutions():
    # resnet8: stem + 3 blocks x 2 + 2 shortcuts = 9 conv->BN pairs, all folded.
    gm = fold_batchnorm(_trained_ish("resnet8"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gm.modules())
    # preact-resnet164: only the BNs that follow a conv fold. The pre-activation BN of each
    # of the 54 blocks follows a residual add and stays, except the first block's, which
    # follows the stem conv; the final BN follows an add too.
    gm = fold_batchnorm(_trained_ish("preact-resnet164"))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in gm.modules()) == 53 + 1


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "compile"])
def test_every_backend_matches_the_model(backend):
    model = _trained_ish("resnet8").eval()
    x = torch.randn(6, 3, 32, 32)
    f, logits = FastForward(model, backend)(x)
    with torch.no_grad():
        torch.testing.assert_close(f, model.features(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-4)
    y = torch.randint(0, 10, (6,))
    images = _images("resnet8", 6, 3)
    a = evaluate(model, images, y, mean=MEAN, std=STD, backend=backend)
    b = evaluate(model, images, y, mean=MEAN, std=STD, backend="model")
    assert a["test_acc"] == b["test_acc"]
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="backend='fast': must be one of"):
        FastForward(build_model("resnet8", 10), "fast")
