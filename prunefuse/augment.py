"""Batch transforms on uint8 image tensors, on whatever device holds them: random crop and
flip for training (:func:`augment`) and per-channel normalization (:func:`normalize`).

One gather does a whole batch's crops and flips, so training needs no per-image loop, no PIL
and no DataLoader workers (the datasets of :mod:`prunefuse.data` are uint8 tensors).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map uint8 pixels to ``(x / 255 - mean) / std`` per channel, on ``x.device``.

    Args:
        x: images ``(N, C, H, W)``, uint8 in [0, 255].
        mean: C per-channel means in [0, 1] pixel units (a sequence, or a tensor from
            :func:`norm_constants`).
        std: C per-channel standard deviations in [0, 1] pixel units (likewise).
        dtype: floating dtype of the result.

    Returns:
        A float tensor with the shape of ``x``.
    """
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"mean/std: need {x.shape[1]} values each for {x.shape[1]} channels, "
                         f"got {len(mean)}/{len(std)}")
    m, s = norm_constants(mean, std, x.device, dtype)  # no copy if already tensors there
    return (x.to(dtype) / 255 - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)


def norm_constants(mean: Sequence[float], std: Sequence[float], device: torch.device,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as tensors on ``device``, to pass to :func:`normalize` in a loop.

    Tensors already there (same dtype) are returned as they are. Loops build these once
    rather than once per batch: on CUDA each copy from a Python list blocks the host until
    the GPU has caught up (no host synchronization per step).
    """
    return (torch.as_tensor(mean, dtype=dtype, device=device),
            torch.as_tensor(std, dtype=dtype, device=device))


def _draw_offsets(n: int, padding: int, flip: bool, generator: torch.Generator | None,
                  device: torch.device):
    """Random crop offsets in ``[0, 2 * padding]`` and flip flags for ``n`` images.

    Shared with the tests, which replay these draws through a per-image reference.
    """
    kw = {"generator": generator, "device": device}
    if padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (n,), **kw)
        dx = torch.randint(0, 2 * padding + 1, (n,), **kw)
    else:
        dy = dx = torch.zeros(n, dtype=torch.long, device=device)
    flips = (torch.randint(0, 2, (n,), **kw) if flip
             else torch.zeros(n, dtype=torch.long, device=device)).bool()
    return dy, dx, flips


def augment(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
            flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding plus random horizontal flip, for a whole batch at once.

    Each image is zero-padded by ``padding`` pixels on every side and cropped back to its
    size at a random offset (a shift of at most ``padding`` px), then mirrored with
    probability 1/2. One gather over index grids does the whole batch: no loop over images.

    Args:
        x: images ``(N, C, H, W)``, any dtype, any device.
        padding: crop padding in pixels; 0 means no crop.
        generator: random generator on ``x.device``, or None for the global one.
        flip: whether to apply random horizontal flips.

    Returns:
        A new tensor of the shape, dtype and device of ``x``.
    """
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding={padding!r}: must be an int >= 0")
    if x.dim() != 4:
        raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dy, dx, flips = _draw_offsets(n, padding, flip, generator, x.device)
    xp = F.pad(x, (padding,) * 4) if padding else x
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H) rows of the padded image
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    # Gather per image: index padded[n, c, rows[n, i], cols[n, j]].
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
