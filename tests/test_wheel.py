"""The wheel: built from the checkout (whose notebooks live in its top-level notebooks/), it
carries every notebook inside the package, and the installed package, with no source tree
beside it, finds them there from any working directory, copies them with `prunefuse
notebooks DIR`, and writes nothing into its own folder."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prunefuse import execute as nbx

ROOT = nbx.PACKAGE.parent  # the checkout
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow  # builds and installs a wheel: about half a minute on 2 busy cores


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (building in place would leave build/ there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    skip = shutil.ignore_patterns("__pycache__", "runs", ".ipynb_checkpoints")
    shutil.copytree(ROOT / "prunefuse", src / "prunefuse", ignore=skip)
    shutil.copytree(ROOT / "notebooks", src / "notebooks", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [built] = (tmp / "dist").glob("prunefuse-*.whl")
    return built


def test_wheel_carries_every_notebook_inside_the_package(wheel):
    assert len(NOTEBOOKS) >= 13 and "quickstart.ipynb" in NOTEBOOKS
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("prunefuse/notebooks/")}
    assert shipped == {f"prunefuse/notebooks/{n}" for n in NOTEBOOKS}
    assert not any(n.startswith("notebooks/") for n in names), "no top-level notebooks package"
    bundled = [p for p in (ROOT / "prunefuse" / "bundled").iterdir() if p.suffix in (".npz", ".txt")]
    assert bundled and {f"prunefuse/bundled/{p.name}" for p in bundled} <= names
    assert "prunefuse/batch/execute.py" in names
    # every module of every subpackage ships (pyproject.toml lists the subpackages)
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "prunefuse").rglob("*.py")}
    assert sources <= names, sorted(sources - names)


PROBE = """
import json, os, sys
from pathlib import Path
import prunefuse
from prunefuse import execute, reproduce
from prunefuse.cli import main
from prunefuse.config import ConfigError

folder = execute.NOTEBOOKS
try:
    execute.beside_notebook({"__session__": str(folder / "quickstart.ipynb")}, "runs")
    refused = False
except ConfigError:
    refused = True
code = main(["notebooks", sys.argv[1]])
print(json.dumps({
    "package": prunefuse.__file__, "notebooks": str(folder), "shipped": execute.SHIPPED,
    "names": sorted(p.name for p in folder.glob("*.ipynb")),
    "reproduce_default": str(reproduce.reproduce.__kwdefaults__["notebooks"]),
    "beside": str(execute.beside_notebook({}, "runs")), "cwd": os.getcwd(), "refused": refused,
    "copy_exit": code, "copied": sorted(p.name for p in Path(sys.argv[1]).glob("*.ipynb")),
}))
"""


def test_installed_wheel_finds_its_notebooks_from_anywhere(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (site / "notebooks").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("JPY_SESSION_NAME", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "mine")], cwd=elsewhere,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    package = site / "prunefuse"
    assert Path(got["package"]).resolve().parent == package.resolve(), "the installed copy"
    assert Path(got["notebooks"]) == (package / "notebooks").resolve() and got["shipped"]
    assert got["names"] == NOTEBOOKS
    assert got["reproduce_default"] == got["notebooks"]
    # papermill on an installed notebook writes into its working directory, never the package
    assert Path(got["beside"]) == elsewhere.resolve() / "runs" and got["refused"]
    assert got["copy_exit"] == 0 and got["copied"] == NOTEBOOKS
    assert sorted(p.name for p in (package / "notebooks").iterdir()) == NOTEBOOKS
    assert list(elsewhere.iterdir()) == []
