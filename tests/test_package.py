"""The package as a whole: its modules import one another in one direction (no cycle), and a
built wheel carries the notebooks, so that an installed ``prunefuse reproduce`` finds them
from any working directory."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import prunefuse

PACKAGE = Path(prunefuse.__file__).resolve().parent
ROOT = PACKAGE.parent


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prunefuse."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names
                         if a.name.startswith("prunefuse.")}
        graph[path.stem] = {d for d in deps if d in modules and d != path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_has_no_cycle():
    graph = import_graph()
    assert graph["reproduce"] >= {"grid", "execute", "executors"}  # the graph is really read
    assert find_cycle(graph) is None


def test_the_batch_layer_imports_point_one_way():
    graph = import_graph()
    # grid planning <- notebook execution <- executors <- batch driver <- command line
    assert "executors" not in graph["execute"] | graph["grid"]
    assert "reproduce" not in graph["executors"] | graph["grid"] | graph["execute"]
    assert not graph["runs"], "the run record depends on nothing else in the package"


def test_wheel_ships_the_notebooks_and_installed_package_finds_them(tmp_path):
    src = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(PACKAGE, src / "prunefuse", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True,
                   capture_output=True)
    [wheel] = (tmp_path / "dist").glob("prunefuse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    notebooks = sorted(p.name for p in (PACKAGE / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 8
    assert {f"prunefuse/notebooks/{n}" for n in notebooks} <= names
    # install the wheel alone (no source tree) and ask it, from elsewhere, for its notebooks
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    probe = ("from prunefuse.execute import NOTEBOOKS; print(NOTEBOOKS); "
             "print(*sorted(p.name for p in NOTEBOOKS.glob('*.ipynb')))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == [str(site / "prunefuse" / "notebooks"), *notebooks]
