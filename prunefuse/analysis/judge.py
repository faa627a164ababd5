"""How a claim is judged: its hypothesis, margin and verdict, per row and family-wise.

A claim states a direction (``higher``: the arm's value is larger than the comparator's)
and one of three hypotheses about the paired statistic (a difference, null 0, or a ratio,
null 1):

- **superiority**: the statistic lies beyond the null in the claimed direction;
- **non-inferiority at margin m**: it is no worse than the null by more than m (for
  ``higher``: statistic > null - m), the right test for "matches", "at least as well",
  "level" and "no slower";
- **equivalence within +-m**: it lies within null +- m (two one-sided tests).

Each is a one-sided test at alpha = 0.025, which is the same as asking where the two-sided
95% t interval lies: **supported** when it lies entirely in the claimed region, **not
supported** when it lies entirely outside it (for superiority and non-inferiority: beyond
the bound on the other side; for equivalence: entirely outside +-m), else **undecided at
this n**. Beside each verdict, :func:`holm` gives the family-wise one (Holm's step-down over
every row of one batch's claims), so that the chance of any false "supported" among them
stays at 2.5%.
"""

from __future__ import annotations

import math

VERDICTS = ("supported", "not supported", "undecided at this n")
HYPOTHESES = ("superiority", "noninferiority", "equivalence")
ALPHA = 0.025  # one-sided, the complement of a two-sided 95% interval


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def p_value(mean: float, sd: float, n: int, *, hypothesis: str, null: float, margin: float,
            higher: bool) -> float:
    """One-sided p-value of the claim (its null hypothesis: the claim is false); NaN when
    n < 2 or the values do not vary and sit on the bound."""
    if n < 2 or any(math.isnan(v) for v in (mean, sd)):
        return math.nan
    se = sd / math.sqrt(n)
    sign = 1.0 if higher else -1.0

    def beyond(bound: float, direction: float) -> float:  # H1: direction * (mean - bound) > 0
        if se == 0:
            return 0.0 if direction * (mean - bound) > 0 else 1.0
        return t_sf(direction * (mean - bound) / se, n - 1)

    if hypothesis == "superiority":
        return beyond(null, sign)
    if hypothesis == "noninferiority":
        return beyond(null - sign * margin, sign)
    if hypothesis == "equivalence":
        return max(beyond(null - margin, 1.0), beyond(null + margin, -1.0))
    raise ValueError(f"hypothesis={hypothesis!r}: one of {HYPOTHESES}")


def verdict(low: float, high: float, *, hypothesis: str = "superiority", null: float = 0.0,
            margin: float = 0.0, higher: bool = True) -> str:
    """The verdict of a claim from its 95% interval ``[low, high]`` (see the module doc)."""
    if any(math.isnan(v) for v in (low, high)):
        return VERDICTS[2]
    if hypothesis == "equivalence":
        if null - margin < low and high < null + margin:
            return VERDICTS[0]
        if high < null - margin or low > null + margin:
            return VERDICTS[1]
        return VERDICTS[2]
    if hypothesis not in HYPOTHESES:
        raise ValueError(f"hypothesis={hypothesis!r}: one of {HYPOTHESES}")
    bound = null if hypothesis == "superiority" else null - margin if higher else null + margin
    if (higher and low > bound) or (not higher and high < bound):
        return VERDICTS[0]
    if (higher and high < bound) or (not higher and low > bound):
        return VERDICTS[1]
    return VERDICTS[2]


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down: which claims stay supported family-wise at ``alpha``.

    Args:
        p_values: one-sided p-values (NaN: not testable, never rejected).
    Returns:
        For each, whether its null is rejected with the family-wise error kept at ``alpha``.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m, out = len(order), [False] * len(p_values)
    for k, (p, i) in enumerate(order):
        if p > alpha / (m - k):
            break
        out[i] = True
    return out


def family_verdicts(p_values: list[float], verdicts: list[str],
                    alpha: float = ALPHA) -> list[str]:
    """Each claim's family-wise verdict: ``supported`` when it is supported and Holm keeps
    it (:func:`holm`), ``not supported`` when its interval lies outside the claimed region,
    else ``not shown``."""
    return ["supported" if k and v == VERDICTS[0] else
            "not supported" if v == VERDICTS[1] else "not shown"
            for k, v in zip(holm(p_values, alpha), verdicts)]


def hypothesis_text(hypothesis: str, *, margin: float, unit: str, higher: bool,
                    statistic: str = "difference") -> str:
    """How a hypothesis reads in a table: ``superiority``, ``non-inferiority, margin 1
    point``, ``equivalence within +-0.05``."""
    unit = {"points": " point" if margin == 1 else " points"}.get(unit, f" {unit}" if unit else "")
    if statistic == "ratio":
        unit = ""
    if hypothesis == "superiority":
        return "superiority" + ("" if higher else " (lower is better)")
    if hypothesis == "noninferiority":
        return f"non-inferiority, margin {margin:g}{unit}" + ("" if higher else " (lower is better)")
    return f"equivalence within ±{margin:g}{unit}"


__all__ = ["VERDICTS", "HYPOTHESES", "ALPHA", "t_sf", "p_value", "verdict", "holm",
           "family_verdicts",
           "hypothesis_text"]
