"""The demo figure: nothing written (legend, tick labels, titles) covers data."""

import pandas as pd
import pytest
from matplotlib.transforms import Bbox

from prunefuse.plots import accuracy_and_cost_figure, plot_accuracy_and_cost

# The demo's four methods at its two budgets, two seeds each so the lines carry bands.
ROWS = [(method, budget, seed, acc + 0.004 * seed, macs)
        for method, accs, macs in [("Dense AL", (0.711, 0.733), (4.8e11, 1.32e12)),
                                   ("PruneFuse p=0.5", (0.725, 0.693), (2.3e11, 6.2e11)),
                                   ("Random", (0.713, 0.680), (0.0, 0.0)),
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
