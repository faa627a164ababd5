"""Shared helpers for the benchmark scripts: device and threads, a machine header, and a
timer that also reports how busy the *other* processes kept the CPUs while it ran.

The foreign-load figure matters on small shared machines: with 2 cores and 2 OpenMP threads,
one concurrent process can slow PyTorch down by 10x (threads spin at barriers), so every
timing carries it and the scripts keep the fastest of several repeats.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from prunefuse.device import default_device


def add_common_args(parser) -> None:
    """``--device`` (default: PRUNEFUSE_DEVICE, else cuda if available, else cpu), ``--threads``."""
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, ... (default: $PRUNEFUSE_DEVICE, else cuda if present)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own, one per core)")


def setup(args) -> torch.device:
    """Apply ``--threads``, resolve ``--device`` and print the machine header."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device) if args.device else default_device()
    print(header(dev))
    return dev


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(dev: torch.device) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC | "
            f"{os.cpu_count()} CPU cores ({cpu_model()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, device {dev}{gpu} | load avg {load}")


def _busy_jiffies() -> int | None:
    """Total non-idle CPU time of the machine, in clock ticks (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4]  # minus idle and iowait


def _own_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def timed(fn: Callable[[], object], dev: torch.device) -> tuple[float, float, float]:
    """Run ``fn`` once; return (wall seconds, CPU seconds of this process, foreign load).

    Foreign load = busy CPU time of the whole machine minus this process's, over the wall
    time, in cores: 0.0 on an idle machine, 1.0 if another process kept one core busy. With
    one thread (``--threads 1``) the CPU seconds barely move under foreign load, so they
    stand in for idle wall-clock when the machine is shared.
    """
    hz = os.sysconf("SC_CLK_TCK")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    busy0, own0, t0 = _busy_jiffies(), _own_seconds(), time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    busy1, own1 = _busy_jiffies(), _own_seconds()
    cpu = own1 - own0
    if busy0 is None or busy1 is None or wall <= 0:
        return wall, cpu, float("nan")
    return wall, cpu, max(0.0, ((busy1 - busy0) / hz - cpu) / wall)


class LoadMeter:
    """Foreign CPU load (cores) over every block run under ``with meter(key):``, per key."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.foreign: dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        busy0, own0, t0 = _busy_jiffies(), _own_seconds(), time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - t0
            busy1, cpu = _busy_jiffies(), _own_seconds() - own0
            foreign = (float("nan") if busy0 is None or busy1 is None
                       else max(0.0, (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - cpu))
            self.wall[key] = self.wall.get(key, 0.0) + wall
            self.foreign[key] = self.foreign.get(key, 0.0) + foreign

    def load(self, key: str) -> float:
        return self.foreign[key] / self.wall[key] if self.wall.get(key) else float("nan")


def best_of(fn: Callable[[], object], dev: torch.device, repeats: int) -> tuple[float, float, float]:
    """Fastest of ``repeats`` runs: (min wall seconds, min CPU seconds, load of the fastest)."""
    runs = [timed(fn, dev) for _ in range(max(1, repeats))]
    fastest = min(runs, key=lambda r: r[0])
    return fastest[0], min(r[1] for r in runs), fastest[2]


def table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    """Plain-text table; ``cols`` is a list of (key, format spec), key doubling as heading."""
    cells = [[format(r[k], f) if isinstance(r[k], (int, float)) else str(r[k]) for k, f in cols]
             for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, (k, _) in enumerate(cols)]
    lines = ["  ".join(k.rjust(w) for (k, _), w in zip(cols, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
