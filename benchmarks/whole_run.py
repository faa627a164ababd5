"""A whole PruneFuse run against dense AL with the same settings, in one invocation: the
seconds of each, split by the ledger's categories, and their ratio.

Both runs are real ``prunefuse run``s (:func:`prunefuse.experiment.run_experiment`) of one
profile and seed, into a fresh temporary folder, one after the other in this process; only
``selector`` differs (and with it PruneFuse's fused init and KD teacher, its defaults). A
whole run is what it takes to reach the target at every budget: selection (selector training
and pool scoring), PruneFuse's fusion source (its selector on the last labeled set) and
teacher forwards, target training, and test evaluation. The KD teacher's forwards run inside
target training but are timed on their own: their seconds and MACs are ``teacher_forward``'s.
With ``--repeats`` above 1 the order of the two runs alternates from
pair to pair, and the median is kept.

    python benchmarks/whole_run.py                                 # demo profile, seed 0
    python benchmarks/whole_run.py --profile cpu --threads 1 seed=1
    python benchmarks/whole_run.py compile=true                    # any run parameter

Goal: the PruneFuse run no slower than dense AL (ratio PruneFuse / dense <= 1.00).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings

from _common import add_common_args, setup, table, timed

from prunefuse.config import ConfigError, make_config, parse_override
from prunefuse.experiment import run_experiment
from prunefuse.flops import CATEGORIES, SELECTION, CostLedger
from prunefuse.runs import LEDGER

GOAL = 1.0  # PruneFuse whole-run seconds / dense AL's


def one_run(profile: str, selector: str, overrides: dict, out: str, dev) -> dict:
    """Wall seconds, ledger seconds per category and total MACs of one fresh run."""
    done = {}

    def job():
        done["dir"] = run_experiment(out=out, profile=profile, progress=False,
                                     selector=selector, **overrides)

    wall, _, load = timed(job, dev)
    ledger = CostLedger.from_dict(json.loads((done["dir"] / LEDGER).read_text()))
    row = {"wall s": wall, "ledger s": sum(ledger.seconds.values()),
           "TMACs": sum(ledger.macs.values()) / 1e12, "load": load}
    row.update({f"{c} s": ledger.seconds[c] for c in CATEGORIES})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="demo", help="run profile (default: demo)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="pairs of runs; the order alternates, the median is kept")
    ap.add_argument("overrides", nargs="*", metavar="key=value",
                    help="run parameters for both runs (not selector)")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)
    warnings.simplefilter("ignore")
    try:
        overrides = dict(parse_override(o) for o in args.overrides)
        if "selector" in overrides:
            raise ConfigError("selector: set by this benchmark (dense, then prunefuse); "
                              "leave it out")
        if args.device:
            overrides["device"] = args.device
        for selector in ("dense", "prunefuse"):  # every bad parameter before any compute
            make_config(args.profile, selector=selector, **overrides)
    except (ConfigError, ValueError) as err:
        raise SystemExit(f"whole_run.py: {err}") from None
    runs: dict[str, list[dict]] = {"dense": [], "prunefuse": []}
    for rep in range(max(1, args.repeats)):
        order = ["dense", "prunefuse"] if rep % 2 == 0 else ["prunefuse", "dense"]
        for selector in order:
            with tempfile.TemporaryDirectory(prefix="whole_run_") as out:
                runs[selector].append(one_run(args.profile, selector, overrides, out, dev))
    rows = []
    for selector, rs in runs.items():
        row = {"method": "dense AL" if selector == "dense" else "PruneFuse"}
        for key in rs[0]:
            row[key] = statistics.median(r[key] for r in rs)
        row["selection s"] = sum(row[f"{c} s"] for c in SELECTION)
        rows.append(row)
    cols = [("method", ""), ("wall s", ".1f"), ("ledger s", ".1f"), ("selection s", ".1f")]
    cols += [(f"{c} s", ".1f") for c in CATEGORIES]
    cols += [("TMACs", ".2f"), ("load", ".1f")]
    params = " ".join(f"{k}={v}" for k, v in overrides.items())
    print(f"profile {args.profile} {params}; median of {max(1, args.repeats)} run(s) each, "
          "one after the other; s = seconds by ledger category (the KD teacher's forwards in "
          "teacher_forward); TMACs = all categories; load = other processes' CPU load (cores)")
    print(table(rows, cols))
    dense, pf = rows
    ratio = pf["wall s"] / dense["wall s"]
    print(f"HEADLINE whole run, PruneFuse / dense AL: {ratio:.2f}x wall "
          f"({pf['wall s']:.1f} s against {dense['wall s']:.1f} s; selection "
          f"{pf['selection s']:.1f} against {dense['selection s']:.1f} s, fusion source "
          f"{pf['fusion_source s']:.1f} s, teacher {pf['teacher_forward s']:.1f} s, target "
          f"training {pf['target_training s']:.1f} "
          f"against {dense['target_training s']:.1f} s); goal <= {GOAL:.2f}x: "
          f"{'MET' if ratio <= GOAL else 'NOT MET'}; foreign load "
          f"{max(pf['load'], dense['load']):.1f} cores")


if __name__ == "__main__":
    main()
