"""The readings of the method as parameters, and the authors' preset (docs/method.md,
"Readings"): exact answers on tiny inputs."""

import copy
import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from prunefuse.cli import main
from prunefuse.config import READINGS, ConfigError, at_our_readings, make_config, run_id
from prunefuse.distill import kd_loss
from prunefuse.experiment import run_experiment
from prunefuse.fuse import fuse_variant, fused_conv_slices
from prunefuse.models import build_model
from prunefuse.prune import prune_at_init
from prunefuse.runs import BEST_LABEL, method_label, read_jsonl, results_table
from prunefuse.train import train


def _hand_kd(student, teacher, y, lam, t, t2):
    """(1 - lam) CE + lam * [T^2] * sum_k p_t log(p_t / p_s) / N, written out."""
    p_t = torch.softmax(teacher / t, 1)
    log_p_s = torch.log_softmax(student / t, 1)
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum(1).mean()
    ce = -torch.log_softmax(student, 1)[torch.arange(len(y)), y].mean()
    return (1 - lam) * ce + lam * (t * t if t2 else 1.0) * kl


@pytest.mark.parametrize("t2", [True, False])
def test_kd_loss_with_and_without_t2_against_the_hand_formula(t2):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0])
    got = kd_loss(s, t, y, kd_lambda=0.35, temperature=3.0, t2=t2)
    assert got.item() == pytest.approx(_hand_kd(s, t, y, 0.35, 3.0, t2).item(), rel=1e-6)
    # the factor is all that differs: the KD term is 9 times smaller without T^2 at T=3
    ce = F.cross_entropy(s, y)
    with_t2 = kd_loss(s, t, y, kd_lambda=0.35, temperature=3.0, t2=True) - 0.65 * ce
    without = kd_loss(s, t, y, kd_lambda=0.35, temperature=3.0, t2=False) - 0.65 * ce
    assert with_t2.item() == pytest.approx(9 * without.item(), rel=1e-5)


def _fused(fusion):
    dense = build_model("resnet8", 10, 3, seed=0)
    x = torch.zeros(1, 3, 32, 32)
    pruned, imap = prune_at_init(dense, 0.5, x)
    with torch.no_grad():  # "trained": other weights than theta_0's
        for p in pruned.parameters():
            p.add_(0.1)
    fresh = build_model("resnet8", 10, 3, seed=1)
    how = dict(dense_init=dense, fresh_init=fresh, pruned_trained=pruned, index_map=imap)
    torch.manual_seed(0)
    return fuse_variant(fusion, **how), fused_conv_slices(fusion, **how), pruned


@pytest.mark.parametrize("fusion", ["indices", "fork"])
def test_fused_conv_slices_are_where_fusion_wrote_the_conv_weights(fusion):
    model, masks, pruned = _fused(fusion)
    sd, small = model.state_dict(), pruned.state_dict()
    assert masks and all(k.endswith("weight") and sd[k].ndim == 4 for k in masks)
    for key, mask in masks.items():
        # the masked entries, in order, are exactly the selector's conv weights
        assert torch.equal(sd[key][mask].sort().values, small[key].flatten().sort().values)
        assert mask.sum() == small[key].numel()


def test_frozen_slices_get_no_gradient_in_the_frozen_epochs_only():
    model, masks, _ = _fused("indices")
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (64,))
    kw = dict(mean=[0.5] * 3, std=[0.25] * 3, batch_size=16, lr=0.05, momentum=0.0,
              weight_decay=0.0, schedule="constant", progress=False, device="cpu", seed=0)
    before = copy.deepcopy(model.state_dict())
    one = copy.deepcopy(model)
    train(one, x, y, epochs=1, frozen=masks, frozen_epochs=1, **kw)
    after = one.state_dict()
    for key, mask in masks.items():
        assert torch.equal(after[key][mask], before[key][mask]), key  # not moved
        assert not torch.equal(after[key][~mask], before[key][~mask]), key  # the rest trained
    two = copy.deepcopy(model)
    train(two, x, y, epochs=2, frozen=masks, frozen_epochs=1, **kw)
    key = next(iter(masks))
    assert not torch.equal(two.state_dict()[key][masks[key]], before[key][masks[key]])
    # weight decay still moves a frozen slice, as in the authors' code (grad zeroed first)
    decayed = copy.deepcopy(model)
    train(decayed, x, y, epochs=1, frozen=masks, frozen_epochs=1, **{**kw, "weight_decay": 0.1})
    assert not torch.equal(decayed.state_dict()[key][masks[key]], before[key][masks[key]])


def test_iterative_pruning_steps_reach_the_ratio_and_keep_a_valid_map():
    dense = build_model("resnet8", 10, 3, seed=0)
    x = torch.zeros(1, 3, 32, 32)
    one, imap1 = prune_at_init(dense, 0.5, x)
    five, imap5 = prune_at_init(dense, 0.5, x, steps=5)
    assert [p.shape for p in one.parameters()] == [p.shape for p in five.parameters()]
    # the same widths, but the channels chosen step by step on what is left can differ
    for ix in imap5.values():
        for dim in ix:
            assert dim == sorted(set(dim))
    with pytest.raises(ValueError, match="steps=0"):
        prune_at_init(dense, 0.5, x, steps=0)


def test_the_authors_preset_resolves_every_value_and_can_be_overridden():
    cfg = make_config("smoke", reading="authors")
    for key, value in READINGS["authors"].items():
        if key not in ("v2_loop", "v2_derive"):  # V2 keys only with t_sync > 0
            assert cfg[key] == value, key
    assert (cfg["kd_lambda"], cfg["kd_temperature"], cfg["kd_t2"]) == (0.35, 3.0, False)
    assert cfg["fusion"] == "fork" and cfg["freeze_fused_epochs"] == 1
    assert cfg["prune_steps"] == 5 and cfg["report"] == "best" and cfg["eval_every"] == 1
    assert run_id(cfg) != run_id(make_config("smoke"))
    assert make_config("smoke", reading="authors", kd_lambda=0.5)["kd_lambda"] == 0.5
    v2 = make_config("smoke", reading="authors", t_sync=1)
    assert (v2["v2_loop"], v2["v2_derive"]) == ("authors", "reprune")
    # a baseline under the reading: the same reported accuracy, no KD or fusion
    dense = make_config("smoke", reading="authors", selector="dense")
    assert dense["kd_lambda"] == 0 and dense["fusion"] == "indices" and dense["report"] == "best"
    assert make_config("smoke")["reading"] == "ours" and make_config("smoke")["kd_t2"] is True
    with pytest.raises(ConfigError, match="v2_loop='authors': re-prunes"):
        make_config("smoke", reading="authors", t_sync=2)


def test_our_readings_are_one_rule_for_configs_and_results_tables():
    from prunefuse.registry import _ours

    cfgs = [make_config("smoke"), make_config("smoke", reading="authors"),
            make_config("smoke", kd_t2=False), make_config("smoke", t_sync=1),
            make_config("smoke", fusion="fork"), make_config("smoke", report="best")]
    assert [at_our_readings(c) for c in cfgs] == [True, False, False, False, False, False]
    assert at_our_readings(cfgs[3], vary=("t_sync",)) and not at_our_readings(cfgs[4], ("t_sync",))
    assert at_our_readings({"dataset": "synthetic"})  # a key a record lacks ran at the default
    rows = pd.DataFrame([{"reading": c["reading"], "fusion": c["fusion"], "kd_t2": c["kd_t2"],
                          "selector_init": c["selector_init"], "prune_steps": c["prune_steps"],
                          "reported": c["report"], "t_sync": c["t_sync"]} for c in cfgs])
    assert _ours(rows).tolist() == [at_our_readings(c) for c in cfgs]
    assert _ours(rows, ("fusion",)).tolist() == [at_our_readings(c, ("fusion",)) for c in cfgs]
    with pytest.raises(ValueError, match=r"vary=\['kd_lambda'\]: must be among"):
        _ours(rows, ("kd_lambda",))


def test_smoke_run_under_the_authors_reading_records_each_choice(tmp_path, capsys):
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--no-progress",
                 "reading=authors"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert {k: cfg[k] for k in READINGS["authors"] if k not in ("v2_loop", "v2_derive")} == {
        k: v for k, v in READINGS["authors"].items() if k not in ("v2_loop", "v2_derive")}
    targets = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "target"]
    assert all(len([e for e in t["epochs"] if "test_acc" in e]) == len(t["epochs"])
               for t in targets)
    # reported: the best epoch, labelled as chosen on the test set
    table = results_table(tmp_path)
    assert (table["acc_pct"] == table["best_acc_pct"]).all()
    assert BEST_LABEL in table["method"].iloc[0] and "authors' reading" in table["method"].iloc[0]
    assert method_label(make_config("smoke")) == "PruneFuse p=0.5"


@pytest.mark.slow
def test_best_and_final_reporting_differ_only_in_what_the_table_reports(tmp_path):
    final = run_experiment(profile="smoke", out=tmp_path, progress=False, eval_every=1,
                           target_epochs=3)
    best = run_experiment(profile="smoke", out=tmp_path, progress=False, eval_every=1,
                          target_epochs=3, report="best")
    table = results_table(tmp_path).set_index(["run_id", "budget"])
    rows_f = table.loc[final.name]
    rows_b = table.loc[best.name]
    assert (rows_f["acc_pct"] == 100 * rows_f["final_test_acc"]).all()
    assert (rows_b["acc_pct"] == 100 * rows_b["best_test_acc"]).all()
    # the same training: only the reported number differs
    assert rows_f["final_test_acc"].tolist() == rows_b["final_test_acc"].tolist()
    assert (rows_b["best_test_acc"] >= rows_b["final_test_acc"]).all()


@pytest.mark.slow
def test_the_authors_v2_loop_reprunes_every_round_and_selects_with_the_repruned_net(tmp_path):
    run = run_experiment(profile="smoke", out=tmp_path, progress=False, reading="authors",
                         t_sync=1, budgets=[0.2, 0.3, 0.4])
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert (cfg["v2_loop"], cfg["v2_derive"], cfg["t_sync"]) == ("authors", "reprune", 1)
    # re-pruned after every round but the last: a new index map each time
    assert (run / "index_map_round_01.json").exists() and (run / "index_map_round_02.json").exists()
    cache = sorted(p.name for p in (run / "cache").iterdir())
    assert {"v2-round_01.pt", "v2-round_02.pt"} <= set(cache)
    # rounds 2 and 3 select with a selector trained from the re-pruned net; each round's
    # fusion source is that selector trained further (warm) on the new labels
    trained_from = [n for n in cache if not n.startswith("v2-") and "-warm-" not in n]
    assert sum(n.endswith("-v2-round_01.pt") for n in trained_from) == 1
    assert sum(n.endswith("-v2-round_02.pt") for n in trained_from) == 1
    warm = [n for n in cache if "-warm-" in n]
    assert len(warm) == 3
    # each warm start is from a selector that selected (a file of its own in the cache)
    assert {n.split("-warm-")[1] for n in warm} <= set(trained_from)
    rounds = [m for m in read_jsonl(run / "metrics.jsonl") if m["kind"] == "round"]
    assert all("selector_test_acc" in r for r in rounds)
    ours = run_experiment(profile="smoke", out=tmp_path, progress=False, t_sync=1,
                          v2_derive="reprune", budgets=[0.2, 0.3, 0.4])
    assert not [n for n in (ours / "cache").iterdir() if "-warm-" in n.name]
