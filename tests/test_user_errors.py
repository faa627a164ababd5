"""Bad input from a user: one clear line naming the key and what is allowed, exit code 2,
before any folder is created or any compute starts."""

import json

import pytest
import torch

import prunefuse
from prunefuse.cli import main
from prunefuse.config import ConfigError, check_sizes, labeled_counts, make_config, run_id
from prunefuse.data import DATASETS, DatasetNotFoundError, ImageDataset, default_root


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
    ("mc_samples=-1", "mc_samples=-1: must be >= 0 (>= 1 for a score that needs MC dropout)"),
    ("score=bald", "score='bald': renamed 'feature_dropout_mi'; no registered network trains "
                   "with dropout, so its dropout heads are not MC-dropout BALD (docs/method.md)"),
    ("schedule=svp_exact", "schedule='svp_exact': now the one 'svp' schedule (closest phases "
                           "to SVP's 1:90:45:45); use schedule='svp'"),
    ("reading=theirs", "reading='theirs': unknown; choose one of ['ours', 'authors']"),
    ("report=best", "report='best': the best epoch needs the test set after every epoch; set "
                    "eval_every=1 (eval_every=0 evaluates the last only)"),
    ("mc_dropout=1", "mc_dropout=1.0: must be in [0, 1)"),
    ("kd_temperature=0", "kd_temperature=0.0: must be > 0"),
    ("seed=-1", "seed=-1: must be >= 0"),
    ("ratio=0", "ratio=0: prunes nothing, so the selector would be the dense target itself; "
                "use selector=dense for dense active learning, or a ratio in (0, 1)"),
    ("raito=0.5", "unknown parameter 'raito': did you mean 'ratio'?"),
    ("--ratio=0.5", "--ratio: run parameters are key=value words, not options; write ratio=0.5"),
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
    assert "profile=['smoke']: unknown; choose one of ['cpu', 'demo', 'paper', 'smoke', 'study']" in \
        capsys.readouterr().err


def _smoke_record(folder, steps, **params):
    """A run record as far as its checks read it: config.json and state.json."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": make_config("smoke", **params)}))
    (folder / "state.json").write_text(json.dumps({"steps": steps}))
    return folder


def test_checks_before_any_folder_device_selection_and_data(tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def run(*overrides):
        code = main(["run", "--profile", "smoke", "--out", str(out), "--no-progress", *overrides])
        assert not out.exists(), "no run folder for a user error"
        return code, capsys.readouterr().err

    assert run("device=cuda") == (2, "prunefuse run: error: device='cuda': CUDA is not available "
                                     "on this machine; use 'cpu'\n")
    missing = tmp_path / "nothing"
    assert run(f"selection_from={missing}") == (
        2, f"prunefuse run: error: selection_from={str(missing)!r}: no run record there (no "
           "config.json); give the folder of a run that has finished its selection\n")
    half = _smoke_record(tmp_path / "half", ["round_0", "round_1"])
    assert run(f"selection_from={half}") == (
        2, f"prunefuse run: error: selection_from={str(half)!r}: its selection is unfinished "
           "(1 of 2 rounds); finish that run first\n")
    other = _smoke_record(tmp_path / "other", ["round_0", "round_1", "round_2"], ratio=0.7)
    assert run(f"selection_from={other}") == (
        2, f"prunefuse run: error: selection_from={str(other)!r}: its ratio=0.7 differs from "
           "this run's 0.5; the run reusing a selection must match it\n")

    def absent(root, download=True):
        raise DatasetNotFoundError(f"my-data not found in {root}")

    def truncated(root, download=True):
        raise ValueError(f"{root}/x.bin: truncated")

    monkeypatch.setitem(DATASETS, "absent", absent)
    monkeypatch.setitem(DATASETS, "truncated", truncated)
    assert run("dataset=absent", "data_root=/d") == (
        2, "prunefuse run: error: dataset='absent', data_root='/d': my-data not found in /d\n")
    assert run("dataset=truncated", "data_root=/d") == (
        2, "prunefuse run: error: dataset='truncated', data_root='/d': /d/x.bin: truncated\n")
    assert run("max_train=4") == (
        2, "prunefuse run: error: max_train=4: a pool of 4 images gives 1 initial and [1, 1] "
           "labeled images at budgets [0.2, 0.3]; every round must add at least one image: use "
           "a larger pool (max_train) or budgets further apart\n")
    code, err = run("dataset=absent", "--debug")  # the traceback, then the same line
    assert code == 2 and err.startswith("Traceback (most recent call last):")
    assert "DatasetNotFoundError" in err and err.endswith(
        f"dataset='absent', data_root=None: my-data not found in {default_root()}\n")


def test_demo_checks_every_method_before_the_first_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["demo", "--out", str(tmp_path / "d"), "device=cuda"]) == 2
    assert capsys.readouterr().err == ("prunefuse demo: error: device='cuda': CUDA is not "
                                       "available on this machine; use 'cpu'\n")
    assert not (tmp_path / "d").exists()


def test_run_needs_a_profile_and_help_shows_what_runs(capsys):
    assert main(["run", "ratio=0.6"]) == 2
    assert capsys.readouterr().err == (
        "prunefuse run: error: --profile: required, one of ['cpu', 'demo', 'paper', 'smoke', "
        "'study'] (paper: the SVP protocol; cpu: the paper's protocol shrunk to 2 CPU cores; "
        "study: the CPU study on a sound design; demo: one-seed cut of the cpu profile; smoke: "
        "synthetic data, 1 epoch per training), or a "
        "\"profile\" key in the config file\n")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "  dataset            \"cifar10\"" in text  # paper's value, not the base default
    assert "one of: cifar10, cifar100, fashion-mnist, imagefolder, synthetic, tiny-imagenet" \
        in text
    assert "one of: prunefuse, dense, svp, random" in text
    assert "one of: entropy, feature_dropout_mi, kcenter, least_confidence, margin, random" in text
    assert "one of: svp, cosine, constant" in text and "resnet110, resnet14, resnet18" in text
    assert '  smoke  dataset="synthetic" arch="resnet8"' in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "  max_train          4000 " in text and "  budgets            [0.1, 0.2] " in text
    assert "  arch               \"resnet20\" " in text
    assert "selector=svp" in text and "selector=random" in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"prunefuse {prunefuse.__version__}\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "prunefuse reproduce --profile smoke" in text and "Every run writes a record" in text


def test_one_number_is_a_one_element_list():
    from prunefuse.config import parse_override

    assert parse_override("eval_budgets=0.3") == ("eval_budgets", [0.3])
    assert parse_override("budgets=0.1,0.2") == ("budgets", [0.1, 0.2])
    assert parse_override("budgets=[0.1]") == ("budgets", [0.1])
    assert parse_override("ratio=0.3") == ("ratio", 0.3)  # not a list parameter


def test_a_parameter_written_as_an_option_gets_the_key_value_form(tmp_path, capsys):
    for command in (["run", "--profile", "smoke"], ["demo"], ["reproduce", "--profile", "smoke"]):
        assert main([*command, "--out", str(tmp_path / "o"), "--max-train", "64"]) == 2
        assert capsys.readouterr().err == (
            f"prunefuse {command[0]}: error: --max-train: run parameters are key=value words, "
            "not options; write max_train=64\n")
    assert not (tmp_path / "o").exists()


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert main(["run", "--profile", "smoke", "--out", str(file)]) == 2
    assert capsys.readouterr().err == (f"prunefuse run: error: --out {file}: is a file; give a "
                                       "folder (created if needed)\n")
    assert main(["reproduce", "--profile", "smoke", "--records", str(tmp_path),
                 "--out", str(file / "sub")]) == 2
    assert capsys.readouterr().err == (f"prunefuse reproduce: error: --out {file / 'sub'}: lies "
                                       f"under the file {file}; give a folder (created if "
                                       "needed)\n")
    assert main(["reproduce", "--profile", "smoke", "--out", str(file), "--dry-run"]) == 2
    assert "--out " in capsys.readouterr().err  # a dry run refuses the folder the run would
    assert main(["run", "--profile", "smoke", "ratio", "0.5", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith(
        "config file 'ratio': no such file; to set the run parameter 'ratio', write "
        "ratio=VALUE\n")
    assert file.read_text() == "mine"


def test_ctrl_c_in_run_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import prunefuse.experiment

    def interrupted(cfg, out, progress, log):
        raise KeyboardInterrupt

    monkeypatch.setattr(prunefuse.experiment, "run_experiment", interrupted)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--no-progress"]) == 130
    err = capsys.readouterr().err
    run_dir = tmp_path / run_id(make_config("smoke"))
    assert err == ("prunefuse run: interrupted; run the same command again to resume after the "
                   f"last committed step ({run_dir})\n")


def test_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    """Interrupted while the package imports (the entry point outside it catches that) or
    while the command line is read: one line, exit 130, no traceback."""
    import builtins
    import sys

    import _prunefuse_start

    real_import = builtins.__import__

    def slow_import(name, *args, **kwargs):
        if name == "prunefuse.cli":
            raise KeyboardInterrupt  # as if Ctrl-C landed while torch loads
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", slow_import)
    monkeypatch.delitem(sys.modules, "prunefuse.cli")
    assert _prunefuse_start.main() == 130
    monkeypatch.undo()
    assert capsys.readouterr().err == "prunefuse: interrupted while starting; nothing ran\n"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("prunefuse.cli.build_parser", interrupted)
    assert main(["run", "--profile", "smoke"]) == 130
    assert capsys.readouterr().err == "prunefuse: interrupted; nothing was running yet\n"


def test_labels_outside_num_classes_are_refused_before_a_run_folder(tmp_path, capsys,
                                                                   monkeypatch):
    def two_classes(root, download=True):
        x = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
        y = torch.tensor([0, 1, 2, 0, 1, 0, 1, 0])
        return ImageDataset("two", x, y, x, y % 2, num_classes=2, mean=(0.5,), std=(0.2,),
                            padding=1)

    monkeypatch.setitem(DATASETS, "two", two_classes)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "o"), "dataset=two"]) == 2
    assert capsys.readouterr().err == (
        "prunefuse run: error: dataset='two', data_root=None: y_train: label 2 is outside "
        "num_classes=2 (allowed: 0 to 1); fix the labels or num_classes\n")
    assert not (tmp_path / "o").exists()
