"""Where a batch's time went: wall-clock of a ``prunefuse reproduce`` folder, and the seconds
its run records charged, by ledger category and by method.

    python benchmarks/grid_time.py runs/cpu
    python benchmarks/grid_time.py records/cpu --profile cpu [--extended] [--slots 2]

Reads only records (``plan.json``, ``runs/*/ledger.json``, ``config.json``, ``log.txt``,
``DONE``); nothing is timed here. The wall-clock is from the batch's first run start (its
``config.json``, written once when the run starts) to its last ``DONE``; a batch that ran in
several sittings (or whose records were copied) has no such span, so the seconds every
attempt of every run took, from each run's ``log.txt``, are summed as well. Seconds charged per
run cover training, scoring and evaluation; what is left of run time is process start, data
loading, MAC counting and notebook overhead.

With ``--profile``, the folder holds run records (a committed ``records/`` folder or a batch's
``runs/``), the planned runs are the profile's default grid (``--extended``: every artefact),
and the grid's hours are estimated from the records as the median of each run's last attempt
times the planned runs, divided by ``--slots`` runs at once: what the grid takes on the
machines its records ran on, read from their logs, not timed here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
from pathlib import Path

from prunefuse.flops import CATEGORIES
from prunefuse.runs import BATCH_RUNS, CONFIG, LOG, PLAN, find_runs, method_label

ATTEMPT = re.compile(r"^== (?:exit status|killed by) .* after ([0-9.]+) s$", re.M)


def _done_time(run: dict) -> dt.datetime:
    return dt.datetime.strptime(run["finished"], "%Y-%m-%dT%H:%M:%S%z")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", help="a reproduce output folder (holds plan.json and runs/); "
                    "with --profile, a folder of run records")
    ap.add_argument("--profile", help="plan the profile's grid instead of reading plan.json")
    ap.add_argument("--extended", action="store_true", help="with --profile: every artefact")
    ap.add_argument("--slots", type=int, default=2, help="runs at once, for the estimate")
    args = ap.parse_args()
    batch = Path(args.batch)
    if args.profile:
        from prunefuse.grid import default_artefacts
        from prunefuse.grid import plan as plan_grid

        planned = {r.run_id for r in plan_grid(args.profile, artefacts=default_artefacts(
            args.profile, extended=args.extended)).runs}
        records = batch
    else:
        if not (batch / PLAN).exists():
            ap.error(f"{batch}: no {PLAN}, so not a reproduce output folder; for a folder of run "
                     "records, pass --profile PROFILE (and --extended) to plan its grid")
        planned = {r["run_id"] for r in json.loads((batch / PLAN).read_text())["runs"]}
        records = batch / BATCH_RUNS
    runs = [r for r in find_runs(records) if r["run_id"] in planned]
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
    logs = [ATTEMPT.findall(p.read_text()) if (p := Path(r["path"], LOG)).exists() else []
            for r in runs]
    attempts = [float(t) for log in logs for t in log]
    print(f"run time from the runs' logs: {len(attempts)} attempts of {len(runs)} runs, "
          f"{sum(attempts) / 3600:.2f} h summed (each run's process, notebook included; "
          "divide by the runs at once for the wall-clock of one sitting)")
    last = [float(log[-1]) for log in logs if log]
    if last:
        median = statistics.median(last)
        print(f"per run, last attempt: median {median:.0f} s over {len(last)} runs; the "
              f"{len(planned)} planned runs at {args.slots} at once: about "
              f"{len(planned) * median / args.slots / 3600:.1f} h")
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
