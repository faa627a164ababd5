"""The claims artefact: each claim of the paper and each finding of ours, decided from records.

One row per claim and budget: what is claimed, the comparison, the budget, n, the mean, its
95% interval, the hypothesis (superiority, or non-inferiority at a stated margin for
"matches", "at least as well", "level", "no slower": :mod:`prunefuse.judge`), the verdict,
the family-wise verdict (Holm over every row) and the pairs whose runs crossed machines
("unknown" where the records do not name their CPU). A claim is judged at every budget its
arms ran.
Numbers are written to ``claims.md`` (with the text), ``claims.csv``, ``claims.json`` and
``claims.tex`` (one LaTeX macro per number, ``\\claim<Id><Field>``), so that prose can quote
the records instead of copies of them.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ..distill import KD_LAMBDA, KD_T2, KD_TEMPERATURE
from ..run import stats
from ..run.config import READINGS
from ..run.records import atomic_write_text, pf_label, results_table
from . import judge
from .comparisons import (
    DENSE,
    MATCH_POINTS,
    RANDOM,
    SLOWER_RATIO,
    arm_of,
    authors_arm,
    fusion_arm,
    kd_strength_arms,
    pf_arm,
    svp_arm,
    v2_arm,
)
from .evidence import (
    CONVERGED_POINTS,
    REACH_POINTS,
    TTA_ARMS,
    _focus,
    _own_epochs,
    authors_runs,
    convergence_rows,
    kd_arms,
    main_arms,
    time_to_accuracy_rows,
    time_to_accuracy_table,
)
from .judge import VERDICTS
from .registry import (
    Paths,
    _fusion_readings,
    _isin,
    _main_runs,
    _ours,
    _pf_runs,
    _prunefuse,
    artefact,
    write_caption,
)


@dataclass
class Claim:
    """One row of the claims artefact. ``mean``/``low``/``high`` are in ``unit``; the claim
    is judged by ``hypothesis`` against ``null`` (0 for a difference, 1 for a ratio) with
    ``margin`` in the claimed direction (``higher``); :func:`decide` fills ``verdict``, ``p``
    and ``family_verdict`` unless ``fixed`` (a verdict with a rule of its own, stated in the
    comparison)."""

    id: str  # letters only: the LaTeX macro stem
    claim: str
    source: str  # "paper" or "ours"
    comparison: str
    budget: str
    n: int
    mean: float
    low: float
    high: float
    unit: str
    verdict: str = ""
    hypothesis: str = "superiority"
    margin: float = 0.0
    null: float = 0.0
    higher: bool = True
    cross_machine: str = "unknown"
    p: float = math.nan
    family_verdict: str = ""
    fixed: bool = False


def verdict(low: float, high: float, *, null: float = 0.0, higher: bool = True) -> str:
    """The verdict of a superiority claim (``higher``: the value exceeds ``null``)."""
    return judge.verdict(low, high, null=null, higher=higher)


def _crossed(cell: pd.DataFrame, pair: str = "seed") -> str:
    """How many pairs of ``cell`` (two arms, one row per arm and seed) ran on two machines
    (``machine``: :func:`prunefuse.runs.machine_of`, the rule that pairs a study's blocks);
    ``unknown`` when a record does not name its CPU."""
    if "machine" not in cell or cell["machine"].isna().any():
        return "unknown"
    return str(int((cell.groupby(pair)["machine"].nunique() > 1).sum()))


def _diff_claim(id_, claim, source, df, method, baseline, budget, comparison,
                value="acc_pct", higher=True, hypothesis="superiority",
                margin=0.0) -> Claim | None:
    """A paired-difference claim: ``value(method) - value(baseline)`` at ``budget``."""
    cell = df[_isin(df["budget"], [budget]) & df["arm"].isin([method, baseline])]
    if cell.empty:
        return None
    out = stats.paired_differences(cell.assign(_b=budget), by=["_b"], method="arm",
                                   baseline=baseline, value=value)
    out = out[out["arm"] == method]
    if out.empty or out.iloc[0]["n_pairs"] == 0:
        return None
    r = out.iloc[0]
    return Claim(id_, claim, source, comparison, f"{100 * budget:g}% of the pool",
                 int(r["n_pairs"]), r["diff_mean"], r["ci_low"], r["ci_high"], "points",
                 hypothesis=hypothesis, margin=margin, higher=higher,
                 cross_machine=_crossed(cell))


def _diff_claims(id_, claim, source, df, method, baseline, budget, comparison,
                 **kw) -> list[Claim | None]:
    """:func:`_diff_claim` at every budget both arms ran, the largest (``budget``) first; the
    others' ids end in ``At`` and the budget's percent (``MainPFAtTen``)."""
    arms = df[df["arm"].isin([method, baseline])]
    have = [b for b in sorted(set(arms["budget"]), reverse=True)
            if set(arms.loc[_isin(arms["budget"], [b]), "arm"]) == {method, baseline}]
    order = [budget] + [b for b in have if round(b, 6) != round(budget, 6)]
    return [_diff_claim(id_ if round(b, 6) == round(budget, 6) else
                        f"{id_}At{_word(round(100 * b))}", claim, source, df, method, baseline,
                        b, comparison, **kw) for b in order]


def _ratio_claim(id_, claim, source, values: pd.Series, budget, comparison, *, null=1.0,
                 higher=False, unit="ratio", hypothesis="superiority",
                 margin=0.0) -> Claim | None:
    mean, _, half, n = stats.mean_ci(values)
    if n == 0:
        return None
    low, high = (mean - half, mean + half) if n > 1 else (math.nan, math.nan)
    return Claim(id_, claim, source, comparison, budget, n, mean, low, high, unit,
                 hypothesis=hypothesis, margin=margin, null=null, higher=higher)


def decide(claims: list[Claim]) -> list[Claim]:
    """Each claim's verdict and one-sided p-value by its hypothesis (:mod:`prunefuse.judge`),
    then the family-wise verdict over all of them (Holm): ``supported``, ``not supported``
    (the interval lies outside the claimed region) or ``not shown``."""
    for c in claims:
        sd = (c.high - c.low) / 2 * math.sqrt(c.n) / stats.t975(c.n - 1) if c.n > 1 \
            and not math.isnan(c.low) else math.nan
        c.p = judge.p_value(c.mean, sd, c.n, hypothesis=c.hypothesis, null=c.null,
                            margin=c.margin, higher=c.higher)
        if not c.fixed:
            c.verdict = judge.verdict(c.low, c.high, hypothesis=c.hypothesis, null=c.null,
                                      margin=c.margin, higher=c.higher)
    family = judge.family_verdicts([c.p if c.verdict == VERDICTS[0] or not c.fixed
                                    else math.nan for c in claims], [c.verdict for c in claims])
    for c, f in zip(claims, family):
        c.family_verdict = f
    return claims


# "Matches", "at least as well", "level": non-inferiority at the declared margin.
MATCHES = {"hypothesis": "noninferiority", "margin": MATCH_POINTS}


def build_claims(records: str | os.PathLike, *, dataset: str, arch: str, score: str,
                 ratio: float, budget: float) -> list[Claim]:
    """Every claim that the records under ``records`` can decide (see the module doc)."""
    df = results_table(records)
    if df.empty:
        return []
    df = _focus(df, dataset, arch, score)
    claims: list[Claim | None] = []
    main = main_arms(df, ratio)
    p = pf_label(ratio)
    claims += _diff_claims(
        "MainPF", f"{p} selects at least as well as dense AL (the paper: it matches or beats "
        "baseline AL)", "paper", main, p, DENSE, budget,
        f"{p} - dense AL, final test accuracy", **MATCHES)
    claims += _diff_claims(
        "PFRandom", f"{p} beats random selection", "paper", main, p, RANDOM,
        budget, f"{p} - random, final test accuracy")
    claims += _diff_claims(
        "DenseRandom", "Dense AL beats random selection", "ours", main, DENSE, RANDOM,
        budget, "dense AL - random, final test accuracy")
    # Selection cost: the selectors' MACs (deterministic) and seconds, paired per seed.
    sel = main[_isin(main["budget"], [budget]) & main["arm"].isin([p, DENSE])]
    if not sel.empty:
        wide = sel.pivot_table(index="seed", columns="arm", values="selection_seconds")
        if {p, DENSE} <= set(wide.columns):
            claims.append(_ratio_claim(
                "SelectionSeconds", f"{p} selects in less wall-clock time than dense AL",
                "paper", (wide[p] / wide[DENSE]).dropna(),
                f"{100 * budget:g}% of the pool", "selection seconds, PruneFuse / dense AL"))
    # The other pruning ratios and SVP against dense AL, and each ratio's selection MACs.
    dense = main[main["arm"] == DENSE]
    by_ratio = {r: main_arms(df, r) for r in sorted(set(df.loc[_prunefuse(df), "ratio"].dropna()))}
    for r, other in by_ratio.items():
        if r == ratio:
            continue
        claims += _diff_claims(
            f"MainPF{_word(round(100 * r))}", f"{pf_label(r)} selects at least as well as "
            "dense AL", "paper", other, pf_label(r), DENSE, budget,
            f"{pf_label(r)} - dense AL, final test accuracy", **MATCHES)
    svp = df[(df["selector"] == "svp") & _main_runs(df) & _ours(df)]
    for proxy, runs in svp.groupby("proxy_arch", sort=True):
        claims += _diff_claims(
            "SVP" + _letters(proxy),
            f"{svp_arm(proxy).label} selects at least as well as dense AL", "ours",
            pd.concat([runs.assign(arm="SVP"), dense]), "SVP", DENSE, budget,
            f"{svp_arm(proxy).label} - dense AL, final test accuracy", **MATCHES)
    for r, macs in by_ratio.items():
        macs = macs[_isin(macs["budget"], [budget])].pivot_table(
            index="seed", columns="arm", values="selection_macs")
        if {pf_label(r), DENSE} <= set(macs.columns):
            claims.append(_ratio_claim(
                f"SelectionMACs{_word(round(100 * r))}", f"{pf_label(r)} selects with "
                f"fewer MACs than dense AL (about (1 - p)^2 = {(1 - r) ** 2:.2f} of them)",
                "paper", (macs[pf_label(r)] / macs[DENSE]).dropna(),
                f"{100 * budget:g}% of the pool", "selection MACs, PruneFuse / dense AL"))
    # Table 2 (V2 against V1) and the readings of fusion, on PruneFuse's fused + KD target.
    def pf(vary):
        return _pf_runs(df, dataset, arch, score, ratio, vary)

    v2 = df[pf(("t_sync",)) & _main_runs(df)]
    syncs = sorted(int(t) for t in set(v2["t_sync"]) - {0})
    v1 = pf_arm(ratio).label
    v2 = v2.assign(arm=arm_of(v2, [pf_arm(ratio), *[v2_arm(ratio, t) for t in syncs]]))
    for t in syncs:
        label = v2_arm(ratio, t).label
        claims += _diff_claims(
            f"VTwoSync{_word(t)}", f"{label} selects better than V1", "paper", v2, label, v1,
            budget, f"{label} - V1 ({v1}), final test accuracy")
    readings = sorted(set(df.loc[pf(("fusion",)), "fusion"]) - {"indices"})
    fusions = df[_fusion_readings(df, dataset, arch, score, ratio, readings)]
    fusions = fusions.assign(arm=arm_of(fusions, [pf_arm(ratio),
                                                  *[fusion_arm(ratio, f) for f in readings]]))
    for f in readings:
        label = fusion_arm(ratio, f).label
        claims.append(_diff_claim(
            f"Fusion{_letters(f)}", f"the {f!r} reading of fusion "
            "trains the target better than ours (each trained tensor at its kept indices), "
            "both with our KD", "ours", fusions, label, pf_arm(ratio).label, budget,
            f"{label} - {pf_arm(ratio).label} (ours), final test accuracy"))
    # KD strength on one selection.
    kd = kd_arms(df, ratio, budget)
    none, authors, ours = (a.label for a in kd_strength_arms(ratio))
    claims.append(_diff_claim(
        "KDOurs", f"KD from the pruned selector improves the fused target (our KD: "
        f"{_kd_text('ours')})", "paper", kd, ours, none, budget, f"{ours} - {none}"))
    claims.append(_diff_claim(
        "KDAuthors", f"KD improves the fused target (the authors' KD: {_kd_text('authors')})",
        "paper", kd, authors, none, budget, f"{authors} - {none}"))
    claims.append(_diff_claim(
        "KDOursAuthors", "KD strength matters: our stronger KD trains the fused target worse "
        "than the authors' KD", "ours", kd, ours, authors, budget, f"{ours} - {authors}",
        higher=False))
    # The authors' reading against dense AL, final epoch.
    auth = df[authors_runs(df, ratio)]
    if not auth.empty:
        final = main.assign(final_pct=100 * main["final_test_acc"])
        # against dense AL, and against our reading on the same seeds: does the verdict come
        # from the method or from the reading?
        for id_, arm, claim in (
                ("AuthorsPF", DENSE, f"{p} under the authors' reading selects and trains "
                 "at least as well as dense AL (final epoch)"),
                ("ReadingsPF", p, f"the reading matters: {p} under the authors' "
                 "reading ends better than under ours (final epoch)")):
            authors = authors_arm(ratio).label
            both = pd.concat([auth.assign(arm=authors, final_pct=100 * auth["final_test_acc"]),
                              final[final["arm"] == arm]])
            comparison = f"{authors} - {arm}"
            claims += _diff_claims(id_, claim, "ours", both, authors, arm, budget,
                                   f"{comparison}, final test accuracy", value="final_pct",
                                   **(MATCHES if arm == DENSE else {}))
    claims += _time_to_accuracy_claims(records, dataset, arch, score, ratio, budget)
    claims += _convergence_claims(records, dataset, arch, score, budget)
    return decide([c for c in claims if c is not None])


def _kd_text(reading: str) -> str:
    """A reading's KD values as claims name them (``lambda 0.35, T 3, no T^2``), from their
    homes: :mod:`prunefuse.distill` for ours, :data:`prunefuse.config.READINGS` for the
    authors'."""
    v = {"kd_lambda": KD_LAMBDA, "kd_temperature": KD_TEMPERATURE, "kd_t2": KD_T2}
    v.update({k: val for k, val in READINGS[reading].items() if k in v})
    return (f"lambda {v['kd_lambda']:g}, T {v['kd_temperature']:g}, "
            f"{'T^2' if v['kd_t2'] else 'no T^2'}")


def _convergence_claims(records, dataset, arch, score, budget) -> list[Claim | None]:
    """Per longer schedule: the recipe has converged (dense AL's target gains less than
    :data:`CONVERGED_POINTS` from it)."""
    df = convergence_rows(records, dataset=dataset, arch=arch, score=score, budget=budget)
    if df.empty:
        return []
    own = _own_epochs(df)
    out = []
    for e in sorted(set(df["target_epochs"]) - {own}):
        c = _diff_claim(
            f"Converged{_word(int(e))}", f"the recipe has converged: dense AL's target trained "
            f"for {e} epochs instead of {own} gains less than {CONVERGED_POINTS:g} point",
            "ours", df, f"{e} epochs", f"{own} epochs", budget,
            f"dense AL's target, {e} - {own} epochs, same selection",
            hypothesis="noninferiority", margin=CONVERGED_POINTS, higher=False)
        out.append(c)
    return out


def _time_to_accuracy_claims(records, dataset, arch, score, ratio, budget) -> list[Claim]:
    df = time_to_accuracy_rows(records, dataset=dataset, arch=arch, score=score, ratio=ratio,
                               budget=budget)
    if df.empty or df["target_epochs"].nunique() < 2:
        return []
    cells, reach = time_to_accuracy_table(df)
    own = _own_epochs(df)
    where = f"{100 * budget:g}% of the pool"
    out = []
    fused = reach[reach["arm"] == TTA_ARMS[0]]
    scratch_cells = cells[cells["arm"] == TTA_ARMS[1]].set_index("target_epochs")
    fused_cells = cells[cells["arm"] == TTA_ARMS[0]].set_index("target_epochs")
    # The shortest schedule at which the fused target is within REACH_POINTS of dense AL.
    shorter = not fused.empty and fused.iloc[0]["reached"] and fused.iloc[0]["epochs"] < own
    if shorter:
        e = int(fused.iloc[0]["epochs"])
        r = fused_cells.loc[e]
        out.append(Claim(
            "FusedReach", f"fusion with our KD shortens training: the fused + our KD target is "
            f"within "
            f"{REACH_POINTS:g} points of dense AL's {own}-epoch accuracy at {e} epochs "
            f"({own / e:.1f}x fewer)", "paper", f"fused + our KD at {e} epochs - dense AL at "
            f"{own}", where, int(r["n_pairs"]), r["diff_mean"], r["diff_low"], r["diff_high"],
            "points", hypothesis="noninferiority", margin=REACH_POINTS))
    elif (fused_cells.index < own).any():  # shorter schedules were run, none came close
        tried = fused_cells[fused_cells.index < own]
        r = tried.iloc[-1]
        # not supported only when every shorter schedule's interval lies below the margin
        each = {judge.verdict(c["diff_low"], c["diff_high"], hypothesis="noninferiority",
                              margin=REACH_POINTS) for _, c in tried.iterrows()}
        # The row states the paper's claim; that no shorter schedule's mean came close is
        # the comparison's remark, not the claim the verdict judges.
        out.append(Claim(
            "FusedReach", f"fusion with our KD shortens training: a schedule shorter than "
            f"{own} epochs brings the fused + our KD target within {REACH_POINTS:g} points of dense AL's "
            f"{own}-epoch accuracy", "paper",
            f"fused + our KD at {int(r.name)} epochs (the longest shorter schedule) - dense AL at "
            f"{own}; no shorter schedule's mean is within {REACH_POINTS:g} points", where,
            int(r["n_pairs"]), r["diff_mean"], r["diff_low"], r["diff_high"], "points",
            VERDICTS[1] if each == {VERDICTS[1]} else VERDICTS[2],
            hypothesis="noninferiority", margin=REACH_POINTS, fixed=True))
    # Fusion against training from scratch on the same selection, at each schedule.
    for e in sorted(set(fused_cells.index) & set(scratch_cells.index)):
        a = df[(df["arm"] == TTA_ARMS[0]) & (df["target_epochs"] == e)].set_index("seed")
        b = df[(df["arm"] == TTA_ARMS[1]) & (df["target_epochs"] == e)].set_index("seed")
        seeds = sorted(set(a.index) & set(b.index))
        if not seeds:
            continue
        row = stats.interval_row(a.loc[seeds, "acc_pct"] - b.loc[seeds, "acc_pct"])
        out.append(Claim(
            f"FusedScratch{_word(e)}", f"fused + our KD beats training from scratch on the "
            f"same selection in a {e}-epoch schedule", "paper",
            f"fused + our KD - scratch, PruneFuse's selection, {e} epochs", where,
            row["n_pairs"], row["diff_mean"], row["ci_low"], row["ci_high"], "points"))
    # PruneFuse's selection without fusion or KD: the target from scratch, full schedule.
    if own in scratch_cells.index:
        r = scratch_cells.loc[own]
        out.append(Claim(
            "PFSelectionScratch", "PruneFuse's selection is at least as good as dense AL's: "
            f"the target trained from scratch on it, {own} epochs, against dense AL's", "ours",
            f"PruneFuse's selection, from scratch - dense AL, {own} epochs", where,
            int(r["n_pairs"]), r["diff_mean"], r["diff_low"], r["diff_high"], "points",
            **MATCHES))
    # The whole run at equal accuracy: PruneFuse's seconds to reach dense AL's accuracy.
    out.append(_equal_accuracy_claim(df, cells, fused, own, where))
    # The same whole runs in MACs, which do not depend on the machine as seconds do.
    a = df[(df["arm"] == TTA_ARMS[0]) & (df["target_epochs"] == own)].set_index("seed")
    ref = df[(df["arm"] == TTA_ARMS[2]) & (df["target_epochs"] == own)].set_index("seed")
    seeds = sorted(set(a.index) & set(ref.index))
    if seeds:
        out.append(_ratio_claim(
            "WholeRunMACs", f"a whole PruneFuse run (fused + our KD) costs fewer MACs than "
            f"dense AL's at equal epochs ({own})", "ours", a.loc[seeds, "macs"] / ref.loc[seeds, "macs"],
            where, "whole-run MACs (selection + fusion + target training), PruneFuse / "
            "dense AL"))
    return [c for c in out if c is not None]


def _equal_accuracy_claim(df, cells, fused, own, where) -> Claim | None:
    """PruneFuse's whole-run seconds to reach dense AL's accuracy over dense AL's, paired per
    seed, at the fewest epochs whose fused + KD target comes within :data:`REACH_POINTS`.
    When no schedule's mean does, no such time is measured: the row gives the seconds at equal
    epochs (``own``) and is not supported when every schedule's interval lies below the margin."""
    if fused.empty or own not in set(cells.loc[cells["arm"] == TTA_ARMS[0], "target_epochs"]):
        return None
    reached = bool(fused.iloc[0]["reached"])
    e = int(fused.iloc[0]["epochs"]) if reached else own
    a = df[(df["arm"] == TTA_ARMS[0]) & (df["target_epochs"] == e)].set_index("seed")
    ref = df[(df["arm"] == TTA_ARMS[2]) & (df["target_epochs"] == own)].set_index("seed")
    seeds = sorted(set(a.index) & set(ref.index))
    claim = "a whole PruneFuse run (fused + our KD) reaches dense AL's accuracy in less " \
        "wall-clock time than " \
        "dense AL (the paper's summary: 1.8x end to end)"
    if reached:
        return _ratio_claim("EqualAccuracySeconds", claim, "paper",
                            a.loc[seeds, "seconds"] / ref.loc[seeds, "seconds"], where,
                            f"whole-run seconds, PruneFuse at {e} epochs / dense AL at {own}")
    # No schedule reached dense AL's accuracy (FusedReach says so), so no time at equal
    # accuracy is measured; what is measured is the whole run at equal epochs, judged by its
    # own claim: no slower than dense AL's.
    return _ratio_claim("WholeRunSeconds", f"a whole PruneFuse run (fused + our KD) is no "
                        f"slower than dense AL's at equal epochs ({own}; the paper's summary, "
                        "1.8x faster end to end, is at equal accuracy, which no schedule here "
                        "reaches)", "ours",
                        a.loc[seeds, "seconds"] / ref.loc[seeds, "seconds"], where,
                        f"whole-run seconds at {own} epochs, PruneFuse / dense AL (no schedule "
                        f"brings PruneFuse's target within {REACH_POINTS:g} points of dense "
                        "AL, so no time at equal accuracy is measured)",
                        hypothesis="noninferiority", margin=SLOWER_RATIO)


def _letters(name: str) -> str:
    """A name as letters only, numbers spelled (resnet8 -> ResnetEight), for a macro name."""
    return re.sub(r"[^A-Za-z]", "", re.sub(r"\d+", lambda m: _word(int(m.group())),
                                            name.title()))


def _word(n: int) -> str:
    """A number as letters, for a LaTeX macro name (10 -> Ten, 20 -> Twenty, ...)."""
    words = {1: "One", 2: "Two", 8: "Eight", 10: "Ten", 20: "Twenty", 30: "Thirty",
             40: "Forty", 50: "Fifty", 60: "Sixty", 70: "Seventy", 120: "OneTwenty"}
    return words.get(n, "E" + "".join("ABCDEFGHIJ"[int(d)] for d in str(n)))


def fmt_number(value: float, unit: str) -> str:
    """How a claim's number is written everywhere (table, macros, prose)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.2f}" if unit == "points" else f"{value:.2f}"


def hypothesis_text(c: Claim) -> str:
    """The row's hypothesis with its margin, as the tables print it."""
    return judge.hypothesis_text(c.hypothesis, margin=c.margin, unit=c.unit, higher=c.higher,
                                 statistic="ratio" if c.unit == "ratio" else "difference")


def verdict_cell(c: Claim) -> str:
    """The verdict, and the pairs across machines where there are any or nobody knows."""
    where = "" if c.cross_machine == "0" else f" (pairs across machines: {c.cross_machine})"
    return c.verdict + where


def verdict_lines(claims: list[Claim]) -> list[str]:
    """One Markdown line per claim row, answer first (the family-wise verdict), for the top
    of a results page."""
    out = []
    for c in claims:
        ci = "" if c.n < 2 else f" [{fmt_number(c.low, c.unit)}, {fmt_number(c.high, c.unit)}]"
        crossed = "" if c.cross_machine == "0" else f"; pairs across machines: {c.cross_machine}"
        out.append(f"**{c.family_verdict}** (per claim: {c.verdict}): {c.claim}; {c.budget}: "
                   f"{fmt_number(c.mean, c.unit)}{ci} {c.unit}, n={c.n}, "
                   f"{hypothesis_text(c)}{crossed}")
    return out


def read_claims(path: str | os.PathLike) -> list[Claim]:
    """The claims a ``claims.json`` holds."""
    return [Claim(**row) for row in json.loads(Path(path).read_text())]


def claims_markdown(claims: list[Claim]) -> str:
    lines = ["| claim | source | comparison | budget | n | mean | 95% CI | hypothesis | "
             "verdict | family-wise (Holm) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in claims:
        ci = "no interval (n=1)" if c.n < 2 else \
            f"[{fmt_number(c.low, c.unit)}, {fmt_number(c.high, c.unit)}]"
        width = "" if c.n < 2 else f" (width {c.high - c.low:.2f})"
        lines.append(f"| {c.claim} | {c.source} | {c.comparison} | {c.budget} | {c.n} | "
                     f"{fmt_number(c.mean, c.unit)} {c.unit} | {ci}{width} | "
                     f"{hypothesis_text(c)} | {verdict_cell(c)} | {c.family_verdict} |")
    return "\n".join(lines) + "\n"


def claims_tex(claims: list[Claim]) -> str:
    """One ``\\newcommand`` per number: ``\\claim<Id>Mean``, ``Low``, ``High``, ``N`` and
    ``Verdict``."""
    lines = ["% Numbers of claims.md, from run records (prunefuse.claims). \\input{claims}"]
    for c in claims:
        stem = "claim" + re.sub(r"[^A-Za-z]", "", c.id)
        for field, value in (("Mean", fmt_number(c.mean, c.unit)),
                             ("Low", fmt_number(c.low, c.unit)),
                             ("High", fmt_number(c.high, c.unit)), ("N", str(c.n)),
                             ("Hypothesis", hypothesis_text(c)),
                             ("Verdict", verdict_cell(c)), ("FamilyVerdict", c.family_verdict),
                             ("CrossMachine", c.cross_machine)):
            lines.append(f"\\newcommand{{\\{stem}{field}}}{{{value}}}")
    return "\n".join(lines) + "\n"


@artefact("claims", files=("md", "csv", "json", "tex"), runs=lambda p: None,
          params=lambda p: {**p.shown, "ratio": p.grid.get("main_ratio", p.grid["ratios"][0]),
                            "budget": p.budget})
def claims(records: str | os.PathLike, out: str | os.PathLike, *, profile: str, dataset: str,
           arch: str, score: str, ratio: float, budget: float) -> Paths:
    """The claims of the paper and our findings, each decided from the records (see the
    module doc). Needs no runs of its own: it reads those the other artefacts planned.

    Returns the paths of ``claims.{md,csv,json,tex,caption.md}``.
    """
    out, name = Path(out), "claims"
    rows = build_claims(records, dataset=dataset, arch=arch, score=score, ratio=ratio,
                        budget=budget)
    if not rows:
        raise FileNotFoundError(f"records={str(records)!r}: no finished runs decide any claim "
                                f"({dataset}, {arch}, {score}, p={ratio:g}); run the grid first")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{name}.md", "csv": out / f"{name}.csv", "json": out / f"{name}.json",
             "tex": out / f"{name}.tex"}
    atomic_write_text(paths["md"], claims_markdown(rows))
    atomic_write_text(paths["csv"], pd.DataFrame([asdict(c) for c in rows]).to_csv(index=False))
    atomic_write_text(paths["json"], json.dumps([asdict(c) for c in rows], indent=1) + "\n")
    atomic_write_text(paths["tex"], claims_tex(rows))
    ns = sorted({c.n for c in rows})
    caption = ("Each claim decided from the run records: mean and 95% Student-t interval over "
               "paired seeds ("
               + (f"n={ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1
                  else f"n={ns[0]}-{ns[-1]} seeds, as each row says")
               + "; points of test accuracy, or a ratio per seed), at every budget its arms ran. "
               "Each row states its hypothesis: superiority (the interval lies beyond 0 "
               "points or a ratio of 1 in the claimed direction) or, for 'matches', 'at least "
               f"as well', 'within' and 'no slower', non-inferiority at its margin ({MATCH_POINTS:g}"
               f" point for a selection that matches, {REACH_POINTS:g} for a schedule that "
               f"reaches, {CONVERGED_POINTS:g} for convergence, {100 * SLOWER_RATIO:g}% for "
               "seconds; docs/method.md, \"Margins\"). Supported: the interval lies in the "
               "claimed region; not supported: entirely outside it; undecided at this n: "
               "across its bound. Family-wise: Holm's step-down over every row (one-sided alpha "
               f"{judge.ALPHA}); 'not shown' where the row is not supported family-wise. Pairs "
               "across machines: 'unknown' where the records do not name their CPU, which "
               "adds noise to a pair (runs that compute the same thing differ on two CPUs).")
    df = results_table(records)
    paths["caption"] = write_caption(out, name, "Claims, decided from the records", caption,
                                     df[df["dataset"] == dataset], profile=profile,
                                     setting=f"{dataset}; target {arch}; score {score}",
                                     files=list(paths.values()))
    return paths


NUMBER = re.compile(r"[+\-−]?\d+\.\d+")


def numbers_in(text: str) -> set[str]:
    """The decimal numbers of a text, signs normalised (for the test that the results text
    quotes only numbers of ``claims.md``)."""
    return {n.replace("−", "-").lstrip("+") for n in NUMBER.findall(text)}


__all__: list[str] = ["Claim", "VERDICTS", "build_claims", "claims", "verdict", "numbers_in",
                      "fmt_number"]
