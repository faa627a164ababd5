"""The demo figure: nothing written (legend, tick labels, titles) covers data."""

import pandas as pd
import pytest
from matplotlib.transforms import Bbox

from prunefuse.plots import accuracy_and_cost_figure, plot_accuracy_and_cost

# The demo's four methods at its two budgets, two seeds each so the lines carry bands.
ROWS = [(method, budget, seed, acc + 0.004 * seed, macs)
        for method, accs, macs in [("dense AL", (0.711, 0.733), (4.8e11, 1.32e12)),
                                   ("PruneFuse p=0.5", (0.725, 0.693), (2.3e11, 6.2e11)),
                                   ("random", (0.713, 0.680), (0.0, 0.0)),
                                   ("SVP (resnet8)", (0.693, 0.683), (1.5e11, 4.1e11))]
        for budget, acc, macs in [(0.1, accs[0], macs[0]), (0.2, accs[1], macs[1])]
        for seed in (0, 1)]
TABLE = pd.DataFrame(ROWS, columns=["method", "budget", "seed", "final_test_acc",
                                    "selection_macs"])


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("n_methods", [None, 1, 6])
def test_demo_figure_writes_nothing_over_data(n_methods):
    table = TABLE
    if n_methods is not None:
        table = pd.DataFrame([(f"a longer method name {m}", b, 0, 0.5 + 0.01 * m, 1e9 * m)
                              for m in range(n_methods) for b in (0.1, 0.2)],
                             columns=TABLE.columns)
    fig = accuracy_and_cost_figure(table, title="fashion-mnist, target resnet20")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax1, ax2 = fig.axes
    boxes = {"legend": ax1.get_legend().get_window_extent(r),
             "suptitle": fig._suptitle.get_window_extent(r)}
    for i, ax in enumerate((ax1, ax2)):
        boxes[f"title{i}"] = ax.title.get_window_extent(r)
        boxes[f"xlabel{i}"] = ax.xaxis.label.get_window_extent(r)
        for j, t in enumerate(ax.get_yticklabels() + ax.get_xticklabels()):
            if t.get_text():
                boxes[f"tick{i}.{j}"] = t.get_window_extent(r)
    for name, box in boxes.items():  # every label lies outside both plotting areas
        for ax in (ax1, ax2):
            assert not _overlap(box, ax.get_window_extent(r)), (name, ax.get_title())


def test_demo_figure_is_saved(tmp_path):
    paths = plot_accuracy_and_cost(TABLE, tmp_path / "demo")
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert paths[1].read_bytes().startswith(b"\x89PNG")


def _curves(seeds):
    return pd.DataFrame([{"ratio": 0.5, "variant": v, "epoch": e, "seed": s,
                          "acc_pct": 50.0 + 10 * e + 3 * s + (5 if v == "scratch" else 0)}
                         for v in ("scratch", "fused + KD (PruneFuse)") for e in (1, 2, 3)
                         for s in seeds])


@pytest.mark.parametrize("seeds", [[0], [0, 1], [0, 1, 2], list(range(8))])
def test_epoch_curves_say_what_they_draw_at_their_n(tmp_path, monkeypatch, seeds):
    """One seed: no interval in the title; at small n every seed is drawn as a thin line
    beside the mean; no band below 3 seeds (at 2 a 95% t band is +-12.7 sd); the bands never
    leave [0, 100]."""
    import matplotlib.pyplot as plt

    from prunefuse import plots

    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig))
    df = _curves(seeds)
    df.loc[df["seed"] == 0, "acc_pct"] = 99.5  # a wide interval near the top
    plots.plot_epoch_curves(df, tmp_path / "f4", title="T")
    (fig,) = drawn
    title = fig._suptitle.get_text()
    if len(seeds) == 1:
        assert title == "T (one seed, no interval)"
    else:
        assert f"n={len(seeds)} seeds" in title and "95% CI band" in title
    (ax,) = fig.axes
    thin = [ln for ln in ax.lines if ln.get_linewidth() < 1 and len(ln.get_xdata())]
    assert len(thin) == (2 * len(seeds) if 1 < len(seeds) <= plots.SEED_LINES else 0)
    for band in ax.collections:
        for path in band.get_paths():
            assert path.vertices[:, 1].max() <= 100 + 1e-9
    assert bool(ax.collections) == (len(seeds) >= plots.MIN_BAND)
    plt.close(fig)


def test_captions_do_not_promise_an_sd_at_one_seed():
    from prunefuse.plots import over_seeds

    assert over_seeds("n=1 seed") == "one seed, no sd"
    assert over_seeds("n=3 seeds") == "mean ± sd over seeds (n=3 seeds)"


def test_selector_size_legend_has_a_mark_for_every_entry(monkeypatch):
    """With one target every point is its, so the target goes into the title, not into a
    legend entry that matches no mark; with two, each target has its own marker."""
    import pandas as pd

    from prunefuse import plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or [])
    rows = [{"family": f, "selector": s, "target": t, "selector_mparams": m, "acc_pct": a,
             "seed": seed}
            for f, s, m in (("PruneFuse", "p=0.5", 0.07), ("SVP", "resnet8", 0.08))
            for t in ("resnet20", "resnet14") for seed, a in enumerate((86.0, 87.0))]
    plots.plot_selector_size(pd.DataFrame(rows).query("target == 'resnet20'"), "x", title="t")
    plots.plot_selector_size(pd.DataFrame(rows), "x", title="t")
    one, two = ([t.get_text() for t in f.axes[0].get_legend().get_texts()] for f in figures)
    assert one == ["PruneFuse", "SVP"] and "target resnet20" in figures[0].axes[0].get_title()
    assert two == ["PruneFuse", "SVP", "target resnet14", "target resnet20"]


def test_ablation_draws_the_paired_seeds_side_by_side(monkeypatch):
    """At one ratio the variants' error bars sit at distinct x, not on top of each other; a
    variant with extra seeds (PruneFuse's main runs) is drawn on the seeds every variant has,
    the pairs of the table's differences; no bar leaves [0, 100]."""
    from prunefuse import plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or [])
    rows = [{"ratio": 0.5, "variant": v, "seed": s, "acc_pct": a + s}
            for v, a in (("scratch", 88.0), ("fused, no KD", 88.5)) for s in range(3)]
    rows += [{"ratio": 0.5, "variant": "fused + KD (PruneFuse)", "seed": s,
              "acc_pct": 97.0 + s if s < 3 else 10.0} for s in range(15)]
    plots.plot_ablation(pd.DataFrame(rows), "x", title="t")
    (fig,) = figures
    ax = fig.axes[0]
    means = [line.get_xydata()[0] for line in ax.lines if line.get_marker() not in ("", "_")]
    assert len(means) == 3 and len({round(x, 6) for x, _ in means}) == 3
    assert max(y for _, y in means) == pytest.approx(98.0)  # the 3 paired seeds, not 15
    from matplotlib.collections import PathCollection

    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in dots) == [3, 3, 3]  # each seed, paired only
    for c in ax.collections:
        for seg in getattr(c, "get_segments", lambda: [])():
            assert seg[:, 1].max() <= 100 + 1e-9
    assert "n=3 seeds" in ax.get_title()


@pytest.mark.parametrize("seeds, text", [([5, 0, 1, 2], "0-2, 5"), ([1], "1"), ([], ""),
                                         ([4, 3, 1], "1, 3-4"), ([0, 2, 4], "0, 2, 4")])
def test_seed_list_writes_runs_of_seeds(seeds, text):
    from prunefuse.plots import seed_list

    assert seed_list(seeds) == text


def test_pdf_bytes_do_not_depend_on_when_they_were_written(tmp_path):
    """A rebuild from the same records leaves committed PDFs as they were (no creation date)."""
    import time

    from prunefuse.plots import plot_accuracy_and_cost

    first = plot_accuracy_and_cost(TABLE, tmp_path / "a" / "demo")
    time.sleep(1.1)
    second = plot_accuracy_and_cost(TABLE, tmp_path / "b" / "demo")
    pdfs = [next(p for p in paths if p.suffix == ".pdf") for paths in (first, second)]
    assert pdfs[0].read_bytes() == pdfs[1].read_bytes()
