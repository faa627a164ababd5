"""A reused selection (selection_from) must match its source in every parameter that defines
a selection, and is refused before any compute otherwise."""

import pytest

from prunefuse.config import PARAMS, SELECTS, ConfigError, make_config, selection_keys
from prunefuse.experiment import run_experiment


def test_every_selects_key_is_a_parameter_and_training_keys_apply_to_trained_selectors():
    assert set(SELECTS) <= set(PARAMS)
    pf = selection_keys(make_config("smoke"))
    assert {"selector_epochs", "lr", "schedule", "batch_size", "cpu_precision", "augment",
            "warm_start", "selector_init", "mc_samples", "t_sync", "ratio", "arch"} <= set(pf)
    rnd = selection_keys(make_config("smoke", selector="random"))
    assert "lr" not in rnd and "seed" in rnd and "budgets" in rnd
    assert "target_epochs" not in pf and "kd_lambda" not in pf  # the target's, not selection's


def test_each_parameter_declares_whom_its_value_selects_for():
    from prunefuse.config import allowed_values

    selectors = set(allowed_values()["selector"])
    for key, param in PARAMS.items():
        words = param.selects.split()
        assert words in ([], ["all"], ["trained"]) or set(words) <= selectors, (key, words)
    assert SELECTS == {k: p.selects for k, p in PARAMS.items() if p.selects}
    assert PARAMS["data_root"].selects == "" and "data_root" not in SELECTS  # where, not what


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
