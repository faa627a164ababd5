"""Notebooks and the reproduce batch: every notebook executes under papermill on the smoke profile
(synthetic data), notebook parameters are checked before anything runs, and a failing run keeps
its partial notebook and names the failing cell.

The smoke batch (14 runs and 10 artefact notebooks, each in its own kernel, beside the evidence
runs of tests/test_evidence.py) is built once per session (tests/conftest.py).
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import SMOKE_BATCH

from prunefuse import execute as nbx
from prunefuse import grid
from prunefuse import reproduce as rep
from prunefuse.artefacts import ARTEFACTS
from prunefuse.cli import build_parser, main
from prunefuse.config import PARAMS, PROFILES, ConfigError, make_config, run_id
from prunefuse.execute import NOTEBOOK_EXTRAS, from_notebook, notebook_parameters_cell

NOTEBOOKS = sorted(nbx.NOTEBOOKS.glob("*.ipynb"))
EXPERIMENT = nbx.NOTEBOOKS / nbx.EXPERIMENT
# Files each artefact of the smoke batch writes into figures/, besides its caption.
OUTPUTS = {ARTEFACTS[a].stem: ARTEFACTS[a].files for a in SMOKE_BATCH}


# -- the notebooks as committed ----------------------------------------------------------------

def test_every_artefact_has_its_notebook_which_calls_its_builder():
    names = {p.name for p in NOTEBOOKS}
    assert names == {nbx.EXPERIMENT, "quickstart.ipynb", "explore.ipynb", "label.ipynb",
                     *(a.notebook for a in ARTEFACTS.values())}
    for art in ARTEFACTS.values():
        source = "\n".join(c.source for c in nbformat.read(nbx.NOTEBOOKS / art.notebook,
                                                            as_version=4).cells)
        assert f"from prunefuse.artefacts import {art.stem}\n" in source + "\n", art.name
        assert set(art.files) <= {"csv", "md", "tex", "pdf", "png", "json"} and art.files, art.name


def test_the_checkout_keeps_one_copy_of_the_notebooks_at_its_top_level():
    """The tests run from a source checkout (or an editable install of one): the notebooks are
    its top-level notebooks/, the package folder holds none, and reproduce executes those."""
    root = Path(rep.__file__).resolve().parents[2]  # prunefuse/batch/reproduce.py
    assert (root / "pyproject.toml").is_file()
    assert nbx.NOTEBOOKS == root / "notebooks" and not nbx.SHIPPED
    assert not list((root / "prunefuse").glob("**/*.ipynb")), "one copy: notebooks/ only"
    assert rep.reproduce.__kwdefaults__["notebooks"] == nbx.NOTEBOOKS
    assert len(NOTEBOOKS) >= 13  # which ones: test_every_artefact_has_its_notebook_...


def test_notebook_folder_finds_the_wheels_and_the_checkouts(tmp_path):
    def layout(*folders):
        for folder in folders:
            (tmp_path / folder).mkdir(parents=True)
            (tmp_path / folder / nbx.EXPERIMENT).write_text("{}")

    # an installed wheel: inside the package, even beside another distribution's notebooks/
    layout("site/prunefuse/notebooks", "site/notebooks")
    assert nbx.notebook_folder(tmp_path / "site/prunefuse") == tmp_path / "site/prunefuse/notebooks"
    # a checkout: the top-level folder; a stale package folder without the notebooks is passed by
    layout("checkout/notebooks")
    (tmp_path / "checkout/prunefuse/notebooks/runs").mkdir(parents=True)
    assert nbx.notebook_folder(tmp_path / "checkout/prunefuse") == tmp_path / "checkout/notebooks"
    # neither: where a wheel would have them, for the messages
    (tmp_path / "bare/prunefuse").mkdir(parents=True)
    assert nbx.notebook_folder(tmp_path / "bare/prunefuse") == tmp_path / "bare/prunefuse/notebooks"


def _defaults(path: Path) -> dict:
    return {k: ast.literal_eval(v["default"]) for k, v in nbx.notebook_parameters(path).items()}


def _cli_default(command: str, dest: str):
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[command].get_default(dest)


def test_artefact_notebook_defaults_are_what_a_reproduce_batch_passes_them(tmp_path, monkeypatch):
    """Opened as they are, the table and figure notebooks read the records of the `prunefuse
    reproduce` command their `records` help names, run (default --out) in the notebook's
    folder: records and figures where that batch has them, and every other parameter the value
    the batch passes. The real command line plans the batch; it stops before any kernel."""
    by_profile: dict[str, dict[str, dict]] = {}
    for art_name, art in ARTEFACTS.items():
        path = nbx.NOTEBOOKS / art.notebook
        if not path.exists():
            continue  # test_every_artefact_has_its_notebook_which_calls_its_builder fails
        defaults = _defaults(path)
        profile = defaults["profile"]
        assert profile in grid.GRIDS, f"{art.notebook}: profile={profile!r} has no reproduce grid"
        assert art_name in grid.default_artefacts(profile, extended=True), (art.notebook, profile)
        flag = "" if art_name in grid.default_artefacts(profile) else " --extended"
        assert (f"`prunefuse reproduce --profile {profile}{flag}`"
                in nbx.notebook_parameters(path)["records"]["help"]), art.notebook
        by_profile.setdefault(profile, {})[art_name] = defaults
    assert by_profile

    class Planned(Exception):
        pass

    passed: dict[str, dict] = {}

    def check_parameters(nb, params):
        if Path(nb).name != nbx.EXPERIMENT:
            passed[Path(nb).name] = params

    def check_kernel():
        raise Planned

    monkeypatch.setattr(rep, "check_parameters", check_parameters)
    monkeypatch.setattr(rep, "check_kernel", check_kernel)
    monkeypatch.chdir(tmp_path)
    for profile, notebooks in by_profile.items():
        passed.clear()
        with pytest.raises(Planned):
            main(["reproduce", "--profile", profile, "--only", ",".join(notebooks)])
        assert not list(tmp_path.iterdir()), "stopped before writing anything"
        for art_name, defaults in notebooks.items():
            nb = ARTEFACTS[art_name].notebook
            got = dict(passed[nb])
            for key in ("records", "figures"):
                assert Path(got.pop(key)) == (tmp_path / defaults.pop(key)).resolve(), (nb, key)
            assert defaults == got, nb


def _quickstart_methods(ratio: float) -> list[dict]:
    """The ``methods`` quickstart.ipynb runs, read from its code."""
    nb = nbformat.read(nbx.NOTEBOOKS / "quickstart.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and [getattr(t, "id", None)
                                                     for t in node.targets] == ["methods"]:
                    return eval(compile(ast.Expression(node.value), "quickstart", "eval"),
                                {"ratio": ratio})
    raise AssertionError("quickstart.ipynb assigns no `methods`")


def test_run_notebook_defaults_name_what_their_commands_write():
    experiment = _defaults(EXPERIMENT)
    assert experiment["profile"] in PROFILES
    assert experiment["out"] == _cli_default("run", "out")  # `prunefuse run --profile ...`
    quick = _defaults(nbx.NOTEBOOKS / "quickstart.ipynb")
    assert quick["profile"] in PROFILES and quick["out"] == ""
    source = "\n".join(c.source for c in nbformat.read(nbx.NOTEBOOKS / "quickstart.ipynb",
                                                         as_version=4).cells)
    assert ('out = out or str(beside_notebook(globals(), "runs", "quickstart",\n'
            '                                  notebook="quickstart.ipynb"))') in source
    # the epochs a profile trains are printed from the profile, never written in the text
    assert not re.search(r"\d+ (target )?epochs", source) and "cfg['target_epochs']" in source
    runs = {m["selector"]: f"runs/quickstart/{run_id(make_config(quick['profile'], **m))}"
            for m in _quickstart_methods(quick["ratio"])}
    explore = _defaults(nbx.NOTEBOOKS / "explore.ipynb")
    assert explore["run"] == runs["prunefuse"]
    assert explore["compare_with"] == runs["dense"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterized(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip()]
    declared = nbx.notebook_parameters(path)
    assert len(declared) == len(lines), "one parameter per line"
    for name, spec in declared.items():
        types = nbx.declared_types(spec)
        assert types is not None, f"{name}: needs a type annotation"
        assert spec["help"], f"{name}: needs a comment saying what it is"
        value = ast.literal_eval(spec["default"])
        assert isinstance(value, types), name
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
            "committed without outputs"
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defs, "no function or class definitions in notebooks: logic goes in the library"


def test_experiment_takes_every_run_parameter():
    nb = nbformat.read(EXPERIMENT, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert cell.source == notebook_parameters_cell()
    declared = nbx.notebook_parameters(EXPERIMENT)
    assert list(declared) == [*NOTEBOOK_EXTRAS, *PARAMS]
    for key in PARAMS:
        assert declared[key]["default"] == "None", key  # None: the profile's value
        for value in (PARAMS[key].default, None):
            nbx.check_parameters(EXPERIMENT, {key: value})


def test_from_notebook_resolves_none_and_rejects_unknown_names():
    ns = {"profile": "smoke", "out": "runs", "progress": True, **dict.fromkeys(PARAMS)}
    assert from_notebook(ns) == make_config("smoke")
    history = ["", 'profile: str = "demo"',
               '# Parameters\nratio = 0.7\nseed = 1\nbudgets = "0.2,0.4"\n']
    got = from_notebook({**ns, "ratio": 0.7, "seed": 1, "budgets": "0.2,0.4", "In": history})
    assert got == make_config("smoke", ratio=0.7, seed=1, budgets=[0.2, 0.4])
    history.append('# Parameters\nratoi = 0.5\nprofile = "smoke"\n')
    with pytest.raises(ConfigError, match=r"unknown notebook parameter\(s\) \['ratoi'\]; "
                                          r"allowed: \[.*'ratio'"):
        from_notebook({**ns, "ratoi": 0.5, "In": history})
    with pytest.raises(ConfigError, match=r"ratio=1.5: .*\(0, 1\)"):
        from_notebook({**ns, "ratio": 1.5})


@pytest.mark.slow
def test_papermill_cli_passes_run_parameters(tmp_path):
    """The real papermill command line, on the smoke profile: -p values reach the run, and a
    name that is not a parameter fails the notebook before any compute, naming it."""
    env = {**os.environ, "PYTHONPATH": str(Path(rep.__file__).parents[2])}
    papermill = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3"]
    out = tmp_path / "runs"
    args = ["-p", "profile", "smoke", "-p", "ratio", "0.7", "-p", "seed", "1", "-p", "out",
            str(out), "-p", "progress", "False", "-p", "budgets", "0.2,0.4"]
    proc = subprocess.run([*papermill, str(EXPERIMENT), str(tmp_path / "ok.ipynb"), *args],
                          env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = make_config("smoke", ratio=0.7, seed=1, budgets=[0.2, 0.4])
    record = json.loads((out / run_id(expected) / "config.json").read_text())
    assert record["config"] == expected and (out / run_id(expected) / "DONE").exists()
    bad = tmp_path / "bad.ipynb"
    proc = subprocess.run([*papermill, str(EXPERIMENT), str(bad), "-p", "profile", "smoke",
                           "-p", "ratoi", "0.5", "-p", "out", str(tmp_path / "bad-runs")],
                          env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode != 0
    (error,) = _errors(nbformat.read(bad, as_version=4))
    assert error.ename == "ConfigError"
    assert error.evalue.startswith("unknown notebook parameter(s) ['ratoi']; allowed: ")
    assert not (tmp_path / "bad-runs").exists()  # nothing computed, no folder


# -- planning and checks (no kernels) ----------------------------------------------------------

def test_paper_plan_covers_every_artefact():
    plan = grid.plan("paper")
    ids = [r.run_id for r in plan.runs]
    assert len(ids) == len(set(ids)) == 174
    # main table: 2 datasets x 4 scores x 3 seeds x (baseline + 4 ratios)
    assert sum("main_table" in r.artefacts for r in plan.runs) == 120
    order = {rid: i for i, rid in enumerate(ids)}
    for run in plan.runs:
        cfg = make_config("paper", **run.config)
        assert run_id(cfg) == run.run_id and cfg["arch"] in ("resnet56", "resnet14", "resnet20")
        if run.needs:  # ablation variants reuse the selection of a PruneFuse run planned before
            assert order[run.needs] < order[run.run_id]
            assert cfg["selection_from"] == f"runs/{run.needs}"
    ablation = [make_config("paper", **r.config) for r in plan.runs if "ablation" in r.artefacts]
    variants = {(c["ratio"], c["seed"], c["target_init"], c["kd_lambda"]) for c in ablation}
    assert len(variants) == 4 * 3 * 4  # ratios x seeds x {scratch, fused} x {KD, no KD}
    fig5 = [make_config("paper", **r.config) for r in plan.runs if "figure5" in r.artefacts]
    assert {(c["arch"], c["selector"], c["ratio"] if c["selector"] == "prunefuse"
             else c["proxy_arch"]) for c in fig5} == {
        (a, "prunefuse", p) for a in ("resnet14", "resnet20") for p in (0.5, 0.6)} | {
        ("resnet14", "svp", "resnet8"), ("resnet20", "svp", "resnet8")}
    # optional everywhere, each by the flag on its declaration: the evidence arms, the
    # variant artefacts (V2 and the readings of fusion) and the extended table
    evidence = ("main_comparison", "kd_strength", "authors_reading", "time_to_accuracy",
                "convergence")
    variants = ("table2", "fusion_variants")
    assert {a for a, art in ARTEFACTS.items() if art.optional} == \
        {*evidence, *variants, "extended"}
    study = {a for a, art in ARTEFACTS.items() if art.needs == "study"}  # the study's own
    assert study and set(grid.plan("study").notebooks) == study
    assert set(plan.notebooks) == set(ARTEFACTS) - set(variants) - {"extended"} - set(evidence) \
        - study
    # the variant artefacts add 3 seeds x (V2 at T_sync 1, 2 + 3 fusion readings) to cpu,
    # 1 x (1 + 3) to smoke; their V1 runs are the main ones
    base = [a for a in ARTEFACTS if not ARTEFACTS[a].optional and a not in study]
    assert len(grid.plan("cpu", artefacts=base).runs) == 30
    assert len(grid.plan("smoke", artefacts=base).runs) == 10
    assert len(grid.plan("smoke").runs) == 10
    assert len(grid.plan("cpu").runs) == 30
    assert len(grid.plan("smoke", artefacts=base + list(variants)).runs) == 10 + 4
    assert len(grid.plan("cpu", artefacts=base + list(variants)).runs) == 30 + 15
    # a grid without the entry an artefact needs does not offer it
    assert "table2" not in grid.default_artefacts("paper", extended=True)
    # the evidence arms beyond the main runs of seeds 0-4: 10 extra seeds x 3 methods, 5
    # authors' runs, 5 x 2 KD arms less the 3 no-KD ones the ablation has, and 5 x (3 fused
    # + 3 dense + 4 scratch) time-to-accuracy targets less the ablation's 3 scratch at 60,
    # the fused + KD arm's 3 shorter schedules on the 10 extra seeds, and 5 dense AL targets
    # trained twice as long (convergence)
    extended = grid.plan("cpu", artefacts=grid.default_artefacts("cpu", extended=True))
    assert len(extended.runs) == 30 + 15 + 30 + 5 + (10 - 3) + (50 - 3) + 10 * 3 + 5
    reach = [make_config("cpu", **r.config) for r in extended.runs
             if r.artefacts == ["time_to_accuracy"] and r.config["seed"] >= 5]
    assert len(reach) == 30 and {c["target_epochs"] for c in reach} == {10, 20, 30}
    assert all(c["target_init"] == "fused" and c["kd_lambda"] > 0 for c in reach)
    # each on the selection of its seed's PruneFuse run of the main comparison
    sources = {r.run_id: r for r in extended.runs}
    assert all(make_config("cpu", **sources[c["selection_from"].split("/")[-1]].config)[
        "eval_budgets"] == [0.3] for c in reach)
    conv = [make_config("cpu", **r.config) for r in extended.runs
            if r.artefacts == ["convergence"]]
    assert len(conv) == 5 and {c["target_epochs"] for c in conv} == {120}
    assert all(c["selector"] == "dense" and c["selection_from"] for c in conv)


@pytest.mark.parametrize("profile,seeds,t_syncs", [("smoke", [0], [1]), ("cpu", [0, 1, 2], [1, 2])])
def test_variant_artefacts_pair_each_run_with_v1(profile, seeds, t_syncs):
    plan = grid.plan(profile, artefacts=["table2", "fusion_variants"])
    cfgs = {r.run_id: make_config(profile, **r.config) for r in plan.runs}
    by = {}
    for r in plan.runs:
        c = cfgs[r.run_id]
        assert c["selector"] == "prunefuse" and c["ratio"] == 0.5 and c["seed"] in seeds
        by.setdefault((c["t_sync"], c["fusion"]), []).append((c, r))
    v1 = {c["seed"]: r.run_id for c, r in by[(0, "indices")]}
    assert sorted(v1) == seeds  # one V1 run per seed, shared by both artefacts
    assert all(set(r.artefacts) == {"table2", "fusion_variants"} for _, r in by[(0, "indices")])
    assert sorted(t for t, f in by if t) == t_syncs
    for t in t_syncs:  # V2: full runs of their own, same seeds
        assert sorted(c["seed"] for c, r in by[(t, "indices")]) == seeds
        assert all(r.needs is None and c["selection_from"] is None for c, r in by[(t, "indices")])
    for fusion in ("fresh", "conv_only", "fork"):  # the V1 run's selection, largest budget
        runs = by[(0, fusion)]
        assert sorted(c["seed"] for c, _ in runs) == seeds
        for c, r in runs:
            assert r.needs == v1[c["seed"]] and c["selection_from"] == f"runs/{r.needs}"
            assert c["eval_budgets"] == [0.3] and c["t_sync"] == 0
    assert len(plan.runs) == len(seeds) * (1 + len(t_syncs) + 3)
    assert plan.notebooks["table2"]["t_syncs"] == t_syncs
    assert plan.notebooks["fusion_variants"]["fusions"] == ["fresh", "conv_only", "fork"]
    if profile == "cpu":  # after every run of the study, and each after the run it reuses
        full = grid.plan("cpu", artefacts=grid.default_artefacts("cpu", extended=True))
        order = [r.run_id for r in full.runs]
        first_variant = min(order.index(r.run_id) for r in plan.runs
                            if cfgs[r.run_id]["t_sync"] or cfgs[r.run_id]["fusion"] != "indices")
        # the last tier: these 15 and the 5 runs of the authors' reading (fork fusion)
        assert first_variant == len(full.runs) - 15 - 5
    with pytest.raises(ConfigError, match=r"artefacts \['table2'\]: unknown for the paper grid"):
        grid.plan("paper", artefacts=["table2"])


def test_extended_help_names_each_grid_s_optional_artefacts(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for profile in grid.GRIDS:
        extra = [a for a in grid.default_artefacts(profile, extended=True)
                 if a not in grid.default_artefacts(profile)]
        if extra:
            assert f"{profile}: {', '.join(extra)}" in help_text, profile


def test_cpu_dry_run_lists_the_variant_artefacts_when_extended(capsys):
    assert main(["reproduce", "--profile", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("30 runs (cpu profile):") and "table2" not in out
    assert grid.default_artefacts("cpu") == [a for a in ARTEFACTS if a not in (
        "table2", "fusion_variants", "extended", "main_comparison", "kd_strength",
        "authors_reading", "time_to_accuracy", "convergence")
        and ARTEFACTS[a].needs != "study"]
    assert main(["reproduce", "--profile", "cpu", "--extended", "--dry-run"]) == 0
    out = capsys.readouterr().out
    n = len(grid.plan("cpu", artefacts=grid.default_artefacts("cpu", extended=True)).runs)
    assert out.startswith(f"{n} runs (cpu profile):")
    # its runs, plus its notebook line and its line of the cost table
    assert sum("table2" in ln for ln in out.splitlines() if ln.startswith("  ")) == 3 * 3 + 2
    assert sum("fusion_variants" in ln for ln in out.splitlines()
               if ln.startswith("  ")) == 3 * 4 + 2
    assert "table2.ipynb" in out and "fusion_variants.ipynb" in out


def test_plan_rejects_what_would_break_the_grid():
    with pytest.raises(ConfigError, match="profile='papr'"):
        grid.plan("papr")
    with pytest.raises(ConfigError, match=r"\['seed'\]: set by the smoke grid"):
        grid.plan("smoke", overrides={"seed": 3})
    with pytest.raises(ConfigError, match="figure6"):
        grid.plan("smoke", artefacts=["figure6"])
    with pytest.raises(ConfigError, match="target_epochs=-1"):
        grid.plan("smoke", overrides={"target_epochs": -1})
    only = grid.plan("smoke", artefacts=["figure5"])
    assert set(only.notebooks) == {"figure5"} and len(only.runs) == 3


@pytest.mark.slow
def test_extended_table_is_planned_only_when_asked(capsys):
    """Tiny ImageNet and the deeper targets join the paper grid behind --extended."""
    default = grid.plan("paper")
    assert "extended" not in default.notebooks
    assert "extended" not in grid.default_artefacts("paper")
    plan = grid.plan("paper", artefacts=grid.default_artefacts("paper", extended=True))
    ext = [make_config("paper", **r.config) for r in plan.runs if "extended" in r.artefacts]
    blocks = {(c["dataset"], c["arch"]) for c in ext}
    assert blocks == {("tiny-imagenet", "resnet56"), ("cifar10", "resnet110"),
                      ("cifar10", "preact-resnet164"), ("cifar10", "wrn-16-8")}
    assert len(ext) == 4 * 3 * (1 + 4)  # blocks x seeds x (Baseline + 4 ratios)
    assert {(c["selector"], c["ratio"] if c["selector"] == "prunefuse" else None) for c in ext} \
        == {("dense", None)} | {("prunefuse", p) for p in (0.5, 0.6, 0.7, 0.8)}
    assert len(plan.runs) == len(default.runs) + len(ext)
    assert main(["reproduce", "--profile", "paper", "--extended", "--dry-run",
                 "--images-per-second", "2000"]) == 0
    out = capsys.readouterr().out
    assert "extended_table.ipynb" in out and re.search(r"^  extended\s+60\s", out, re.M)
    assert main(["reproduce", "--profile", "smoke", "--extended", "--dry-run"]) == 0
    assert "time_to_accuracy" in capsys.readouterr().out  # smoke's optional evidence arms
    with pytest.raises(ConfigError, match=r"artefacts \['extended'\]: unknown for the cpu grid"):
        grid.plan("cpu", artefacts=["extended"])


def test_a_declared_artefact_is_planned_listed_and_selectable(monkeypatch, capsys):
    """Declaring an artefact (here a made-up one) is all the planner and --only need."""
    from prunefuse.artefacts import Artefact

    def agreement(records, out, *, profile, dataset, arch, score):
        raise AssertionError("planning builds nothing")

    monkeypatch.setitem(ARTEFACTS, "agreement", Artefact(
        "agreement", agreement, ("csv",), runs=lambda p: p.main_runs(),
        params=lambda p: {**p.shown, "seeds": p.grid["seeds"]}))
    plan = grid.plan("smoke", artefacts=["agreement"])
    assert plan.notebooks == {"agreement": {"profile": "smoke", "dataset": "synthetic",
                                            "arch": "resnet8", "score": "least_confidence",
                                            "seeds": [0]}}
    # the focus score's main runs: the dense baseline and PruneFuse at both smoke ratios
    assert sorted(run_id(make_config("smoke", **r.config)) for r in plan.runs) == sorted(
        run_id(make_config("smoke", **c)) for c in (
            {"selector": "dense"}, {"selector": "prunefuse", "ratio": 0.5},
            {"selector": "prunefuse", "ratio": 0.6}))
    assert all(r.artefacts == ["agreement"] for r in plan.runs)
    assert main(["reproduce", "--profile", "smoke", "--only", "agreement", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 runs (smoke profile)" in out and "agreement.ipynb" in out
    assert "agreement" in grid.plan("smoke").notebooks


def test_kernels_started_together_talk_over_their_own_unix_sockets(tmp_path):
    """Two notebooks executed at once from one folder (as a batch's runs are): each kernel on
    Unix sockets of its own name, none left behind; over TCP they could race for a port."""
    from concurrent.futures import ThreadPoolExecutor

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import json\nfrom ipykernel.connect import get_connection_info\n"
        "info = json.loads(get_connection_info())\nprint(info['transport'], info['ip'])")]
    nbformat.write(nb, tmp_path / "probe.ipynb")
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda i: nbx.execute_notebook(
            tmp_path / "probe.ipynb", tmp_path / f"out{i}.ipynb", {}, cwd=tmp_path), (0, 1)))
    seen = [nbformat.read(o, as_version=4).cells[0].outputs[0]["text"].split() for o in outs]
    if os.name != "posix":
        assert all(t == "tcp" for t, _ in seen)
        return
    assert [t for t, _ in seen] == ["ipc", "ipc"] and seen[0][1] != seen[1][1]
    assert all(Path(ip).name.startswith("prunefuse-kernel-") for _, ip in seen)
    assert not [p for _, ip in seen for p in Path(ip).parent.glob(Path(ip).name + "*")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.ipynb", "out1.ipynb",
                                                          "probe.ipynb"]


def test_mistyped_parameter_is_rejected_before_anything_runs(tmp_path, capsys):
    with pytest.raises(nbx.ParameterError, match=r"unknown parameter\(s\) \['profle'\].*'profile'"):
        nbx.check_parameters(EXPERIMENT, {"profle": "smoke"})
    with pytest.raises(nbx.ParameterError, match=r"budgets=\{\} is dict, expected list or NoneType"):
        nbx.execute_notebook(EXPERIMENT, tmp_path / "out.ipynb", {"budgets": {}})
    with pytest.raises(nbx.ParameterError, match="progress=1 is int, expected bool"):
        nbx.check_parameters(EXPERIMENT, {"progress": 1})
    with pytest.raises(nbx.ParameterError, match="ratios='0.5' is str, expected list"):
        nbx.check_parameters(nbx.NOTEBOOKS / "ablation.ipynb", {"ratios": "0.5"})
    nbx.check_parameters(nbx.NOTEBOOKS / "quickstart.ipynb", {"ratio": 1})  # int is a float
    # the command line: a mistyped run parameter fails before any notebook runs
    out = tmp_path / "batch"
    assert main(["reproduce", "--profile", "smoke", "--out", str(out), "target_epoch=1"]) == 2
    assert "unknown parameter 'target_epoch'" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.ipynb").exists()


# -- execution (kernels) -----------------------------------------------------------------------

def _errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.output_type == "error"]


@pytest.mark.slow
def test_smoke_batch_writes_records_and_executed_notebooks(smoke_batch):
    plan = json.loads((smoke_batch / "plan.json").read_text())
    assert plan["profile"] == "smoke" and len(plan["runs"]) == 14
    for run in plan["runs"]:
        run_dir = smoke_batch / "runs" / run["run_id"]
        for name in ("DONE", "config.json", "metrics.jsonl", "ledger.json", nbx.EXPERIMENT):
            assert (run_dir / name).exists(), (run["run_id"], name)
        nb = nbformat.read(run_dir / nbx.EXPERIMENT, as_version=4)
        passed = nb.metadata.papermill.parameters
        assert not _errors(nb) and {k: passed[k] for k in run["config"]} == run["config"]
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and 'profile = "smoke"' in injected[0].source
    for name in SMOKE_BATCH:
        nb = nbformat.read(smoke_batch / "notebooks" / ARTEFACTS[name].notebook, as_version=4)
        assert not _errors(nb) and any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_ablation_runs_reuse_the_pruned_selection(smoke_batch):
    plan = json.loads((smoke_batch / "plan.json").read_text())
    # the fusion / KD variants (the fusion-reading runs of fusion_variants also reuse one)
    variants = [r for r in plan["runs"] if r["needs"] and "ablation" in r["artefacts"]]
    assert len(variants) == 6
    for run in variants:
        for rnd in ("round_01.json", "round_02.json"):
            mine = json.loads((smoke_batch / "runs" / run["run_id"] / "selections" / rnd).read_text())
            main_ = json.loads((smoke_batch / "runs" / run["needs"] / "selections" / rnd).read_text())
            assert mine["labeled"] == main_["labeled"]


@pytest.mark.slow
def test_smoke_batch_writes_every_figure_and_table(smoke_batch):
    figures = smoke_batch / "figures"
    for name, kinds in OUTPUTS.items():
        for kind in kinds:
            path = figures / f"{name}.{kind}"
            assert path.stat().st_size > 0, path
        if "pdf" in kinds:
            assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")
            assert (figures / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        caption = (figures / f"{name}.caption.md").read_text()
        assert "Profile: smoke" in caption and "synthetic" in caption
        assert "Hardware: cpu" in caption and re.search(r"\d{4}-\d\d-\d\d", caption)
        assert re.search(r"n=1 seed|one seed", caption), caption  # every caption states its n
    main_md = (figures / "main_table.md").read_text()
    for header in ("dense AL", "PruneFuse p=0.5", "PruneFuse p=0.6", "selector params (M)",
                   "selector MACs / image (M)"):
        assert header in main_md
    assert r"\begin{tabular}" in (figures / "main_table.tex").read_text()
    data = pd.read_csv(figures / "main_table.csv")
    # SVP and random-selection runs of the batch appear beside the baseline and PruneFuse.
    assert {"dense", "prunefuse"} <= set(data["selector"]) <= {"dense", "prunefuse", "svp",
                                                               "random"}
    assert set(data["budget"]) == {0.2, 0.3}
    ablation_md = (figures / "ablation.md").read_text()
    for variant in ("scratch", "scratch + KD", "fused, no KD", "fused + KD (PruneFuse)"):
        assert f"| {variant} |" in ablation_md
    # One charging rule: at every budget, Figure 3's baseline / PruneFuse selection MACs is
    # the ratio of the two selectors' MACs per image.
    fig3 = pd.read_csv(figures / "figure3_selection_macs.csv")
    for _, rows in fig3.groupby("ratio"):
        per_image = (rows.loc[rows["method"] == "dense AL", "selector_macs_per_sample"].iloc[0]
                     / rows.loc[rows["method"] == "PruneFuse", "selector_macs_per_sample"].iloc[0])
        assert rows["dense_over_prunefuse"].to_numpy() == pytest.approx(per_image, rel=1e-12)
        assert rows["budget_pct"].nunique() == 2
    curves = pd.read_csv(figures / "figure4_epochs.csv")
    assert set(curves["ratio"]) == {0.5, 0.6} and set(curves["epoch"]) == {1}
    cost = pd.read_csv(figures / "cost_accuracy.csv")
    assert (cost["selection_macs"] > 0).all() and (cost["selection_seconds"] > 0).all()
    fig5 = pd.read_csv(figures / "figure5_selector_size.csv")
    assert set(fig5["family"]) == {"PruneFuse", "SVP"}


@pytest.mark.slow
def test_rerun_skips_finished_runs(smoke_batch):
    lines = []
    result = rep.reproduce("smoke", smoke_batch, artefacts=SMOKE_BATCH, run_figures=False,
                           log=lines.append)
    assert result["executed"] == [] and len(result["skipped"]) == 14
    assert all("done, skipped" in line for line in lines)


@pytest.mark.slow
def test_quickstart_notebook_runs_on_smoke(smoke_batch, tmp_path):
    out = smoke_batch / "runs"  # PruneFuse, dense and SVP are already there; random runs now
    nbx.execute_notebook(nbx.NOTEBOOKS / "quickstart.ipynb", tmp_path / "quickstart.ipynb",
                         {"profile": "smoke", "out": str(out), "progress": False}, cwd=tmp_path)
    assert (out / "quickstart.pdf").exists() and (out / "quickstart.png").exists()
    random_run = out / run_id(make_config("smoke", selector="random"))
    assert (random_run / "DONE").exists()


@pytest.mark.slow
def test_extended_table_builds_from_records(smoke_batch, tmp_path):
    """The extended table's builder on the smoke records, one block: Baseline and PruneFuse at
    both smoke ratios, per budget, with the paired difference."""
    from prunefuse.artefacts import extended_table

    paths = extended_table(smoke_batch / "runs", tmp_path, profile="smoke",
                           blocks=[["synthetic", "resnet8"], ["cifar10", "resnet110"]],
                           score="least_confidence", ratios=[0.5, 0.6])
    table = pd.read_csv(paths["csv"])
    assert set(table["method"]) == {"dense AL", "PruneFuse p=0.5", "PruneFuse p=0.6"}
    md = paths["md"].read_text()
    assert md.count("| synthetic | resnet8 |") == 3 * 2  # methods x smoke budgets
    assert "resnet110" not in md and "dense AL" in md
    assert "target resnet8" in paths["caption"].read_text()


def test_beside_notebook_ignores_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert nbx.beside_notebook({}, "runs", "q") == nbx.NOTEBOOKS / "runs" / "q"
    nb = tmp_path / "mine.ipynb"
    nb.write_text("{}")
    assert nbx.beside_notebook({"__session__": str(nb)}, "runs") == tmp_path / "runs"
    assert nbx.beside_notebook({"__vsc_ipynb_file__": str(nb)}, "runs") == tmp_path / "runs"
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    assert nbx.beside_notebook({}, "runs") == tmp_path / "runs"
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "gone.ipynb"))
    assert nbx.beside_notebook({}) == nbx.NOTEBOOKS
    monkeypatch.setattr(nbx.os, "access", lambda path, mode: False)  # a read-only checkout
    monkeypatch.chdir(tmp_path)
    assert nbx.beside_notebook({}, "runs") == tmp_path / "runs"


def test_beside_notebook_under_papermill_is_the_folder_holding_the_notebook(tmp_path,
                                                                             monkeypatch):
    """A copy made by `prunefuse notebooks DIR`, run with papermill from DIR: records land in
    DIR, not in the checkout's notebooks/."""
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.ipynb").write_text("{}")
    assert nbx.beside_notebook({}, "runs", notebook="quickstart.ipynb") == tmp_path / "runs"
    assert nbx.beside_notebook({}, "runs", notebook="explore.ipynb") == nbx.NOTEBOOKS / "runs"


def test_a_copied_notebook_writes_beside_itself_from_any_folder(tmp_path, monkeypatch):
    """`prunefuse notebooks DIR` gives each copy its own path where it calls beside_notebook:
    papermill run from another folder still writes into DIR; moved away, the copy falls back
    to the folder rules above."""
    import ast

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    copies = nbx.copy_notebooks(tmp_path / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in ("quickstart.ipynb", "label.ipynb"):
        copy = next(c for c in copies if c.name == name)
        source = "".join(line for cell in nbformat.read(copy, as_version=4).cells
                         if cell.cell_type == "code"
                         for line in cell.source.splitlines(keepends=True)
                         if "notebook=" in line)
        path = ast.literal_eval(source.split("notebook=")[1].split(")")[0])
        assert path == str(copy.resolve())
        assert nbx.beside_notebook({}, "runs", notebook=path) == copy.parent / "runs"
    copy.unlink()  # moved away: the absolute path no longer holds the notebook
    assert nbx.beside_notebook({}, "runs", notebook=str(copy)) == nbx.NOTEBOOKS / "runs"


def test_explore_skips_a_comparison_run_that_is_not_there(tmp_path, capsys):
    from prunefuse import explore

    assert explore.run_or_skip(str(tmp_path / "gone")) == ""
    assert capsys.readouterr().out == (f"compare_with={str(tmp_path / 'gone')!r}: not a run "
                                       "folder (no config.json); skipped\n")
    (tmp_path / "config.json").write_text("{}")
    assert explore.run_or_skip(str(tmp_path)) == str(tmp_path) and explore.run_or_skip("") == ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs apt-get install dataset-fashion-mnist")
def test_label_notebook_walks_the_loop_on_real_pngs(tmp_path):
    out = nbx.execute_notebook(nbx.NOTEBOOKS / "label.ipynb", tmp_path / "label.ipynb",
                               {"images": 200, "batch": 30, "rounds": 2, "arch": "resnet8",
                                "selector_epochs": 1, "target_epochs": 1,
                                "out": str(tmp_path / "work")}, cwd=tmp_path)
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb)
    card = json.loads((tmp_path / "work" / "project" / "model" / "model_card.json").read_text())
    assert card["labels"] == 60 and [r["round"] for r in card["rounds"]] == [1, 2]
    said = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert said.count("on 100 test images") == 2  # one fixed test set, every round
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


@pytest.mark.slow
def test_explore_notebook_runs_on_any_run_folder(tmp_path):
    """`-p run FOLDER` alone: the default comparison run is absent and skipped in a line."""
    from prunefuse.experiment import run_experiment

    run = run_experiment(profile="smoke", out=tmp_path / "runs", selector="random",
                         max_train=64, max_test=32, progress=False)
    out = nbx.execute_notebook(nbx.NOTEBOOKS / "explore.ipynb", tmp_path / "explore.ipynb",
                               {"run": str(run), "n_images": 4}, cwd=tmp_path)
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "not a run folder (no config.json); skipped" in text


def test_beside_notebook_never_writes_into_the_installed_package(tmp_path, monkeypatch):
    shipped = tmp_path / "site" / "prunefuse" / "notebooks"  # writable, as in a user's venv
    shipped.mkdir(parents=True)
    (shipped / "quickstart.ipynb").write_text("{}")
    monkeypatch.setattr(nbx, "NOTEBOOKS", shipped)
    monkeypatch.setattr(nbx, "SHIPPED", True)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert nbx.beside_notebook({}, "runs") == work / "runs"  # papermill: the working directory
    mine = work / "quickstart.ipynb"
    mine.write_text("{}")
    assert nbx.beside_notebook({"__session__": str(mine)}, "runs") == work / "runs"
    with pytest.raises(ConfigError, match=r"installed with the package; .*prunefuse notebooks DIR"):
        nbx.beside_notebook({"__session__": str(shipped / "quickstart.ipynb")}, "runs")
    monkeypatch.chdir(shipped)  # Jupyter opened on the installed notebook, no session name
    with pytest.raises(ConfigError, match="prunefuse notebooks DIR"):
        nbx.beside_notebook({}, "runs")
    assert not (shipped / "runs").exists()


def test_notebooks_command_copies_them_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "shipped"  # read-only, like installed files can be
    shutil.copytree(nbx.NOTEBOOKS, shipped, ignore=shutil.ignore_patterns("runs", ".*"))
    for p in shipped.iterdir():
        p.chmod(0o444)
    monkeypatch.setattr(nbx, "NOTEBOOKS", shipped)
    dest = tmp_path / "mine" / "nb"
    assert main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in NOTEBOOKS)
    assert all(os.access(p, os.W_OK) for p in dest.iterdir()), "the copies are the user's"
    # the copy is the notebook, with its own path where it asks for its folder
    mine = str((dest / "quickstart.ipynb").resolve())
    assert (dest / "quickstart.ipynb").read_text() == (shipped / "quickstart.ipynb").read_text() \
        .replace('notebook=\\"quickstart.ipynb\\"', f"notebook='{mine}'")
    assert (dest / "main_table.ipynb").read_bytes() == (shipped / "main_table.ipynb").read_bytes()
    assert f"copied {len(NOTEBOOKS)} notebooks into {dest}" in out
    assert f"cd {dest}" in out and "jupyter lab" in out
    assert "prunefuse reproduce --profile smoke" in out
    (dest / "main_table.ipynb").write_text("mine")
    assert main(["notebooks", str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"prunefuse notebooks: error: {dest}: would "
                                               f"overwrite {len(NOTEBOOKS)} existing notebook(s)")
    assert "--force" in err[0] and (dest / "main_table.ipynb").read_text() == "mine"
    assert main(["notebooks", str(dest), "--force"]) == 0
    assert (dest / "main_table.ipynb").read_bytes() == (shipped / "main_table.ipynb").read_bytes()
    (tmp_path / "file").write_text("")
    assert main(["notebooks", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_writes_beside_itself_from_any_directory(tmp_path):
    """Jupyter names the notebook (JPY_SESSION_NAME); the kernel starts elsewhere; the default
    profile is smoke, so it takes seconds."""
    declared = nbx.notebook_parameters(nbx.NOTEBOOKS / "quickstart.ipynb")
    assert declared["profile"]["default"] == '"smoke"' and declared["out"]["default"] == '""'
    nb_dir, elsewhere = tmp_path / "nb", tmp_path / "elsewhere"
    nb_dir.mkdir()
    elsewhere.mkdir()
    shutil.copy(nbx.NOTEBOOKS / "quickstart.ipynb", nb_dir / "quickstart.ipynb")
    env = {**os.environ, "PYTHONPATH": str(Path(rep.__file__).parents[2]),
           "JPY_SESSION_NAME": str(nb_dir / "quickstart.ipynb")}
    proc = subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", "-k",
                           "python3", str(nb_dir / "quickstart.ipynb"),
                           str(tmp_path / "executed.ipynb"), "-p", "progress", "False"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = nb_dir / "runs" / "quickstart"
    assert (out / "quickstart.png").exists() and (out / "quickstart.pdf").exists()
    done = sorted(p.parent.name for p in out.glob("*/DONE"))
    assert done == sorted(run_id(make_config("smoke", **m)) for m in (
        {"selector": "prunefuse", "ratio": 0.5}, {"selector": "dense"}, {"selector": "svp"},
        {"selector": "random"}))
    assert list(elsewhere.iterdir()) == []
    # explore.ipynb beside it, opened as it is (Jupyter starts kernels in the notebook's folder),
    # shows the quickstart's PruneFuse run against its dense-AL run
    shutil.copy(nbx.NOTEBOOKS / "explore.ipynb", nb_dir / "explore.ipynb")
    executed = nbx.execute_notebook(nb_dir / "explore.ipynb", tmp_path / "explore.ipynb", {},
                                    cwd=nb_dir)
    assert not _errors(nbformat.read(executed, as_version=4))


@pytest.mark.slow
def test_explore_notebook_runs_on_smoke(smoke_batch, tmp_path):
    runs = smoke_batch / "runs"
    pruned = runs / run_id(make_config("smoke", selector="prunefuse", ratio=0.5))
    dense = runs / run_id(make_config("smoke", selector="dense"))
    out = nbx.execute_notebook(nbx.NOTEBOOKS / "explore.ipynb", tmp_path / "explore.ipynb",
                               {"run": str(pruned), "compare_with": str(dense), "n_images": 4},
                               cwd=tmp_path)
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb)
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 5  # picks, class balance, scores, learning and cost, agreement


@pytest.mark.slow
def test_failing_run_stops_the_batch_and_keeps_its_partial_notebook(tmp_path, monkeypatch, capsys):
    # The config is valid, so the checks pass; the run fails inside the notebook because the
    # run whose selection it reuses does not exist.
    bad = {"selection_from": "runs/not-there"}
    good = {"selector": "random"}
    runs = [grid.Run(run_id(make_config("smoke", **c)), c, ["main_table"]) for c in (bad, good)]
    monkeypatch.setattr(rep, "plan", lambda *a, **k: grid.Plan("smoke", runs, {}))
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"experiment\.ipynb failed in cell In \[\d+\] \(`run_dir = run_experiment",
                     err), err
    assert "ConfigError" in err and "not-there" in err
    partial = tmp_path / "runs" / runs[0].run_id / nbx.EXPERIMENT
    assert f"partial notebook kept at {partial}" in err
    errors = _errors(nbformat.read(partial, as_version=4))
    assert len(errors) == 1 and errors[0].ename == "ConfigError"
    assert not (tmp_path / "runs" / runs[1].run_id).exists(), "the batch stopped at the failure"


# -- builders on hand-made records (exact numbers, no training) ---------------------------------

def test_builders_report_mean_sd_and_n_over_seeds(tmp_path, write_record):
    from prunefuse import artefacts

    records, out = tmp_path / "runs", tmp_path / "figures"
    for seed, (base, pf) in enumerate([(0.40, 0.50), (0.60, 0.70)]):
        write_record(records, seed, [base - 0.1, base], [4e9, 8e9], selector="dense")
        write_record(records, seed, [pf - 0.1, pf], [1e9, 2e9], selector="prunefuse", ratio=0.5)
    kw = dict(profile="smoke", arch="resnet8")
    paths = artefacts.main_table(records, out, datasets=["synthetic"],
                                 scores=["least_confidence"], ratios=[0.5], **kw)
    md = paths["md"].read_text()
    # budget 30%: baseline 40 and 60 -> 50.00 +- 14.14; PruneFuse 50 and 70 -> 60.00 +- 14.14,
    # +10 points in both seeds: a paired interval of zero width, which excludes zero.
    assert "| synthetic | least_confidence | 30 | dense AL | 50.00 ± 14.14 | 2 |  | 0.078 |" in md
    assert ("| synthetic | least_confidence | 30 | PruneFuse p=0.5 | 60.00 ± 14.14 | 2 | "
            "+10.00 [+10.00, +10.00]* | 0.020 | 3.00 |") in md
    caption = paths["caption"].read_text()
    assert "n=2 seeds" in caption and "runs finished 2025-01-02;" in caption
    assert "- Hardware: cpu (2 torch threads)." in caption  # records that name no host CPU
    assert "Records: 4 runs" in caption
    fig3 = artefacts.figure3_selection_macs(records, out, dataset="synthetic",
                                            score="least_confidence", ratios=[0.5],
                                            budgets=[0.2, 0.3], **kw)
    data = pd.read_csv(fig3["csv"])
    assert sorted(data.groupby("method")["gmacs"].max()) == [2.0, 8.0]
    assert (data["dense_over_prunefuse"] == 4.0).all()
    cost = artefacts.cost_accuracy(records, out, dataset="synthetic", score="least_confidence",
                                   ratios=[0.5], **kw)
    rows = {line.split(" | ")[0].strip("| ") + line.split(" | ")[1]: line
            for line in cost["md"].read_text().splitlines()[2:]}
    # the baseline's final mean (50%) is first reached by PruneFuse at 20% (40, 60 -> 50):
    # selection 1 s (1e9 MACs at 1e-9 s per MAC here) + 1 s target training
    assert rows["PruneFuse p=0.520"].endswith("| 2.0 |")
    assert rows["dense AL30"].endswith("| 9.0 |")


def test_variant_builders_pair_with_v1_and_keep_variants_out_of_the_main_table(tmp_path, write_record):
    from prunefuse import artefacts

    records, out = tmp_path / "runs", tmp_path / "figures"
    for seed, v1 in enumerate([0.50, 0.70]):
        write_record(records, seed, [v1 - 0.1, v1], [1e9, 2e9], selector="prunefuse")
        write_record(records, seed, [v1 - 0.1, v1 + 0.02], [1e9, 5e9], selector="prunefuse", t_sync=1)
        write_record(records, seed, [v1 - 0.1, v1 - 0.05 * (seed + 1)], [1e9, 2e9],
                selector="prunefuse", fusion="fork")
        # other readings of the same seeds (the authors' preset, their form of KD): rows of
        # none of the tables below
        write_record(records, seed, [0.1, 0.1], [1e9, 2e9], selector="prunefuse", reading="authors")
        write_record(records, seed, [0.1, 0.1], [1e9, 2e9], selector="prunefuse", kd_lambda=0.35,
                kd_temperature=3.0, kd_t2=False)
    kw = dict(profile="smoke", dataset="synthetic", arch="resnet8", score="least_confidence",
              ratio=0.5)
    md = artefacts.table2(records, out, t_syncs=[1], **kw)["md"].read_text()
    # 30%: V1 50, 70 -> 60.00 ± 14.14; V2 52, 72: +2 points in both seeds
    # the rows carry the declared arms' labels (prunefuse.comparisons)
    assert "| 30 | PruneFuse p=0.5 | 60.00 ± 14.14 | 2 |  | 2 |" in md
    assert "| 30 | PruneFuse V2 (T_sync=1) | 62.00 ± 14.14 | 2 | +2.00 [+2.00, +2.00]* | 5 |" in md
    assert "fork" not in md
    both = tmp_path / "both"  # two derivations of V2 in one folder: rows apart, each named
    for seed, v1 in enumerate([0.50, 0.70]):
        write_record(both, seed, [v1 - 0.1, v1], [1e9, 2e9], selector="prunefuse")
        for derive in ("gather", "reprune"):
            write_record(both, seed, [v1 - 0.1, v1 + 0.02], [1e9, 5e9], selector="prunefuse",
                         t_sync=1, v2_derive=derive)
    two = artefacts.table2(both, tmp_path / "both_out", t_syncs=[1], **kw)["md"].read_text()
    assert "| 30 | PruneFuse V2 (T_sync=1) (gather) |" in two
    assert "| 30 | PruneFuse V2 (T_sync=1) (reprune) |" in two
    fv = artefacts.fusion_variants(records, out, fusions=["fork"], **kw)
    md = fv["md"].read_text()
    # fork at 30%: 45, 60 -> 52.50 ± 10.61; differences -5, -10: mean -7.5, t(1) interval
    assert "| 30 | PruneFuse p=0.5 | 60.00 ± 14.14 | 2 |  | 2 |" in md
    assert "| 30 | fused by the 'fork' reading (+ our KD) | 52.50 ± 10.61 | 2 | -7.50 [" in md
    assert "V2" not in md
    assert "n=2 seeds" in fv["caption"].read_text()
    main = artefacts.main_table(records, out, datasets=["synthetic"], arch="resnet8",
                                scores=["least_confidence"], ratios=[0.5], profile="smoke")
    assert "| 30 | PruneFuse p=0.5 | 60.00 ± 14.14 | 2 |" in main["md"].read_text()


def test_dry_run_prints_runs_macs_and_hours_per_artefact(capsys):
    from prunefuse.estimate import dataset_shape, forward_macs, plan_cost, run_macs

    plan = grid.plan("smoke", artefacts=SMOKE_BATCH)
    cost = plan_cost(plan, images_per_second=500.0)
    macs = {r.run_id: sum(run_macs(make_config("smoke", **r.config)).values())
            for r in plan.runs}
    assert cost["total"]["runs"] == 14 and cost["total"]["macs"] == sum(macs.values())
    target = forward_macs("resnet8", *dataset_shape("synthetic")[2:])
    assert cost["total"]["hours"] == pytest.approx(sum(macs.values()) / (3 * target * 500) / 3600)
    for artefact in plan.notebooks:
        mine = [r.run_id for r in plan.runs if artefact in r.artefacts]
        assert cost[artefact]["runs"] == len(mine)
        assert cost[artefact]["macs"] == sum(macs[m] for m in mine)
    assert main(["reproduce", "--profile", "smoke", "--only", ",".join(SMOKE_BATCH),
                 "--dry-run", "--images-per-second", "500"]) == 0
    out = capsys.readouterr().out
    total = [ln.split() for ln in out.splitlines() if ln.strip().startswith("total")]
    assert total == [["total", "14", f"{sum(macs.values()) / 1e15:.4g}",
                      f"{cost['total']['hours']:.3g}"]]
    assert any(ln.split()[:2] == ["table2", "2"] for ln in out.splitlines())
    assert main(["reproduce", "--profile", "smoke", "--dry-run", "--images-per-second",
                 "0"]) == 2
    assert "--images-per-second 0: must be > 0" in capsys.readouterr().err


def test_captions_name_each_host_cpu_the_records_name():
    from prunefuse.registry import _hardware

    df = pd.DataFrame({"device": ["cpu"] * 3 + ["NVIDIA H100"], "threads": [1, 1, 1, 4],
                       "cpu": ["A, AVX2, 2 cores", "B, AVX512, 2 cores", None, "C, AVX512, 16 cores"]})
    assert _hardware(df) == ("NVIDIA H100 on C, AVX512, 16 cores; cpu (1 torch thread) on A, "
                             "AVX2, 2 cores; cpu (1 torch thread) on B, AVX512, 2 cores; cpu (1 "
                             "torch thread)")


def test_artefacts_are_listed_alike_whichever_module_is_imported_first():
    """The plan walks the registry in order, so the order of the runs must not depend on
    which builder module a program (or a test) happened to import first."""
    import subprocess
    import sys

    code = ("import {0}; from prunefuse.artefacts import ARTEFACTS; "
            "from prunefuse.grid import default_artefacts, plan; "
            "print(list(ARTEFACTS)); print([r.run_id for r in plan('cpu', "
            "artefacts=default_artefacts('cpu', extended=True)).runs])")
    outs = {subprocess.run([sys.executable, "-c", code.format(m)], capture_output=True,
                           text=True, check=True).stdout
            for m in ("prunefuse.claims", "prunefuse.evidence", "prunefuse.artefacts")}
    assert len(outs) == 1
    assert "'main_table'" in outs.pop().splitlines()[0].split(",")[0]


def test_cost_keeps_seeds_with_every_budget_and_takes_median_seconds(tmp_path, write_record):
    """A seed that trained its target at the last budget only (the main comparison's extra
    seeds) stays out of the cost artefact, whose lines would otherwise average other seeds at
    their last point; a run slowed by other work moves the seconds' median, not their mean."""
    from prunefuse import artefacts

    records, out = tmp_path / "runs", tmp_path / "figures"
    for seed, acc in enumerate([0.40, 0.50, 0.60, 0.99]):
        write_record(records, seed, [acc - 0.1, acc], [4e9, 8e9], selector="dense")
    for run in records.iterdir():
        metrics = run / "metrics.jsonl"
        lines = [json.loads(x) for x in metrics.read_text().splitlines()]
        seed = json.loads((run / "config.json").read_text())["config"]["seed"]
        if seed == 0:
            lines[-1]["training_seconds"] = 100.0  # slowed by other work on its machine
        if seed == 3:
            lines = lines[-1:]  # the last budget only
        metrics.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cost = artefacts.cost_accuracy(records, out, dataset="synthetic", score="least_confidence",
                                   ratios=[0.5], profile="smoke", arch="resnet8")
    row = next(line for line in cost["md"].read_text().splitlines()
               if line.startswith("| dense AL | 30 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "50.00 ± 10.00 (n=3)"  # seeds 0-2; not seed 3's 99%
    assert cells[-2] == "9.0"  # totals 108, 9 and 9 s: the median, where the mean is 42
    assert set(pd.read_csv(cost["csv"])["seed"]) == {0, 1, 2}
