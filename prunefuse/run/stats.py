"""Statistics over seeds: mean ± sd, Student-t confidence intervals, and paired differences;
and the agreement of two selections (Jaccard overlap, Spearman correlation of scores).

Within a seed every method shares the dense init, the initial labeled set and the pool
(docs/method.md, "The CPU study"), so methods are compared *paired*: the difference is taken
seed by seed, and its mean gets a t interval over the n pairs (n - 1 degrees of freedom).
With n = 1 there is no interval; it is reported as undefined, never as zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Two-sided 95% quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard tables); beyond
# 30, the Cornish-Fisher expansion of t in the normal quantile (Abramowitz & Stegun 26.7.5),
# within 1e-4 of the exact value there.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"df={df}: a t interval needs at least 2 values (df >= 1)")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = 1.959964, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z)
            / (92160 * v ** 4))


def mean_ci(values) -> tuple[float, float, float, int]:
    """(mean, sd, half-width of the 95% t interval, n) of ``values``; NaN sd/half-width
    when n < 2."""
    v = pd.Series(values, dtype=float).dropna()
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    if n == 1:
        return float(v.iloc[0]), math.nan, math.nan, 1
    sd = float(v.std(ddof=1))
    return float(v.mean()), sd, t975(n - 1) * sd / math.sqrt(n), n


def ci_interval(values) -> tuple[float, float]:
    """(low, high) of the 95% t interval of the mean; for seaborn's ``errorbar=``."""
    mean, _, half, n = mean_ci(values)
    return (mean, mean) if n < 2 else (mean - half, mean + half)


def interval_row(values) -> dict:
    """n, mean, sd and 95% t interval of ``values`` (the difference columns of
    :func:`paired_differences`); the interval is NaN, and ``excludes_zero`` False, when n < 2."""
    mean, sd, half, n = mean_ci(values)
    return {"n_pairs": n, "diff_mean": mean, "diff_sd": sd, "ci_low": mean - half,
            "ci_high": mean + half,
            "excludes_zero": bool(n >= 2 and (mean - half > 0 or mean + half < 0))}


def paired_differences(df: pd.DataFrame, *, by: list[str], method: str, baseline: str,
                       value: str = "acc_pct", pair: str = "seed") -> pd.DataFrame:
    """Per group of ``by`` and per method other than ``baseline``: the paired difference
    ``value(method) - value(baseline)`` over the ``pair`` values both have.

    Args:
        df: one row per (group, method, pair).
        by: grouping columns (e.g. budget).
        method: column naming the method.
        baseline: the method every other is compared with.
        value: the measured column.
        pair: the column that pairs rows (the seed).

    Returns:
        Columns ``by + [method, "n_pairs", "diff_mean", "diff_sd", "ci_low", "ci_high",
        "excludes_zero"]``; the interval is NaN, and ``excludes_zero`` False, when n < 2.
    """
    dup = df[df.duplicated(subset=[*by, method, pair], keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ValueError(f"paired_differences: {len(dup)} rows share (group, {method}, {pair}); "
                         f"e.g. {method}={_plain(first[method])!r}, "
                         f"{pair}={_plain(first[pair])!r}"
                         + "".join(f", {k}={_plain(first[k])!r}" for k in by)
                         + ": one value per pair is needed; drop or tell the duplicates apart")
    rows = []
    for keys, group in df.groupby(by, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        wide = group.pivot_table(index=pair, columns=method, values=value, aggfunc="first")
        if baseline not in wide:
            continue
        for m in [c for c in wide.columns if c != baseline]:
            rows.append({**dict(zip(by, keys)), method: m,
                         **interval_row((wide[m] - wide[baseline]).dropna())})
    cols = by + [method, "n_pairs", "diff_mean", "diff_sd", "ci_low", "ci_high", "excludes_zero"]
    return pd.DataFrame(rows, columns=cols)


def _plain(value):
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if hasattr(value, "item") else value


def format_mean_sd(values, digits: int = 2) -> str:
    """``mean ± sd`` (``mean`` alone when n = 1)."""
    mean, sd, _, n = mean_ci(values)
    return mean_sd_text(mean, sd, n, digits)


def mean_sd_text(mean: float, sd: float, n: int, digits: int = 2) -> str:
    """:func:`format_mean_sd` from a summary's mean, sd and n: no sd at n = 1, "—" at n = 0."""
    if n == 0:
        return "—"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def format_diff(row, digits: int = 2) -> str:
    """``+1.23 [0.10, 2.36]*`` for one row of :func:`paired_differences`: the mean paired
    difference, its 95% interval, and ``*`` when the interval excludes zero."""
    if row["n_pairs"] == 0:
        return "—"
    if row["n_pairs"] < 2:
        return f"{row['diff_mean']:+.{digits}f} (n=1, no interval)"
    star = "*" if row["excludes_zero"] else ""
    return (f"{row['diff_mean']:+.{digits}f} [{row['ci_low']:+.{digits}f}, "
            f"{row['ci_high']:+.{digits}f}]{star}")


def format_mean_ci(values, digits: int = 2) -> str:
    """``+1.23 [0.10, 2.36]*``: the mean of ``values`` (one per seed) with its 95% t interval,
    ``*`` when it excludes zero; the mean alone when n = 1 (as :func:`format_diff`)."""
    return format_diff(interval_row(values), digits)


# -- agreement between two selections ---------------------------------------------------------

def jaccard(a, b) -> float:
    """|A ∩ B| / |A ∪ B| of two index sets; 1.0 when both are empty."""
    a, b = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    return len(a & b) / len(a | b) if a | b else 1.0


def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of ``x``, ties sharing the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties get the
    mean rank); NaN when either side is constant or has fewer than 2 values."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x, y: need two 1-d arrays of one length, got {x.shape} and {y.shape}")
    rx, ry = average_ranks(x) if len(x) else x, average_ranks(y) if len(y) else y
    if len(x) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum()))
