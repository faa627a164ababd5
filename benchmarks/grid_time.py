"""Where a batch's time went: wall-clock of a ``prunefuse reproduce`` folder, and the seconds
its run records charged, by ledger category and by method.

    python benchmarks/grid_time.py runs/cpu

Reads only records (``plan.json``, ``runs/*/ledger.json``, ``config.json``, ``log.txt``,
``DONE``); nothing is timed here. The wall-clock is from the batch's first run start (its
``config.json``, written once when the run starts) to its last ``DONE``; a batch that ran in
several sittings (or whose records were copied) has no such span, so the seconds every
attempt of every run took, from each run's ``log.txt``, are summed as well. Seconds charged per
run cover training, scoring and evaluation; what is left of run time is process start, data
loading, MAC counting and notebook overhead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

from prunefuse.flops import CATEGORIES
from prunefuse.runs import BATCH_RUNS, CONFIG, LOG, PLAN, find_runs, method_label

ATTEMPT = re.compile(r"^== (?:exit status|killed by) .* after ([0-9.]+) s$", re.M)


def _done_time(run: dict) -> dt.datetime:
    return dt.datetime.strptime(run["finished"], "%Y-%m-%dT%H:%M:%S%z")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", help="a reproduce output folder (holds plan.json and runs/)")
    args = ap.parse_args()
    batch = Path(args.batch)
    plan = json.loads((batch / PLAN).read_text())
    planned = {r["run_id"] for r in plan["runs"]}
    runs = [r for r in find_runs(batch / BATCH_RUNS) if r["run_id"] in planned]
    print(f"batch {batch}: {len(runs)} of {len(planned)} planned runs finished")
    if not runs:
        return
    # config.json is written once, when a run starts (log.txt changes with every attempt).
    begun = [dt.datetime.fromtimestamp(Path(r["path"], CONFIG).stat().st_mtime,
                                       tz=dt.timezone.utc) for r in runs]
    done = [_done_time(r) for r in runs]
    if all(b <= d for b, d in zip(begun, done)):
        span = (max(done) - min(begun)).total_seconds()
        print(f"wall-clock, first run start to last DONE: {span / 60:.1f} min (an upper bound if the "
              "batch was interrupted and resumed)")
    else:
        print("wall-clock: not measurable, some runs' config.json is newer than their DONE (the "
              "records were copied here)")
    logs = [Path(r["path"], LOG) for r in runs]
    attempts = [float(t) for log in logs if log.exists() for t in ATTEMPT.findall(log.read_text())]
    print(f"run time from the runs' logs: {len(attempts)} attempts of {len(runs)} runs, "
          f"{sum(attempts) / 3600:.2f} h summed (each run's process, notebook included; "
          "divide by the runs at once for the wall-clock of one sitting)")
    by_cat = dict.fromkeys(CATEGORIES, 0.0)
    by_method: dict[str, float] = {}
    for r in runs:
        secs = r["ledger"]["seconds"]
        for c in CATEGORIES:
            by_cat[c] += secs.get(c, 0.0)
        label = method_label(r["config"]) + (" (reused selection)" if r["config"].get(
            "selection_from") else "")
        by_method[label] = by_method.get(label, 0.0) + sum(secs.values())
    total = sum(by_cat.values())
    print(f"seconds charged by the runs' ledgers: {total:.0f} s (summed over runs; with "
          "several runs at once this exceeds the wall-clock)")
    for c, s in by_cat.items():
        print(f"  {c:<18} {s:8.0f} s  {100 * s / max(total, 1e-9):5.1f}%")
    print("by method:")
    for m, s in sorted(by_method.items(), key=lambda kv: -kv[1]):
        print(f"  {m:<40} {s:8.0f} s")
    print(f"HEADLINE grid: {len(runs)} runs, {total:.0f} s charged")


if __name__ == "__main__":
    main()
