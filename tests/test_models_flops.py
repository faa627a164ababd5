"""Architectures and cost accounting: exact counts on tiny nets, literature counts on ResNets."""

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from prunefuse.flops import CostLedger, count_macs, macs_report, macs_to_flops
from prunefuse.models import MODELS, build_model, count_params


@pytest.mark.parametrize("name,expected", [
    ("resnet20", 272_474), ("resnet56", 855_770), ("resnet110", 1_730_714),
])
def test_param_counts_match_literature(name, expected):
    assert count_params(build_model(name, 10)) == expected


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
    assert ledger.add_training("selector_training", 100, samples=10, epochs=2) == 6000
    assert ledger.add_forward("pool_scoring", 100, samples=7) == 700
    ledger.add_forward("teacher_forward", 50, samples=3)
    d = ledger.to_dict()
    assert d["selection_macs"] == 6700
    assert d["total_macs"] == 6850 and d["total_flops"] == macs_to_flops(6850) == 13700
    assert CostLedger.from_dict(d).to_dict() == d
    with pytest.raises(ValueError, match="category='bogus'"):
        ledger.add_forward("bogus", 1, 1)
