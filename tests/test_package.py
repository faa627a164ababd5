"""The package as a whole: its modules import one another in one direction (no cycle); the
built wheel is tested in test_wheel.py."""

import ast
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
    # the run record stands on the statistics alone (its report's mean ± sd), and they on nothing
    assert graph["runs"] <= {"stats"} and not graph["stats"], (graph["runs"], graph["stats"])


# The method core: pruning, selection, fusion, KD, training and what they stand on.
CORE = {"models", "data", "augment", "prune", "select", "kcenter", "picks", "fuse", "distill",
        "train", "infer", "flops", "device", "errors"}


def test_the_method_core_imports_nothing_of_the_study_layer():
    graph = import_graph()
    assert CORE <= set(graph)
    for module in sorted(CORE):
        assert graph[module] <= CORE, (module, sorted(graph[module] - CORE))
