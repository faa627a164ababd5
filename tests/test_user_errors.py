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


@pytest.mark.parametrize("content,line", [
    ('{"ratio": 0.5,\n "seed": 1,,\n}', "invalid JSON at line 2, column 12: Expecting property name "
                                        "enclosed in double quotes"),
    ("[0.5, 1]", 'expected a JSON object of parameters such as {"ratio": 0.5, "seed": 1}, '
                 "got a JSON array"),
    ('"ratio=0.5"', "expected a JSON object of parameters such as {\"ratio\": 0.5, \"seed\": 1}, "
                    "got a JSON string"),
    ("\xff\xfe", "cannot be read as UTF-8 text"),
])
def test_config_file_of_any_shape_is_one_line(tmp_path, capsys, content, line):
    path = tmp_path / "c.json"
    path.write_bytes(content.encode("latin-1"))
    out = tmp_path / "runs"
    assert main(["run", str(path), "--profile", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"prunefuse run: error: config file {str(path)!r}: {line}")
    assert err.count("\n") == 1 and not out.exists()


def test_config_file_missing_or_a_directory(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.json"), "--profile", "smoke"]) == 2
    assert capsys.readouterr().err == \
        f"prunefuse run: error: config file {str(tmp_path / 'nope.json')!r}: no such file\n"
    assert main(["run", str(tmp_path), "--profile", "smoke"]) == 2
    assert capsys.readouterr().err == (f"prunefuse run: error: config file {str(tmp_path)!r}: "
                                       "is a directory; give a JSON file of parameters\n")


def test_profile_key_in_a_config_file_is_the_profile(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"profile": "smoke", "ratio": 0.7}')
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"dataset": "synthetic"' in out and '"ratio": 0.7' in out  # smoke's dataset
    assert main(["run", str(path), "--profile", "smoke", "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--profile", "demo", "--dry-run"]) == 2
    assert capsys.readouterr().err == (f"prunefuse run: error: --profile demo contradicts "
                                       f"\"profile\": 'smoke' in {path}; give one of them\n")
    path.write_text('{"profile": ["smoke"]}')
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "profile=['smoke']: unknown; choose one of ['cpu', 'demo', 'paper', 'smoke']" in \
        capsys.readouterr().err
