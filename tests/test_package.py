"""The package as a whole: its modules import one another in one direction (no cycle), layer by
layer (the method core at the top of prunefuse/, then data/, run/, analysis/, batch/); the
names of the earlier flat layout still import; the built wheel is tested in test_wheel.py."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import prunefuse

PACKAGE = Path(prunefuse.__file__).resolve().parent
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    """A module's dotted name inside the package: ``run.config``, ``data`` (data/__init__.py),
    ``__init__`` (the package's own)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions (an old name of
    :data:`prunefuse.MOVED` counts as its new home; the package's own ``__init__`` is left out)."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}

    def resolve(name: str) -> str:
        return prunefuse.MOVED.get(name, name)

    graph = {}
    for path in paths:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        package = "" if package == "__init__" else package
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").startswith("prunefuse."):
                    source = node.module.removeprefix("prunefuse.")
                else:
                    continue
                source = resolve(source)
                for alias in node.names:
                    sub = resolve(f"{source}.{alias.name}" if source else alias.name)
                    deps.add(sub if sub in modules else source)
            elif isinstance(node, ast.Import):
                deps |= {resolve(a.name.removeprefix("prunefuse.")) for a in node.names
                         if a.name.startswith("prunefuse.")}
        graph[name] = {d for d in deps if d in modules and d not in (name, "__init__")}
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
    # the graph is really read, subpackages and old names included
    assert graph["batch.reproduce"] >= {"batch.grid", "batch.execute", "batch.executors"}
    assert "data.imagefolder" in graph["run.label"] and "data" in graph["data.imagefolder"]
    assert find_cycle(graph) is None


def test_the_batch_layer_imports_point_one_way():
    graph = import_graph()
    # grid planning <- notebook execution <- executors <- batch driver <- command line
    assert "batch.executors" not in graph["batch.execute"] | graph["batch.grid"]
    assert "batch.reproduce" not in (graph["batch.executors"] | graph["batch.grid"]
                                     | graph["batch.execute"])
    # the run record stands on the statistics alone (its report's mean ± sd), and they on
    # nothing, with the rules for earlier records, which stand on the trainer's schedule alone
    assert graph["run.records"] <= {"run.stats", "run.legacy"} and not graph["run.stats"], (
        graph["run.records"], graph["run.stats"])
    assert graph["run.legacy"] <= {"train"}, graph["run.legacy"]


# The method core, flat at the top of prunefuse/: pruning, selection, fusion, KD, training and
# what they stand on.
CORE = {"models", "augment", "prune", "select", "kcenter", "picks", "fuse", "distill", "train",
        "infer", "flops", "device", "errors"}
# The layers above it, each a subpackage, each importing only the layers before it: the data
# loaders; one run (parameters, the run loop, the charging rule, records); the analysis of
# records (declared comparisons, tables, figures, claims, report); the batch (planning from the
# declared comparisons and artefacts, notebook execution, executors, the driver that rebuilds
# the artefacts). Above them all: the package's __init__, ``cli`` (the command) and ``plugins``.
LAYERS = ["core", "data", "run", "analysis", "batch"]
TOP = {"__init__", "cli", "plugins"}


def layer(module: str) -> str:
    return "core" if module in CORE else module.split(".")[0]


def test_every_module_sits_in_one_layer():
    graph = import_graph()
    assert CORE <= set(graph)
    assert {layer(m) for m in set(graph) - TOP} == set(LAYERS), sorted(set(graph) - TOP)


def test_the_method_core_imports_nothing_of_the_layers_above():
    graph = import_graph()
    for module in sorted(CORE):
        assert graph[module] <= CORE, (module, sorted(graph[module] - CORE))


def test_each_layer_imports_only_the_layers_before_it():
    graph = import_graph()
    for module in sorted(set(graph) - TOP):
        allowed = set(LAYERS[:LAYERS.index(layer(module)) + 1])
        above = sorted(d for d in graph[module] if d in TOP or layer(d) not in allowed)
        assert not above, (module, above)
    # data stands on the core only, run on core and data: spelled out, as the layers' reason
    assert all(layer(d) in {"core", "data"} for m in graph if layer(m) == "data" for d in graph[m])
    assert all(layer(d) in {"core", "data", "run"} for m in graph if layer(m) == "run"
               for d in graph[m])
    # the batch plans from the analysis' declarations and rebuilds its artefacts
    assert {"analysis.artefacts", "analysis.comparisons"} <= graph["batch.grid"]


def test_every_old_module_name_imports_as_its_new_home(monkeypatch):
    for old, new in prunefuse.MOVED.items():
        assert not (PACKAGE / f"{old}.py").exists(), old
        module = importlib.import_module(f"prunefuse.{new}")
        assert Path(module.__file__).resolve().is_relative_to(PACKAGE), module.__file__
        assert importlib.import_module(f"prunefuse.{old}") is module, old
        assert sys.modules[f"prunefuse.{old}"] is module and getattr(prunefuse, old) is module
        assert module.__name__ == module.__spec__.name == f"prunefuse.{new}"
    # patching the old name patches the module its new name reads
    monkeypatch.setattr("prunefuse.runs.DONE", "patched")
    from prunefuse.run import records
    assert records.DONE == "patched"


def test_old_names_import_in_a_fresh_interpreter():
    """As a notebook or a user's copy imports them, first thing after starting."""
    code = ("from prunefuse.artefacts import main_table; from prunefuse import config; "
            "import prunefuse.explore, prunefuse.execute; from prunefuse.runs import DONE; "
            "import prunefuse.experiment as e; assert e.__name__ == 'prunefuse.run.experiment'")
    subprocess.run([sys.executable, "-c", code], check=True)
