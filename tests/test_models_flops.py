"""Architectures and cost accounting: exact counts on tiny nets, literature counts on ResNets."""

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from prunefuse.flops import CostLedger, count_macs, macs_report, macs_to_flops, training_macs
from prunefuse.models import MODELS, build_model, count_params


@pytest.mark.parametrize("name,expected", [
    ("resnet20", 272_474), ("resnet56", 855_770), ("resnet110", 1_730_714),
])
def test_param_counts_match_literature(name, expected):
    assert count_params(build_model(name, 10)) == expected


def _preact_closed_form(block: str, n: int, widths=(16, 32, 64), classes=10) -> int:
    """Parameters of a CIFAR pre-activation net, summed layer by layer from its definition:
    3x3 stem to 16, n blocks per stage, 1x1 projection (no BN) where the shape changes,
    final BN and the classifier. BN has 2 parameters per channel."""
    total, c_in = 3 * 16 * 9, 16
    for planes in widths:
        for _ in range(n):
            if block == "basic":
                c_out = planes
                body = 2 * c_in + 9 * c_in * planes + 2 * planes + 9 * planes * planes
            else:  # bottleneck: 1x1 reduce, 3x3, 1x1 expand x4
                c_out = 4 * planes
                body = (2 * c_in + c_in * planes + 2 * planes + 9 * planes * planes
                        + 2 * planes + planes * c_out)
            total += body + (c_in * c_out if c_in != c_out else 0)  # every stride-2 block
            # also changes the width, so the width alone decides the projection
            c_in = c_out
    return total + 2 * c_in + c_in * classes + classes


@pytest.mark.parametrize("name,block,n", [
    ("preact8", "basic", 1), ("preact14", "basic", 2), ("preact20", "basic", 3),
    ("preact56", "basic", 9), ("preact110", "basic", 18), ("preact-resnet164", "bottleneck", 18),
])
def test_preact_param_counts_closed_form(name, block, n):
    assert count_params(build_model(name, 10)) == _preact_closed_form(block, n)


def test_preact_closed_form_by_hand():
    # preact8 (n=1): stem 432; stage 1 (16->16, identity) 32+2304+32+2304; stage 2
    # (16->32, stride 2) 32+4608+64+9216 + projection 512; stage 3 (32->64) 64+18432+128+36864
    # + projection 2048; final BN 128; fc 64*10+10.
    by_hand = 432 + 4672 + 14432 + 57536 + 128 + 650
    assert _preact_closed_form("basic", 1) == by_hand == 77_850
    assert _preact_closed_form("bottleneck", 18) == 1_703_258  # "1.70M" (He et al. 2016b)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_and_exposes_features(name):
    size = 64 if name == "resnet18" else 32
    model = build_model(name, 7, seed=0).eval()
    x = torch.randn(2, 3, size, size)
    feats = model.features(x)
    assert feats.ndim == 2 and feats.shape[1] == model.fc.in_features
    torch.testing.assert_close(model(x), model.fc(feats))
    assert model(x).shape == (2, 7)


def test_seeded_build_is_reproducible_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    a, b = build_model("resnet8", 10, seed=3), build_model("resnet8", 10, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="arch='resnet57'.*choose one of"):
        build_model("resnet57", 10)


def test_one_conv_macs_closed_form():
    # Cout * Cin * k * k * Hout * Wout multiply-adds.
    net = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    assert count_macs(net, torch.zeros(1, 3, 10, 12)) == 8 * 3 * 3 * 3 * 10 * 12


def test_linear_macs_closed_form_and_batch_scaling():
    net = nn.Linear(20, 5)
    assert count_macs(net, torch.zeros(4, 20)) == 4 * 20 * 5


def test_resnet56_macs_near_paper_and_model_untouched():
    model = build_model("resnet56", 10).train()
    macs = count_macs(model, torch.zeros(1, 3, 32, 32))
    assert abs(macs - 125.5e6) / 125.5e6 < 0.02
    assert model.training  # counted on a copy in eval mode


def test_fvcore_conv_linear_agree_with_torch_flop_counter():
    model = build_model("resnet20", 10).eval()
    x = torch.zeros(1, 3, 32, 32)
    report = macs_report(model, x)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert report.by_operator["conv"] + report.by_operator["linear"] == counter.get_total_flops() // 2
    assert "aten::add" in report.unsupported_ops  # recorded, not silently dropped


def test_ledger_convention():
    ledger = CostLedger()
    assert training_macs(100, samples=10, epochs=2) == 6000
    assert ledger.add_macs("selector_training", training_macs(100, 10, 2)) == 6000
    assert ledger.add_macs("pool_scoring", 100 * 7) == 700
    ledger.add_macs("teacher_forward", 50 * 3)
    d = ledger.to_dict()
    assert d["selection_macs"] == 6700
    assert d["total_macs"] == 6850 and d["total_flops"] == macs_to_flops(6850) == 13700
    assert CostLedger.from_dict(d).to_dict() == d
    with pytest.raises(ValueError, match="category='bogus'"):
        ledger.add_macs("bogus", 1)
