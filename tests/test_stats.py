"""Paired statistics over seeds: exact answers on tiny tables."""

import math

import pandas as pd
import pytest

from prunefuse import stats


def test_t_quantiles():
    assert stats.t975(1) == 12.706 and stats.t975(4) == 2.776 and stats.t975(30) == 2.042
    assert stats.t975(200) == pytest.approx(1.9719, abs=1e-4)  # exact: 1.97190
    with pytest.raises(ValueError, match="df=0"):
        stats.t975(0)


def test_mean_ci_closed_form():
    mean, sd, half, n = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (mean, n) == (3.0, 5)
    assert sd == pytest.approx(math.sqrt(2.5))
    assert half == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert stats.ci_interval([7.0]) == (7.0, 7.0)  # n = 1: no interval, not a fake one
    assert math.isnan(stats.mean_ci([7.0])[1])


def test_paired_differences_pair_by_seed():
    # Method B is A + 1 +- 0.1 seed by seed: the paired interval is tight although the
    # unpaired spread over seeds is huge.
    a = [10.0, 50.0, 90.0]
    b = [11.1, 50.9, 91.0]
    df = pd.DataFrame({"budget": 0.1, "method": ["A"] * 3 + ["B"] * 3, "seed": [0, 1, 2] * 2,
                       "acc_pct": a + b})
    out = stats.paired_differences(df, by=["budget"], method="method", baseline="A")
    row = out.iloc[0]
    d = [1.1, 0.9, 1.0]
    sd = pd.Series(d).std()
    assert row["method"] == "B" and row["n_pairs"] == 3
    assert row["diff_mean"] == pytest.approx(1.0) and row["diff_sd"] == pytest.approx(sd)
    assert row["ci_low"] == pytest.approx(1.0 - 4.303 * sd / math.sqrt(3))
    assert row["excludes_zero"]
    assert stats.format_diff(row).endswith("]*")


def test_paired_differences_use_only_common_seeds():
    df = pd.DataFrame({"budget": 0.1, "method": ["A", "A", "B"], "seed": [0, 1, 1],
                       "acc_pct": [1.0, 2.0, 5.0]})
    row = stats.paired_differences(df, by=["budget"], method="method", baseline="A").iloc[0]
    assert row["n_pairs"] == 1 and row["diff_mean"] == 3.0 and not row["excludes_zero"]
    assert "no interval" in stats.format_diff(row)


def test_mean_with_its_interval_over_seeds():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484
    assert stats.format_mean_ci(pd.Series([1.0, 2.0, 3.0])) == "+2.00 [-0.48, +4.48]"
    assert stats.format_mean_ci(pd.Series([0.9, 1.0, 1.1])).endswith("]*")  # excludes zero
    assert stats.format_mean_ci(pd.Series([0.5, float("nan")])) == "+0.50 (n=1, no interval)"
    assert stats.format_mean_ci(pd.Series([], dtype=float)) == "—"


@pytest.mark.parametrize("df,exact", [(31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799),
                                      (1000, 1.9623)])
def test_t_quantile_beyond_the_table(df, exact):
    from prunefuse.stats import t975

    assert t975(df) == pytest.approx(exact, abs=1e-4)


def test_duplicate_method_seed_rows_are_an_error_naming_them():
    import pandas as pd

    from prunefuse.stats import paired_differences

    df = pd.DataFrame({"budget": [0.3] * 3, "method": ["A", "B", "B"], "seed": [0, 0, 0],
                       "acc_pct": [80.0, 81.0, 82.0]})
    with pytest.raises(ValueError, match="method='B', seed=0, budget=0.3"):
        paired_differences(df, by=["budget"], method="method", baseline="A")


def test_mean_sd_text_drops_the_sd_at_one_seed_like_format_mean_sd():
    assert stats.mean_sd_text(81.234, 0.0, 1) == "81.23"
    assert stats.mean_sd_text(81.234, 1.5, 3) == "81.23 ± 1.50"
    assert stats.mean_sd_text(float("nan"), float("nan"), 0) == "—"
    assert stats.format_mean_sd([80.0, 82.0]) == stats.mean_sd_text(81.0, 2 ** 0.5, 2)
