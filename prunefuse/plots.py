"""Figures from run records (never from training): one publication style, PDF + PNG, units on
every axis, mean and spread over seeds with n stated."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 1.1}


def setup_style() -> None:
    """Apply the package's one plotting style."""
    sns.set_theme(**STYLE)
    plt.rcParams.update({"figure.dpi": 120, "savefig.bbox": "tight", "pdf.fonttype": 42})


def save(fig, path: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``path.pdf`` (vector) and ``path.png``; returns both paths."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = [base.with_suffix(".pdf"), base.with_suffix(".png")]
    for p in out:
        fig.savefig(p, dpi=200)
    plt.close(fig)
    return out


def plot_accuracy_and_cost(table, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Left: target test accuracy vs labeled budget per method (mean +- std over seeds).
    Right: cumulative selection cost in GMACs at the last budget, per method."""
    setup_style()
    df = table.copy()
    df["budget_pct"] = 100 * df["budget"]
    df["acc_pct"] = 100 * df["final_test_acc"]
    n = int(df.groupby(["method", "budget"])["seed"].nunique().min())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.lineplot(data=df, x="budget_pct", y="acc_pct", hue="method", marker="o",
                 errorbar="sd", ax=ax1)
    ax1.set(xlabel="labeled set (% of pool)", ylabel="target test accuracy (%)",
            title=f"accuracy (mean ± sd, n={n} seed{'s' if n != 1 else ''})")
    last = df[df["budget"] == df["budget"].max()].copy()
    last["gmacs"] = last["selection_macs"] / 1e9
    sns.barplot(data=last, x="gmacs", y="method", errorbar="sd", ax=ax2, color="C0")
    ax2.set(xlabel="total selection cost (GMACs)", ylabel="",
            title=f"selection cost at {last['budget_pct'].iloc[0]:g}% of pool")
    if title:
        fig.suptitle(title)
    return save(fig, path)
