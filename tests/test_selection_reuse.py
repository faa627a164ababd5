"""What defines a selection: each parameter's ``selects`` (prunefuse.config.SELECTS) against a
table written out here with the reason for each entry, and against what tiny runs select. A
reused selection (selection_from) must match its source in every parameter that defines a
selection, and is refused before any compute otherwise."""

import pytest

from prunefuse.config import PARAMS, SELECTS, ConfigError, make_config, selection_keys
from prunefuse.experiment import run_experiment
from prunefuse.runs import read_selections

# Whom each parameter's value selects for, written out independently of config.py: a wrong
# ``selects`` (a reused selection accepted where it differs, or refused where it cannot) fails.
EXPECTED_SELECTS = {
    # which images form the pool, how many are labeled and by whom: every selector
    **dict.fromkeys(("dataset", "max_train", "pool_draw", "selector", "score",
                     "initial_fraction", "budgets", "seed"), "all"),
    # imagefolder: the pixels scored and which images the test split takes from the pool
    **dict.fromkeys(("image_size", "channels", "test_fraction", "classes"), "all"),
    # the network that scores: the target itself (dense AL) or its pruned copy (PruneFuse)
    "arch": "dense prunefuse",
    "ratio": "prunefuse", "prune_steps": "prunefuse",  # which channels the pruned copy keeps
    "proxy_arch": "svp",  # SVP's own small scorer
    # how any trained selector trains (random selection trains none)
    **dict.fromkeys(("selector_epochs", "schedule", "lr", "momentum", "weight_decay",
                     "batch_size", "augment", "warm_start", "selector_init", "precision",
                     "cpu_precision"), "trained"),
    # PruneFuse V2: where each round's selector starts
    **dict.fromkeys(("t_sync", "v2_derive", "v2_loop"), "trained"),
    # the dropout heads of score=feature_dropout_mi
    **dict.fromkeys(("mc_samples", "mc_dropout"), "trained"),
}
# The rest change the target, where the data are read, or how a run computes, not which
# images a V1 run labels. (A V2 run's selections depend on its targets too; no run can reuse
# them, since a reusing run has t_sync=0 and t_sync is compared above.)
NOT_SELECTING = ("data_root", "max_test", "eval_budgets", "target_epochs", "eval_batch_size",
                 "eval_every", "target_init", "kd_lambda", "kd_temperature", "kd_t2",
                 "freeze_fused_epochs", "fusion", "report", "reading", "selection_from",
                 "labels_file", "compile", "device")


def test_selects_is_the_table_written_out_here():
    assert set(EXPECTED_SELECTS).isdisjoint(NOT_SELECTING)
    assert set(PARAMS) == set(EXPECTED_SELECTS) | set(NOT_SELECTING), \
        "a new parameter: say above whether its value changes which images a run labels"
    assert SELECTS == EXPECTED_SELECTS


def test_selection_keys_follow_the_selector():
    trained = {k for k, who in EXPECTED_SELECTS.items() if who == "trained"}
    every = {k for k, who in EXPECTED_SELECTS.items() if who == "all"}
    for selector, own in (("prunefuse", {"arch", "ratio", "prune_steps"}), ("dense", {"arch"}),
                          ("svp", {"proxy_arch"}), ("random", set())):
        cfg = make_config("smoke", selector=selector, **(
            {"score": "random"} if selector == "random" else {}))
        assert set(selection_keys(cfg)) == every | own | (trained if selector != "random"
                                                          else set()), selector


def test_each_parameter_declares_whom_its_value_selects_for():
    from prunefuse.config import allowed_values

    selectors = set(allowed_values()["selector"])
    for key, param in PARAMS.items():
        words = param.selects.split()
        assert words in ([], ["all"], ["trained"]) or set(words) <= selectors, (key, words)


# -- what tiny runs select ------------------------------------------------------------------

TINY = {"profile": "smoke", "device": "cpu", "progress": False, "eval_budgets": [0.3]}


def _picks(run):
    return [s["labeled"] for s in read_selections(run)]


@pytest.fixture(scope="module")
def picks(tmp_path_factory):
    """The labeled sets of a PruneFuse V1 smoke run, rounds 0..R."""
    return _picks(run_experiment(out=tmp_path_factory.mktemp("base"), **TINY))


@pytest.mark.slow
def test_parameters_outside_selects_leave_the_selection_unchanged(tmp_path, picks):
    other = {"target_epochs": 2, "eval_budgets": None, "eval_every": 0, "max_test": 100,
             "eval_batch_size": 64, "kd_lambda": 0.2, "kd_temperature": 2.0, "kd_t2": False,
             "freeze_fused_epochs": 1, "fusion": "fresh"}
    assert set(other) <= set(NOT_SELECTING)
    run = run_experiment(out=tmp_path, **{**TINY, **other})
    assert _picks(run) == picks


@pytest.mark.slow
@pytest.mark.parametrize("override", [{"seed": 1}, {"initial_fraction": 0.15},
                                      {"selector_epochs": 2}, {"lr": 0.02},
                                      {"batch_size": 32}, {"augment": False},
                                      {"ratio": 0.6}, {"prune_steps": 2},
                                      {"score": "entropy"}], ids=lambda o: next(iter(o)))
def test_each_parameter_in_selects_changes_the_selection(tmp_path, picks, override):
    (key, _), = override.items()
    assert key in SELECTS and key in selection_keys(make_config("smoke"))
    changed = _picks(run_experiment(out=tmp_path, **{**TINY, **override}))
    assert changed[1:] != picks[1:]  # a round's selection moved, not only the initial set


@pytest.mark.parametrize("override,key", [({"selector_epochs": 3}, "selector_epochs"),
                                          ({"lr": 0.5}, "lr"),
                                          ({"cpu_precision": "bf16"}, "cpu_precision")])
@pytest.mark.slow
def test_a_source_of_another_selection_is_refused_naming_the_parameter(tmp_path, override, key):
    src = run_experiment(profile="smoke", out=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=f"its {key}=.* differs from this run's"):
        run_experiment(profile="smoke", out=tmp_path / "reuse", progress=False,
                       selection_from=str(src), target_init="scratch", kd_lambda=0.0,
                       **override)
    assert not (tmp_path / "reuse").exists()  # refused before any folder or compute
    ok = run_experiment(profile="smoke", out=tmp_path / "reuse", progress=False,
                        selection_from=str(src), target_init="scratch", kd_lambda=0.0,
                        target_epochs=2)
    assert (ok / "DONE").exists()
