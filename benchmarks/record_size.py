"""What recording the pool scores adds to a run record: ``selections/round_NN.scores.npz``
(float16 scores, one per pool image, and int32 pick positions, deflated) per round.

Two runs: a CPU-study run (``cpu`` profile: 4,000-image pool, 100 initial labels, 3 rounds to
30%) and a paper-profile run (CIFAR-10: 50,000-image pool, 2% initial, 5 rounds to 50%). The
CPU figures come from real finished records under ``--records`` where there are any (mean
over those runs; selectors that score the pool only), else from the format, like the paper
figures: the file stored uncompressed, an upper bound that deflate lowers somewhat. KB and MB
are 10^3 and 10^6 bytes.

    python benchmarks/record_size.py --records /path/to/study/runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import add_common_args, setup, table

from prunefuse.config import make_config
from prunefuse.explore import score_record_bytes, score_record_layout
from prunefuse.runs import DEFAULT_OUT, find_runs

PAPER_POOL = 50_000  # CIFAR-10 training images


def real_cpu_records(records: Path) -> list:
    """Per finished CPU-profile run under ``records`` that recorded scores: its sizes table."""
    cpu = make_config("cpu")
    keys = ("dataset", "max_train", "initial_fraction", "budgets")
    out = []
    for run in find_runs(records) if records.exists() else []:
        if all(run["config"][k] == cpu[k] for k in keys):
            sizes = score_record_bytes(run)
            if len(sizes) == len(cpu["budgets"]):
                out.append(sizes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, default=Path(DEFAULT_OUT),
                    help="folder searched (recursively) for finished CPU-study run records")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    rows = []
    cpu = make_config("cpu")
    real = real_cpu_records(args.records)
    layout = score_record_layout(cpu["max_train"], cpu["initial_fraction"], cpu["budgets"])
    if real:
        per_round = sum(r["bytes"].to_numpy() for r in real) / len(real)
        rest = sum(float(r["record_bytes"].iloc[0]) for r in real) / len(real)
        source = f"real files, mean of {len(real)} runs"
    else:
        per_round, rest, source = layout["bound_bytes"].to_numpy(), None, "format, uncompressed"
    for (_, lay), b in zip(layout.iterrows(), per_round):
        rows.append({"profile": "cpu", "round": int(lay["round"]), "pool images scored":
                     int(lay["pool"]), "picks": int(lay["picks"]), "KB": b / 1e3, "from": source})
    cpu_total = float(sum(per_round))
    paper = make_config("paper")
    layout = score_record_layout(PAPER_POOL, paper["initial_fraction"], paper["budgets"])
    for lay in layout.itertuples():
        rows.append({"profile": "paper", "round": lay.round, "pool images scored": lay.pool,
                     "picks": lay.picks, "KB": lay.bound_bytes / 1e3,
                     "from": "format, uncompressed"})
    paper_total = float(layout["bound_bytes"].sum())
    print(table(rows, [("profile", ""), ("round", "d"), ("pool images scored", "d"),
                       ("picks", "d"), ("KB", ".1f"), ("from", "")]))
    if rest is not None:
        print(f"\nCPU runs: scores are {cpu_total / 1e3:.1f} KB of a {rest / 1e3:.1f} KB record "
              "(run folder without the trained-selector cache)")
    print(f"HEADLINE score records add {cpu_total / 1e3:.1f} KB per CPU-study run "
          f"(3 rounds, {source}) and {paper_total / 1e6:.2f} MB per paper-profile run "
          "(5 rounds, format, uncompressed bound)")


if __name__ == "__main__":
    main()
