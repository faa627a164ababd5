"""Greedy k-centers at CIFAR scale: seconds and peak memory of
``prunefuse.kcenter.kcenter_greedy`` (docs/method.md, "Step 2: select").

Defaults are the SVP/PruneFuse CIFAR-10 worst case: a 50,000-image pool of 64-d
penultimate features (resnet56's width), 25,000 labeled images as initial centers, and a
budget of 5,000 picks. A naive implementation builds the labeled x pool distance matrix
(25,000 x 50,000 float64 = 10 GB); this script shows how far below that the package stays.

Memory on the CPU is the increase of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs just before the call; ru_maxrss where that is unavailable) over the
resident set before it; on CUDA it is torch.cuda.max_memory_allocated over the allocation
before. MB and GB are 10^6 and 10^9 bytes. Features are random Gaussians in float32, the
dtype ``score_pool`` returns.

    python benchmarks/kcenter_scale.py                                    # full size
    python benchmarks/kcenter_scale.py --pool 10000 --labeled 5000 --budget 1000
    python benchmarks/kcenter_scale.py --reference   # also the float64 rule, same picks?
"""

from __future__ import annotations

import argparse
import resource

import torch
from _common import add_common_args, setup, table, timed

from prunefuse.kcenter import _kcenter_float64, kcenter_greedy

GOAL_S = 5.0  # seconds, for the full-size defaults


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=50_000, help="unlabeled pool size")
    ap.add_argument("--labeled", type=int, default=25_000, help="labeled set (initial centers)")
    ap.add_argument("--dim", type=int, default=64, help="feature dimension")
    ap.add_argument("--budget", type=int, default=5_000, help="samples to pick")
    ap.add_argument("--seed", type=int, default=0, help="feature RNG seed")
    ap.add_argument("--reference", action="store_true",
                    help="also time the float64 rule it replaced, and check the picks agree")
    add_common_args(ap)
    args = ap.parse_args()
    dev = setup(args)

    g = torch.Generator().manual_seed(args.seed)
    pool = torch.randn(args.pool, args.dim, generator=g).to(dev)
    labeled = torch.randn(args.labeled, args.dim, generator=g).to(dev)
    inputs_mb = (pool.numel() + labeled.numel()) * pool.element_size() / 1e6

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        how = "torch.cuda.max_memory_allocated"
    else:
        rss0 = _status_kb("VmRSS")
        if rss0 is not None and reset_peak():
            how = "VmHWM after clear_refs"
        else:
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            how = "ru_maxrss (peak so far; an underestimate of the increase)"
    picked = []
    seconds, cpu, load = timed(lambda: picked.append(kcenter_greedy(pool, labeled, args.budget)), dev)
    if dev.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated(dev) - before) / 1e6
    else:
        peak = _status_kb("VmHWM") if how.startswith("VmHWM") else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = (peak - rss0) * 1024 / 1e6  # kB (KiB) to MB

    idx = picked[0]
    if len(idx) != args.budget or len(set(idx.tolist())) != args.budget:
        raise SystemExit(f"kcenter_greedy returned {len(idx)} indices, "
                         f"{len(set(idx.tolist()))} distinct; expected {args.budget} distinct")
    naive_mb = args.labeled * args.pool * 8 / 1e6  # labeled x pool float64 distances
    rows = [{"pool": args.pool, "labeled": args.labeled, "dim": args.dim, "budget": args.budget,
             "seconds": seconds, "cpu s": cpu, "picks/s": args.budget / seconds, "load": load,
             "inputs MB": inputs_mb, "peak +MB": peak_mb, "naive matrix MB": naive_mb}]
    print(f"greedy k-centers on {dev}; memory = {how}; load = other processes' CPU load (cores)")
    print(table(rows, [("pool", ",d"), ("labeled", ",d"), ("dim", "d"), ("budget", ",d"),
                       ("seconds", ".1f"), ("cpu s", ".1f"), ("picks/s", ",.0f"), ("load", ".1f"),
                       ("inputs MB", ",.1f"), ("peak +MB", ",.1f"),
                       ("naive matrix MB", ",.0f")]))
    ref = ""
    if args.reference:
        out = []
        sec, cpu_s, ld = timed(lambda: out.append(_kcenter_float64(pool, labeled, args.budget)),
                               dev)
        same = torch.equal(out[0], idx)
        print(f"float64 reference rule: {sec:.1f} s wall ({cpu_s:.1f} s CPU, load {ld:.1f}); "
              f"the package is {sec / seconds:.2f}x faster ({cpu_s / cpu:.2f}x in CPU time); "
              f"identical picks: {same}")
        ref = f"; {sec / seconds:.2f}x the float64 rule, identical picks: {same}"
        if not same:
            raise SystemExit("kcenter_greedy and the float64 rule picked different centers")
    verdict = ("well below it" if peak_mb < 0.1 * naive_mb else
               "not conclusive at this size: the distance block is as large as the matrix")
    print(f"HEADLINE k-centers {args.pool:,} pool / {args.labeled:,} labeled / budget "
          f"{args.budget:,}: {seconds:.1f} s wall ({cpu:.1f} s CPU), peak memory +{peak_mb:,.0f} MB = "
          f"{peak_mb / naive_mb:.2%} of the {naive_mb / 1e3:,.1f} GB labeled x pool float64 "
          f"matrix ({verdict}){ref}; goal <= {GOAL_S:g} s at 50,000 / 25,000 / 5,000: "
          f"{'MET' if seconds <= GOAL_S else 'NOT MET'} on wall-clock, "
          f"{'MET' if cpu <= GOAL_S else 'NOT MET'} on CPU time (foreign load {load:.1f} cores)")


if __name__ == "__main__":
    main()
