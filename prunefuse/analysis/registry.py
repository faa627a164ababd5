"""What every artefact builder shares: the registry that declares each artefact once
(:func:`artefact`), the filters that pick a comparison's runs from the records, and the writers
of captions, tables and data files (prunefuse.artefacts, prunefuse.evidence, prunefuse.claims).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..run.config import PARAMS, PROFILE_NOTES, READING_PARAMS
from ..run.records import PER_EPOCH, atomic_write_text

Paths = dict[str, Path]


# -- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Artefact:
    """One paper artefact, declared once, next to its builder.

    ``runs`` and ``params`` receive the batch planner (:class:`prunefuse.grid.Planner`):
    ``runs(planner)`` adds the runs the artefact needs through the planner's methods, and
    ``params(planner)`` returns the notebook's parameters from the grid (``records``,
    ``figures`` and ``profile`` are added by the batch).
    """

    name: str  # the key of --only
    builder: Callable[..., Paths]
    files: tuple[str, ...]  # what the builder writes besides its caption (csv, md, tex, pdf, png)
    runs: Callable[[Any], None]
    params: Callable[[Any], dict[str, Any]]
    # Offered only by a grid with this entry (``extended``, ``variants``, ``evidence``): the
    # grid settings the artefact's runs read.
    needs: str | None = None
    # Planned only when asked for (``--extended``, or named in ``--only``): runs too costly
    # to start by default.
    optional: bool = False
    # Built from whatever runs have finished (``--records``), not only once all are: a
    # declared study's artefacts pair within blocks, and an unfinished block has no pair.
    partial: bool = False

    @property
    def stem(self) -> str:
        """Name of the files the builder writes (``<stem>.csv``, ``<stem>.caption.md``, ...)."""
        return self.builder.__name__

    @property
    def notebook(self) -> str:
        """The notebook that calls the builder: ``notebooks/<stem>.ipynb``."""
        return f"{self.stem}.ipynb"


ARTEFACTS: dict[str, Artefact] = {}
# The builders' modules in the order their artefacts are listed and planned, whichever of
# them is imported first; within a module, the order of declaration. Others come last.
BUILDER_MODULES = ("prunefuse.analysis.artefacts", "prunefuse.analysis.evidence",
                   "prunefuse.analysis.claims", "prunefuse.analysis.study")


def _listing_order(art: Artefact) -> tuple[int, int]:
    module = art.builder.__module__
    rank = BUILDER_MODULES.index(module) if module in BUILDER_MODULES else len(BUILDER_MODULES)
    return rank, art.builder.__code__.co_firstlineno


def artefact(name: str, *, files: tuple[str, ...], runs: Callable[[Any], None],
             params: Callable[[Any], dict[str, Any]], needs: str | None = None,
             optional: bool = False, partial: bool = False) -> Callable:
    """Declare the builder below as artefact ``name`` (see :class:`Artefact`)."""
    def wrap(builder: Callable[..., Paths]) -> Callable[..., Paths]:
        if name in ARTEFACTS:
            raise ValueError(f"artefact {name!r} is declared twice")
        ARTEFACTS[name] = Artefact(name, builder, files, runs, params, needs, optional, partial)
        listed = sorted(ARTEFACTS.values(), key=_listing_order)
        ARTEFACTS.clear()
        ARTEFACTS.update((a.name, a) for a in listed)
        return builder
    return wrap


def whole_run(df: pd.DataFrame, unit: str) -> pd.Series:
    """Everything a run spent to reach its model at a budget, in ``unit`` (``seconds`` or
    ``macs``): its selection (cumulative), the fusion source and KD teacher's forwards, and
    that budget's target training (docs/method.md, "Cost accounting")."""
    return df[f"selection_{unit}"] + df[f"fusion_{unit}"] + df[f"target_training_{unit}"]


def _plots():
    """:mod:`prunefuse.plots` on first use: matplotlib takes seconds to import, and planning a
    batch reads the declarations here without drawing anything."""
    from . import plots

    return plots


# -- selecting records ------------------------------------------------------------------------

def _isin(series: pd.Series, values) -> pd.Series:
    return pd.to_numeric(series).round(6).isin([round(float(v), 6) for v in values])


def _at_budget(df: pd.DataFrame, budget: float | None) -> tuple[pd.DataFrame, float | None]:
    """The rows at ``budget`` (default: the largest there is), and that budget."""
    if budget is None and not df.empty:
        budget = df["budget"].max()
    return (df[_isin(df["budget"], [budget])] if budget is not None else df), budget


def _require(df: pd.DataFrame, what: str, records, **filters) -> pd.DataFrame:
    if df.empty:
        raise FileNotFoundError(
            f"records={str(records)!r}: no finished runs for {what} "
            f"({', '.join(f'{k}={v!r}' for k, v in filters.items())}); run them first, e.g. "
            "`prunefuse reproduce --profile cpu --out DIR`")
    return df


def _main_runs(df: pd.DataFrame) -> pd.Series:
    """Runs that selected for themselves (not reusing another run's selection)."""
    return df["selection_from"].isna()


_COLUMN = {"report": "reported"}  # results-table column of a parameter, where it differs


def _ours(df: pd.DataFrame, vary: tuple[str, ...] = ()) -> pd.Series:
    """Rows of V1 at our readings (:func:`prunefuse.config.at_our_readings`), except in the
    parameters ``vary`` names: those an artefact compares."""
    unknown = set(vary) - set(READING_PARAMS)
    if unknown:
        raise ValueError(f"vary={sorted(unknown)}: must be among {sorted(READING_PARAMS)}")
    keep = pd.Series(True, index=df.index)
    for param in READING_PARAMS:
        if param not in vary:
            keep &= df[_COLUMN.get(param, param)] == PARAMS[param].default
    return keep


def _prunefuse(df: pd.DataFrame) -> pd.Series:
    """PruneFuse as the paper runs it: fused target trained with KD, own selection."""
    return ((df["selector"] == "prunefuse") & (df["target_init"] == "fused")
            & (df["kd_lambda"] > 0) & _main_runs(df) & _ours(df))


def _baseline(df: pd.DataFrame) -> pd.Series:
    """Baseline AL: the dense target selects (random selection for the ``random`` score)."""
    own = (df["selector"] == "dense") & (df["score"] != "random")
    return (own | ((df["selector"] == "random") & (df["score"] == "random"))) & _main_runs(df)


# -- captions and tables -----------------------------------------------------------------------

def _own_epochs(df: pd.DataFrame) -> int:
    """The profile's target epochs: those of the runs that selected for themselves."""
    own = df.loc[_main_runs(df), "target_epochs"]
    return int(own.mode().iloc[0]) if not own.empty else int(df["target_epochs"].max())


def _at_own_epochs(df: pd.DataFrame) -> pd.Series:
    """Runs trained for the profile's own schedule, not the shorter ones of time to accuracy."""
    return df["target_epochs"] == _own_epochs(df)


def _pf_targets(df: pd.DataFrame, dataset: str, arch: str, score: str, ratios: list[float],
                vary: tuple[str, ...] = ()) -> pd.Series:
    """Every target trained on PruneFuse's selection at ``ratios`` (any initialization and
    KD) for the profile's own schedule (not the shorter ones of time to accuracy), at our
    readings but in ``vary``."""
    return ((df["dataset"] == dataset) & (df["arch"] == arch) & (df["score"] == score)
            & (df["selector"] == "prunefuse") & _isin(df["ratio"], ratios) & _ours(df, vary)
            & _at_own_epochs(df))


def _pf_runs(df: pd.DataFrame, dataset: str, arch: str, score: str, ratio: float,
             vary: tuple[str, ...]) -> pd.Series:
    """PruneFuse's fused targets with KD at ``ratio`` (:func:`_pf_targets`)."""
    return (_pf_targets(df, dataset, arch, score, [ratio], vary)
            & (df["target_init"] == "fused") & (df["kd_lambda"] > 0))


def _fusion_readings(df: pd.DataFrame, dataset: str, arch: str, score: str, ratio: float,
                     fusions: list[str]) -> pd.Series:
    """Each reading of fusion in ``fusions`` on PruneFuse's selection, and ours
    (``indices``) from the runs that selected for themselves: one row per seed and budget."""
    return (_pf_runs(df, dataset, arch, score, ratio, ("fusion",))
            & df["fusion"].isin(["indices", *fusions])
            & (_main_runs(df) | (df["fusion"] != "indices")))


def _hardware(df: pd.DataFrame) -> str:
    """Each device the runs used, with the host CPU where the record names it."""
    out = []
    if df.empty:
        return "unknown"
    for (name, threads, cpu), _ in df.groupby(["device", "threads", "cpu"], dropna=False):
        host = f" on {cpu}" if isinstance(cpu, str) else ""
        out.append(f"{name} ({threads} torch thread{'' if threads == 1 else 's'}){host}"
                   if name == "cpu"
                   else f"{name}{host}")
    return "; ".join(out) or "unknown"


def diff_note(against: str, pairing: str = "same seed") -> str:
    """The note under every Δ column: what it is paired against and how it is read."""
    return (f"Δ: paired difference against {against} ({pairing}), mean and 95% Student-t "
            "interval in percentage points; * marks an interval that excludes zero.")


def write_caption(out: Path, name: str, title: str, text: str, df: pd.DataFrame, *,
                  profile: str, setting: str, files: list[Path]) -> Path:
    """``<name>.caption.md``: what is shown, then profile, dataset, hardware, dates and files."""
    dates = sorted(d[:10] for d in df["finished"])
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    note = PROFILE_NOTES.get(profile, f"profile {profile}")
    lines = [
        f"# {title}", "", text, "",
        f"- Profile: {note}.",
        f"- Dataset: {setting}.",
        f"- Hardware: {_hardware(df)}.",
        f"- Date: runs finished {span}; built {time.strftime('%Y-%m-%d')}.",
        f"- Records: {df['run_id'].nunique()} runs, package commit(s) "
        f"{', '.join(sorted({str(c)[:7] for c in df['git_commit']})) or 'unknown'}.",
        f"- Command: `prunefuse reproduce --profile {profile} --out DIR` (DIR/runs holds the "
        "records; artefacts only read them).",
        f"- Files: {', '.join(p.name for p in files)}.",
    ]
    return atomic_write_text(out / f"{name}.caption.md", "\n".join(lines) + "\n")


def _markdown(table: pd.DataFrame) -> str:
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "—": "---"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _latex(table: pd.DataFrame, caption: str, label: str, n_text: int) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): ``n_text`` label columns left, the
    numbers right."""
    spec = "l" * n_text + "r" * (len(table.columns) - n_text)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
             rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_tex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_escape(v) for v in row) + r" \\" for row in table.itertuples(False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _write_table(out: Path, name: str, data: pd.DataFrame, table: pd.DataFrame,
                 caption: str, n_text: int) -> Paths:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "tex": out / f"{name}.tex"}
    atomic_write_text(paths["csv"], data.to_csv(index=False))
    atomic_write_text(paths["md"], _markdown(table))
    atomic_write_text(paths["tex"], _latex(table, caption, f"tab:{name}", n_text))
    return paths


def _write_data(out: Path, name: str, data: pd.DataFrame) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = data.drop(columns=PER_EPOCH, errors="ignore")
    return atomic_write_text(out / f"{name}.csv", data.to_csv(index=False))


def _figure_files(out: Path, name: str, drawn: list[Path], data: pd.DataFrame) -> Paths:
    """The figure as ``plots`` saved it (PDF, PNG) and the data behind it as CSV."""
    paths = dict(zip(("pdf", "png"), drawn))
    paths["csv"] = _write_data(out, name, data)
    return paths
