"""Bad input from a user: one clear line naming the key and what is allowed, exit code 2,
before any folder is created or any compute starts."""

import pytest

from prunefuse.cli import main
from prunefuse.config import ConfigError, check_sizes, labeled_counts, make_config


@pytest.mark.parametrize("override,line", [
    ("lr=-1", "lr=-1.0: must be > 0"),
    ("lr=0", "lr=0.0: must be > 0"),
    ("momentum=5", "momentum=5.0: must be in [0, 1)"),
    ("momentum=1", "momentum=1.0: must be in [0, 1)"),
    ("weight_decay=-1", "weight_decay=-1.0: must be >= 0"),
    ("selector_epochs=0", "selector_epochs=0: must be >= 1 (this run trains a selector: "
                          "selector='prunefuse', target_init='fused', kd_lambda=0.5)"),
    ("target_epochs=0", "target_epochs=0: must be >= 1"),
    ("batch_size=0", "batch_size=0: must be >= 1 images"),
    ("mc_samples=-1", "mc_samples=-1: must be >= 0 (>= 1 for score='bald')"),
    ("mc_dropout=1", "mc_dropout=1.0: must be in [0, 1)"),
    ("kd_temperature=0", "kd_temperature=0.0: must be > 0"),
    ("seed=-1", "seed=-1: must be >= 0"),
    ("lr=NaN", "lr=nan: must be a finite number"),
    ("max_train=0", "max_train=0: must be a positive number of images, or null for all"),
    ("max_train=3", "max_train=3: a pool of 3 images gives 1 initial and [0, 1] labeled images "
                    "at budgets [0.1, 0.2]; every round must add at least one image: use a "
                    "larger pool (max_train) or budgets further apart"),
])
def test_every_numeric_range_is_one_line_and_exit_2(tmp_path, capsys, override, line):
    assert main(["run", "--profile", "demo", "--out", str(tmp_path), override]) == 2
    err = capsys.readouterr().err
    assert err == f"prunefuse run: error: {line}\n"
    assert not list(tmp_path.iterdir())


def test_selector_epochs_zero_is_allowed_when_no_selector_is_trained():
    assert make_config("smoke", selector="random", selector_epochs=0)["selector_epochs"] == 0
    with pytest.raises(ConfigError, match="selector_epochs=0: must be >= 1"):
        make_config("smoke", selector="svp", selector_epochs=0)


def test_labeled_counts_and_degenerate_pools():
    cfg = make_config("smoke")  # initial 10%, budgets 20%, 30% of 512
    assert labeled_counts(cfg, 512) == [51, 102, 154]
    assert labeled_counts(cfg, 10) == [1, 2, 3]
    check_sizes(cfg, 10)  # one image per round is enough
    with pytest.raises(ConfigError, match=r"dataset='synthetic': a pool of 4 images gives 1 "
                       r"initial and \[1, 1\] labeled"):
        check_sizes(cfg, 4)  # round(0.8) = 1: the first round adds nothing
