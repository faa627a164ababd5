"""The main job, ``prunefuse demo``: PruneFuse against dense AL, SVP and random selection
under the ``demo`` profile, one seed, with its summary table, figure and caption."""

from __future__ import annotations

import time
from pathlib import Path

from ..run.config import make_config, run_id
from ..run.records import DEMO_OUT, pf_label, svp_label

DEMO_METHODS = [
    {"selector": "prunefuse", "ratio": 0.5},
    {"selector": "dense"},
    {"selector": "svp"},
    {"selector": "random"},
]


def run_demo(out: str | Path = DEMO_OUT, *, progress: bool = True, **overrides) -> dict:
    """The main job: PruneFuse (p=0.5, fusion + KD) vs dense AL, SVP and random selection on
    the embedded default (Fashion-MNIST, ResNet-20, CPU-sized ``demo`` profile).

    Returns a dict with the run folders, the results table and the files written.
    """
    from ..analysis.plots import plot_accuracy_and_cost
    from ..run.experiment import preflight, run_experiment
    from ..run.records import (
        SUMMARY_CSV,
        SUMMARY_MD,
        atomic_write_text,
        results_table,
        summarize,
        summary_markdown,
    )

    out = Path(out)
    configs = [make_config("demo", **{**m, **overrides}) for m in DEMO_METHODS]
    for i, cfg in enumerate(configs):  # every error before the first run; the data once
        preflight(cfg, data=i == 0)
    started = time.perf_counter()
    dirs = []
    for i, cfg in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {run_id(cfg)}", flush=True)
        start = time.perf_counter()
        dirs.append(run_experiment(cfg, out=out, progress=progress))
        print(f"      done in {time.perf_counter() - start:.0f} s", flush=True)
    table = results_table(out)
    table = table[table["run_id"].isin([d.name for d in dirs])]
    summary = summarize(table)
    md = summary_markdown(summary)
    atomic_write_text(out / SUMMARY_MD, md + "\n")
    atomic_write_text(out / SUMMARY_CSV, summary.to_csv(index=False))
    figure = plot_accuracy_and_cost(table, out / "demo",
                                    title=f"{configs[0]['dataset']}, target {configs[0]['arch']}")
    atomic_write_text(out / "demo.caption.md", demo_caption(
        configs[0], table, time.perf_counter() - started))
    print(md)
    print(f"records: {out}/  figure: {figure[1]}")
    return {"runs": dirs, "table": table, "summary": summary, "figure": figure}


def demo_caption(cfg: dict, table, seconds: float) -> str:
    """What the demo figure shows and what its n can support."""
    from ..analysis.registry import _hardware
    from ..flops import TRAIN_FACTOR

    n = int(table.groupby("method")["seed"].nunique().min()) if not table.empty else 0
    budgets = ", ".join(f"{100 * b:g}%" for b in cfg["budgets"])
    return "\n".join([
        "# prunefuse demo: a one-seed cut of the CPU study", "",
        f"Profile `demo`: {cfg['dataset']} ({cfg['max_train']}-image pool, {cfg['max_test']} "
        f"test images), target {cfg['arch']}, {100 * cfg['initial_fraction']:g}% random initial "
        f"labels, budgets {budgets} of the pool, {cfg['target_epochs']} target and "
        f"{cfg['selector_epochs']} selector epochs (batch {cfg['batch_size']}, "
        f"{cfg['schedule']}, {cfg['cpu_precision']} on the CPU), score {cfg['score']}. "
        f"{pf_label(cfg['ratio'])} (fusion + KD) vs dense AL, {svp_label(cfg['proxy_arch'])} "
        "and random selection.",
        f"Seeds: n={n}. At this n no difference between methods is evidence: the demo is "
        "too small to decide one. The evidence is the CPU study "
        "(`prunefuse reproduce --profile cpu`, figures/cpu in the repository).",
        "Left: final-epoch target test accuracy (%). Right: selection cost (GMACs) at the "
        "largest budget: the selectors trained on the earlier labeled sets and their pool "
        f"passes (fvcore MACs, {TRAIN_FACTOR} per training image-epoch).",
        f"Hardware: {_hardware(table)}. This call took {seconds:.0f} s wall-clock (runs "
        f"already finished are not recomputed); built {time.strftime('%Y-%m-%d')}.", ""])
