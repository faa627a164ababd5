"""Where tensors live. The device comes from ``PRUNEFUSE_DEVICE`` (as in timm), else CUDA if
present, else CPU."""

from __future__ import annotations

import os

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
