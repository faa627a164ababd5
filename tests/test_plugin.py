"""Your data, your model: the plugin example of docs/plugins.md (the README's section points
there) runs from the command line and from Python, and a registered model without
``features``/``fc`` is refused by name."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch.nn as nn

from prunefuse.cli import main
from prunefuse.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "docs" / "plugins.md"


def _section_blocks():
    code = PLUGINS.read_text().split("## A dataset in code\n", 1)[1]
    return re.findall(r"```(python|bash)\n(.*?)```", code, flags=re.S)


def test_readme_points_to_the_plugin_guide():
    """The README keeps a short "Your data, your model" section (error messages name it) that
    links the guide."""
    section = (ROOT / "README.md").read_text().split("## Your data, your model\n", 1)[1]
    assert "(docs/plugins.md)" in section.split("\n## ", 1)[0]


def _env():
    root = str(ROOT)
    return {**os.environ, "PRUNEFUSE_DEVICE": "cpu", "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}


@pytest.mark.slow
def test_readme_plugin_runs_from_the_cli_and_from_python(tmp_path):
    (plugin_kind, plugin), (bash_kind, command), (py_kind, script) = _section_blocks()
    assert (plugin_kind, bash_kind, py_kind) == ("python", "bash", "python")
    for folder in ("cli", "py"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "my_plugin.py").write_text(plugin)
    argv = shlex.split(command)
    assert argv[0] == "prunefuse"
    cli = subprocess.run([sys.executable, "-m", "prunefuse.cli", *argv[1:], "--no-progress"],
                         cwd=tmp_path / "cli", env=_env(), capture_output=True, text=True,
                         timeout=1800)
    assert cli.returncode == 0, cli.stderr
    run_dir = next((tmp_path / "cli" / "runs").iterdir())
    record = json.loads((run_dir / "config.json").read_text())
    assert (record["config"]["dataset"], record["config"]["arch"]) == ("my-data", "my-net")
    assert record["pool_size"] == 400 and record["test_size"] == 200
    targets = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()
               if '"target"' in x]
    assert [t["labeled"] for t in targets] == [80, 120]  # 20% and 30% of 400
    assert (run_dir / "DONE").exists() and cli.stdout.splitlines()[-1].startswith(
        "result: test accuracy ")
    py = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "py", env=_env(),
                        capture_output=True, text=True, timeout=1800)
    assert py.returncode == 0, py.stderr
    py_run = Path(tmp_path / "py" / py.stdout.strip())
    assert json.loads((py_run / "config.json").read_text())["config"]["ratio"] == 0.7
    assert (py_run / "DONE").exists() and (py_run / "index_map.json").exists()


class NoHead(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.body(x)


class Scaled(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3)
        self.fc = nn.Linear(8, num_classes)

    def features(self, x):
        return self.conv(x).mean((2, 3))

    def forward(self, x):
        return 2 * self.fc(self.features(x))  # not what the selector scores


def test_a_model_lacking_features_or_fc_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "no-head", NoHead)
    monkeypatch.setitem(MODELS, "scaled", Scaled)
    args = ["run", "--profile", "smoke", "--out", str(tmp_path / "runs"), "device=cpu"]
    assert main([*args, "arch=no-head"]) == 2
    assert capsys.readouterr().err == (
        "prunefuse run: error: arch='no-head': the model lacks a method features(x) returning "
        "the (N, D) penultimate features and an nn.Linear attribute fc (the classifier, D -> "
        "num_classes); see the README, \"Your data, your model\"\n")
    assert main([*args, "arch=scaled"]) == 2
    assert capsys.readouterr().err == (
        "prunefuse run: error: arch='scaled': model(x) must equal fc(features(x)) with 10 "
        "outputs (got shape (1, 10))\n")
    assert main([*args, "selector=svp", "proxy_arch=no-head"]) == 2
    assert "arch='no-head': the model lacks" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_plugin_that_is_not_there(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--plugin", "not_a_module", "--profile", "smoke", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        "prunefuse run: error: --plugin not_a_module: no module of that name in the working "
        "directory or on the Python path; give a module name or a .py file\n")
    assert main(["run", "--plugin", "gone.py", "--profile", "smoke", "--dry-run"]) == 2
    assert capsys.readouterr().err == "prunefuse run: error: --plugin gone.py: no such file\n"


@pytest.mark.parametrize("as_path", [True, False])
def test_plugin_registers_before_the_config_is_checked(tmp_path, capsys, monkeypatch, as_path):
    (tmp_path / "reg_plugin_x.py").write_text(
        "from prunefuse.models import MODELS, build_model\n"
        "MODELS['plugged-net'] = MODELS['resnet8']\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "reg_plugin_x", raising=False)
    monkeypatch.setitem(MODELS, "plugged-net", None)  # restored (removed) after the test
    del MODELS["plugged-net"]
    plugin = str(tmp_path / "reg_plugin_x.py") if as_path else "reg_plugin_x"
    assert main(["run", "--plugin", plugin, "--profile", "smoke", "arch=plugged-net",
                 "--dry-run"]) == 0
    assert '"arch": "plugged-net"' in capsys.readouterr().out
    sys.modules.pop("reg_plugin_x", None)


@pytest.fixture(autouse=True)
def _no_exported_plugins(monkeypatch):
    """--plugin names its file in $PRUNEFUSE_PLUGINS for the kernels; not beyond a test."""
    monkeypatch.setenv("PRUNEFUSE_PLUGINS", "")


@pytest.mark.slow
def test_reproduce_runs_the_grid_on_the_plugins_data_and_model(tmp_path):
    """`reproduce --plugin` with dataset= and arch=: every planned run, the dry run's estimate
    and the run notebooks' kernels (which train on the plugin's data) use them."""
    (plugin_kind, plugin), *_ = _section_blocks()
    (tmp_path / "my_plugin.py").write_text(plugin)
    base = [sys.executable, "-m", "prunefuse.cli", "reproduce", "--plugin", "my_plugin",
            "--profile", "smoke", "dataset=my-data", "arch=my-net", "--only", "main_table"]
    env = {**_env(), "PRUNEFUSE_PLUGINS": ""}
    dry = subprocess.run([*base, "--dry-run", "--images-per-second", "1000"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr
    planned = [line.split()[0] for line in dry.stdout.splitlines()
               if line.startswith("  ") and "[main_table" in line]
    assert planned and all(r.startswith("my-data-my-net-") for r in planned)
    assert re.search(rf"^  total\s+{len(planned)}\s", dry.stdout, flags=re.M)
    out = tmp_path / "batch"
    real = subprocess.run([*base, "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert real.returncode == 0, real.stderr[-3000:]
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == sorted(planned)
    for run in runs:
        record = json.loads((out / "runs" / run / "config.json").read_text())
        assert record["pool_size"] == 400 and record["test_size"] == 200  # the plugin's data
    assert "| my-data |" in (out / "figures" / "main_table.md").read_text()
    assert "of the my-net target" in (out / "figures" / "main_table.caption.md").read_text()
