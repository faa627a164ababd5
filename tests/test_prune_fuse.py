"""Pruning at init (step 1) and fusion (step 3): channel counts, index maps, round trips."""

import pytest
import torch
import torch.nn as nn

from prunefuse.fuse import (
    FUSIONS,
    conv_keys,
    derive_selector,
    fork_placement,
    fuse,
    fuse_variant,
    gather,
    zero_outside,
)
from prunefuse.models import build_model, count_params
from prunefuse.prune import (
    index_tuple,
    kept_channels,
    load_pruned,
    prune_at_init,
    pruned_from_index_map,
    save_pruned,
)

X32 = torch.zeros(1, 3, 32, 32)


@pytest.fixture(scope="module")
def resnet20_pruned():
    dense = build_model("resnet20", 10, seed=0)
    pruned, imap = prune_at_init(dense, 0.5, X32)
    return dense, pruned, imap


def test_kept_channels_rounding():
    assert [kept_channels(16, p) for p in (0.5, 0.6, 0.7, 0.8)] == [8, 6, 5, 3]
    assert kept_channels(64, 0.7) == 19  # 19.2
    assert kept_channels(3, 0.99) == 1  # never zero


@pytest.mark.parametrize("ratio", [0.5, 0.6, 0.7, 0.8])
def test_channel_counts_and_param_shrink(ratio):
    dense = build_model("resnet20", 10, seed=1)
    pruned, _ = prune_at_init(dense, ratio, X32)
    for (name, m), (_, d) in zip(pruned.named_modules(), dense.named_modules()):
        if isinstance(m, nn.Conv2d):
            assert m.out_channels == kept_channels(d.out_channels, ratio), name
            expected_in = d.in_channels if name == "conv1" else kept_channels(d.in_channels, ratio)
            assert m.in_channels == expected_in, name  # the RGB input is never pruned
    assert pruned.fc.out_features == 10  # classifier outputs never pruned
    shrink = count_params(pruned) / count_params(dense)
    assert shrink == pytest.approx((1 - ratio) ** 2, rel=0.25)


@pytest.mark.parametrize("ratio,params", [(0.5, 0.215e6), (0.6, 0.141e6), (0.7, 0.079e6),
                                          (0.8, 0.035e6)])
def test_resnet56_pruned_sizes_match_paper(ratio, params):
    pruned, _ = prune_at_init(build_model("resnet56", 10, seed=0), ratio, X32)
    assert count_params(pruned) == pytest.approx(params, abs=0.0006e6)


def test_pruning_keeps_the_largest_l2_filters(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    # layer1.0.conv1 is its own group (not residual-coupled): plain L2 ranking.
    norms = dense.layer1[0].conv1.weight.flatten(1).norm(dim=1)
    expected = sorted(torch.argsort(-norms)[:8].tolist())
    assert imap["layer1.0.conv1.weight"][0] == expected


def test_residual_coupled_channels_pruned_together(resnet20_pruned):
    _, _, imap = resnet20_pruned
    stream = imap["layer1.0.bn2.weight"][0]
    for key in ("conv1.weight", "layer1.1.conv2.weight", "layer1.2.conv2.weight"):
        assert imap[key][0] == stream
    assert imap["layer2.0.conv1.weight"][1] == stream
    assert imap["layer3.2.bn2.weight"][0] == imap["fc.weight"][1]
    assert imap["fc.weight"][0] == list(range(10)) and imap["fc.bias"] == [list(range(10))]


def test_index_map_slices_the_dense_init(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    dsd = dense.state_dict()
    for key, tensor in pruned.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert imap[key] == []
            continue
        assert torch.equal(dsd[key][index_tuple(imap[key])], tensor), key


def test_prune_does_not_touch_the_dense_model():
    dense = build_model("resnet8", 10, seed=0)
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    prune_at_init(dense, 0.5, X32)
    for k, v in dense.state_dict().items():
        assert torch.equal(before[k], v)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.2, "0.5", True])
def test_bad_ratio_is_a_clear_error(ratio):
    with pytest.raises(ValueError, match="pruning ratio must be a number in \\[0, 1\\)"):
        prune_at_init(build_model("resnet8", 10), ratio, X32)


def test_nothing_to_prune_is_a_clear_error():
    class OnlyLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ValueError, match="nothing to prune"):
        prune_at_init(OnlyLinear(), 0.5, torch.zeros(1, 4))


PREACT = ["preact8", "preact14", "preact20", "preact56", "preact110", "preact-resnet164"]


@pytest.mark.parametrize("arch,size", [(a, 32) for a in PREACT] + [("wrn-16-8", 32),
                                                                   ("resnet18", 64)])
def test_other_architectures_prune_and_fuse(arch, size):
    x = torch.randn(2, 3, size, size)
    dense = build_model(arch, 10, seed=0)
    pruned, imap = prune_at_init(dense, 0.6, x[:1])
    dsd = dense.state_dict()
    for key, tensor in pruned.state_dict().items():  # the index map slices theta_0
        if imap[key]:
            assert torch.equal(dsd[key][index_tuple(imap[key])], tensor), key
    for (name, m), (_, d) in zip(pruned.named_modules(), dense.named_modules()):
        if isinstance(m, nn.Conv2d):
            assert m.out_channels == kept_channels(d.out_channels, 0.6), name
            expected_in = d.in_channels if name == "conv1" else kept_channels(d.in_channels, 0.6)
            assert m.in_channels == expected_in, name
    assert pruned(x).shape == (2, 10)
    assert count_params(pruned) / count_params(dense) == pytest.approx(0.16, rel=0.2)
    fused = zero_outside(fuse(dense, pruned, imap), imap).eval()
    torch.testing.assert_close(fused(x), pruned.eval()(x), rtol=1e-4, atol=1e-4)
    if arch in PREACT[:-1]:
        _check_preact_streams(imap, n=(int(arch[len("preact"):]) - 2) // 6)


def _check_preact_streams(imap, n):
    """The residual stream of a stage is one group: the stem (stage 1) or the projection
    (stages 2, 3) and every block's second conv write the same kept channels, which the next
    blocks' pre-activation BNs read; the last stream feeds the final BN and the classifier."""
    for s, writer in ((1, "conv1"), (2, "layer2.0.shortcut"), (3, "layer3.0.shortcut")):
        stream = imap[f"{writer}.weight"][0]
        assert len(stream) == kept_channels(16 * 2 ** (s - 1), 0.6)
        for j in range(n):
            assert imap[f"layer{s}.{j}.conv2.weight"][0] == stream
            if j > 0:
                assert imap[f"layer{s}.{j}.bn1.weight"][0] == stream
    assert imap["bn.weight"][0] == imap["fc.weight"][1] == imap["layer3.0.shortcut.weight"][0]


def _perturb(model):
    """Stand-in for training: change every float tensor, including BN running stats."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.1)
                if t.min() < 0.05:
                    t.abs_().add_(0.05)  # keep running_var positive
    return model


def test_fused_model_computes_the_pruned_model(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    trained = _perturb(pruned_from_index_map("resnet20", 10, imap))
    fused = fuse(dense, trained, imap)
    x = torch.randn(4, 3, 32, 32)
    zeroed = zero_outside(fused, imap).eval()
    torch.testing.assert_close(zeroed(x), trained.eval()(x), rtol=1e-5, atol=1e-5)


def test_fusion_writes_kept_and_keeps_the_rest(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    trained = _perturb(pruned_from_index_map("resnet20", 10, imap))
    fused = fuse(dense, trained, imap)
    dsd, fsd, tsd = dense.state_dict(), fused.state_dict(), trained.state_dict()
    for key, big in fsd.items():
        if key.endswith("num_batches_tracked"):
            continue
        mask = torch.zeros_like(big, dtype=torch.bool)
        mask[index_tuple(imap[key])] = True
        assert torch.equal(big[~mask], dsd[key][~mask]), key  # outside: the dense init
        assert torch.equal(big[index_tuple(imap[key])], tsd[key]), key  # inside: trained
    assert fused.training and fused is not dense
    # gather is the inverse of fuse on the kept positions.
    back = gather(fused, pruned_from_index_map("resnet20", 10, imap), imap)
    for key, t in back.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(t, tsd[key]), key


def test_fuse_rejects_a_map_that_does_not_fit(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    other = build_model("resnet8", 10)
    with pytest.raises(ValueError, match="index_map"):
        fuse(other, pruned, imap)
    bad = dict(imap)
    bad["conv1.weight"] = [imap["conv1.weight"][0][:-1]] + imap["conv1.weight"][1:]
    with pytest.raises(ValueError, match="index_map\\['conv1.weight'\\] dim 0"):
        fuse(dense, pruned, bad)


def test_save_and_load_pruned_round_trip(tmp_path, resnet20_pruned):
    _, pruned, imap = resnet20_pruned
    trained = _perturb(pruned_from_index_map("resnet20", 10, imap)).eval()
    path = tmp_path / "selector.pt"
    save_pruned(path, trained, arch="resnet20", ratio=0.5, num_classes=10, index_map=imap)
    loaded, meta = load_pruned(path)
    assert meta["arch"] == "resnet20" and meta["ratio"] == 0.5 and meta["index_map"] == imap
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), trained(x))
    with pytest.raises(ValueError, match="index_map"):
        pruned_from_index_map("resnet8", 10, imap)


def _written(big, small, ix):
    """Mask of the positions ``ix`` of ``big``; asserts they hold ``small``."""
    mask = torch.zeros_like(big, dtype=torch.bool)
    mask[index_tuple(ix)] = True
    assert torch.equal(big[index_tuple(ix)], small)
    return mask


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_variant_copies_exactly_what_it_says(resnet20_pruned, fusion):
    dense, _, imap = resnet20_pruned
    fresh = build_model("resnet20", 10, seed=1)
    assert not torch.equal(fresh.conv1.weight, dense.conv1.weight)
    trained = _perturb(pruned_from_index_map("resnet20", 10, imap))
    fused = fuse_variant(fusion, dense_init=dense, fresh_init=fresh, pruned_trained=trained,
                         index_map=imap)
    convs = set(conv_keys(trained))
    base = {"indices": dense, "fresh": fresh, "conv_only": dense, "fork": fresh}[fusion]
    bsd, fsd, tsd = base.state_dict(), fused.state_dict(), trained.state_dict()
    assert len(convs) == 1 + 18 + 2 and all(k.endswith(".weight") for k in convs)  # stem,
    # 9 blocks x 2, 2 projection shortcuts
    place = fork_placement(dense, trained) if fusion == "fork" else imap
    for key, big in fsd.items():
        if key.endswith("num_batches_tracked"):
            continue
        copied = fusion in ("indices", "fresh") or key in convs
        if not copied:  # BN and the classifier keep the base init
            assert torch.equal(big, bsd[key]), key
            continue
        mask = _written(big, tsd[key], place[key])
        if fusion == "fork":  # the rest of each conv: a Xavier-uniform draw
            bound = (6 / (big.shape[0] * big[0, 0].numel() + big.shape[1] * big[0, 0].numel())
                     ) ** 0.5
            assert big[~mask].abs().max() <= bound and not torch.equal(big[~mask], bsd[key][~mask])
        else:
            assert torch.equal(big[~mask], bsd[key][~mask]), key
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 build_model("resnet20", 10, seed=1)
                                                 .state_dict().values()))  # inputs untouched


def test_fork_placement_interleaves_halved_widths_else_leading_corner(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned  # p=0.5: 16/32/64 -> 8/16/32, exactly halved
    place = fork_placement(dense, pruned)
    assert place["layer1.0.conv1.weight"][:2] == [list(range(0, 16, 2))] * 2
    assert place["layer2.0.conv1.weight"][:2] == [list(range(0, 32, 2)), list(range(0, 16, 2))]
    assert place["conv1.weight"][:2] == [list(range(8)), [0, 1, 2]]  # RGB in: not halved
    assert place["layer1.0.conv1.weight"][2:] == [[0, 1, 2]] * 2  # the kernel whole
    assert place["layer1.0.conv1.weight"] != imap["layer1.0.conv1.weight"]  # ignores the map
    thin, _ = prune_at_init(dense, 0.6, X32)  # 16 -> 6: not halved
    assert fork_placement(dense, thin)["layer1.0.conv1.weight"][:2] == [list(range(6))] * 2


def test_unknown_fusion_is_a_clear_error(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    with pytest.raises(ValueError, match="fusion='bogus': unknown; choose one of"):
        fuse_variant("bogus", dense_init=dense, fresh_init=dense, pruned_trained=pruned,
                     index_map=imap)


def test_v2_derive_gather_keeps_the_map_reprune_ranks_the_trained_net(resnet20_pruned):
    dense, pruned, imap = resnet20_pruned
    trained_dense = _perturb(build_model("resnet20", 10, seed=2))
    before = {k: v.clone() for k, v in trained_dense.state_dict().items()}
    sel_g, map_g = derive_selector(trained_dense, pruned, imap, how="gather", ratio=0.5,
                                   example_input=X32)
    sel_r, map_r = derive_selector(trained_dense, pruned, imap, how="reprune", ratio=0.5,
                                   example_input=X32)
    assert map_g is imap and map_r != imap
    # reprune: an L2 ranking of the *trained* filters (this group is not residual-coupled).
    norms = trained_dense.layer1[0].conv1.weight.flatten(1).norm(dim=1)
    assert map_r["layer1.0.conv1.weight"][0] == sorted(torch.argsort(-norms)[:8].tolist())
    tsd = trained_dense.state_dict()
    for sel, m in ((sel_g, map_g), (sel_r, map_r)):  # both hold the trained weights at their map
        assert count_params(sel) == count_params(pruned)
        for key, t in sel.state_dict().items():
            if m[key]:
                assert torch.equal(t, tsd[key][index_tuple(m[key])]), key
    assert all(torch.equal(before[k], v) for k, v in tsd.items())
    with pytest.raises(ValueError, match="v2_derive='x': unknown"):
        derive_selector(trained_dense, pruned, imap, how="x", ratio=0.5, example_input=X32)
