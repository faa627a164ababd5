"""Where tensors live. The device comes from ``PRUNEFUSE_DEVICE`` (as in timm), else CUDA if
present, else CPU."""

from __future__ import annotations

import os
import platform

import torch


def default_device() -> torch.device:
    """Return the device named by ``PRUNEFUSE_DEVICE``, else ``cuda`` when available, else ``cpu``."""
    name = os.environ.get("PRUNEFUSE_DEVICE")
    if name:
        return resolve_device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None``/``"auto"``/a name into a ``torch.device``, with a clear error if unusable."""
    if device is None or device == "auto":
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r}: expected 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine; use 'cpu'")
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable device name for run records (the GPU model on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def cpu_description() -> str:
    """The host CPU for run records, e.g. ``Intel(R) Xeon(R) Processor, AVX512, 2 cores``: its
    model name (``/proc/cpuinfo``, else :func:`platform.processor`), the instruction set
    torch's CPU kernels use (float results are bit-for-bit only on the same one), and the
    logical cores. Seconds measured on two different CPUs are not comparable."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores"


def resolve_eval_batch(device: torch.device, batch_size: int | None = None) -> int:
    """Batch size for forward-only passes (pool scoring, test evaluation).

    ``None`` picks the device's sweet spot: 1024 on CUDA, 128 elsewhere (on a 2-core CPU the
    large batch is slower; ``benchmarks/cpu_knobs.py`` measures it).
    """
    if batch_size is None:
        return 1024 if device.type == "cuda" else 128
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be an int >= 1, or None for the "
                         "device default (1024 on CUDA, 128 on CPU)")
    return batch_size
