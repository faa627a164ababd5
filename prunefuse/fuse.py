"""Step 3 of PruneFuse: fuse the trained pruned network back into the dense initialization.

theta_F := theta_0, then every tensor of the trained pruned model is written into the
positions its index map names: conv weights at [kept_out, kept_in], BN weight, bias and
running statistics at the kept channels, classifier columns at the kept inputs and its full
bias. Everything else keeps its initial value. Nothing is frozen.

:func:`gather` is the inverse (dense to pruned), used by "PruneFuse V2" to copy the trained
dense network's kept weights back into the selector.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .prune import IndexMap, index_tuple


def _check_fit(dense_sd: dict, pruned_sd: dict, index_map: IndexMap) -> None:
    missing = sorted(set(pruned_sd) - set(index_map))
    if missing:
        raise ValueError(f"index_map: no entry for pruned tensors {missing[:5]}")
    for key, small in pruned_sd.items():
        if key not in dense_sd:
            raise ValueError(f"index_map: {key!r} is in the pruned model but not the dense one")
        big, ix = dense_sd[key], index_map[key]
        if small.ndim == 0 and not ix:
            continue
        if len(ix) != big.ndim or big.ndim != small.ndim:
            raise ValueError(
                f"index_map[{key!r}]: {len(ix)} index lists for a dense tensor of shape "
                f"{tuple(big.shape)} and a pruned one of shape {tuple(small.shape)}"
            )
        for d, (idx, n_small, n_big) in enumerate(zip(ix, small.shape, big.shape)):
            if len(idx) != n_small or (idx and (max(idx) >= n_big or min(idx) < 0)):
                raise ValueError(
                    f"index_map[{key!r}] dim {d}: {len(idx)} indices (max "
                    f"{max(idx) if idx else None}) do not fit pruned size {n_small} / dense "
                    f"size {n_big}"
                )


def fuse(dense_init: nn.Module, pruned_trained: nn.Module, index_map: IndexMap) -> nn.Module:
    """Return a new dense model: the dense init with the trained pruned tensors written in.

    Args:
        dense_init: theta_0, the same initialization that was pruned (left unchanged).
        pruned_trained: theta_p after training.
        index_map: from :func:`prunefuse.prune.prune_at_init`.

    Returns:
        theta_F, a deep copy of ``dense_init`` on its device, in train mode.
    """
    fused = copy.deepcopy(dense_init)
    dense_sd = fused.state_dict()
    pruned_sd = pruned_trained.state_dict()
    _check_fit(dense_sd, pruned_sd, index_map)
    with torch.no_grad():
        for key, small in pruned_sd.items():
            if key.endswith("num_batches_tracked"):
                continue
            big = dense_sd[key]
            big[index_tuple(index_map[key])] = small.to(big.device, big.dtype)
    return fused.train()


def gather(dense: nn.Module, pruned: nn.Module, index_map: IndexMap) -> nn.Module:
    """Copy ``dense``'s tensors at the mapped positions into ``pruned`` (in place) and return it."""
    dense_sd = dense.state_dict()
    pruned_sd = pruned.state_dict()
    _check_fit(dense_sd, pruned_sd, index_map)
    with torch.no_grad():
        for key, small in pruned_sd.items():
            if not key.endswith("num_batches_tracked"):
                small.copy_(dense_sd[key][index_tuple(index_map[key])])
    return pruned


def zero_outside(model: nn.Module, index_map: IndexMap) -> nn.Module:
    """Zero every entry of a dense model outside the mapped positions (in place).

    With this, a fused model computes exactly what the pruned model computes (eval mode),
    which is how the tests check fusion.
    """
    with torch.no_grad():
        for key, big in model.state_dict().items():
            ix = index_map.get(key)
            if not ix or key.endswith("num_batches_tracked"):
                continue
            mask = torch.zeros_like(big, dtype=torch.bool)
            mask[index_tuple(ix)] = True
            fill = 1.0 if key.endswith("running_var") else 0.0
            big.masked_fill_(~mask, fill)
    return model
