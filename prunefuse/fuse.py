"""Step 3 of PruneFuse: fuse the trained pruned network back into the dense initialization.

theta_F := theta_0, then every tensor of the trained pruned model is written into the
positions its index map names: conv weights at [kept_out, kept_in], BN weight, bias and
running statistics at the kept channels, classifier columns at the kept inputs and its full
bias. Everything else keeps its initial value. Nothing is frozen.

That is our reading, the run parameter ``fusion="indices"``. :func:`fuse_variant` also
builds the readings a reader may want to compare it with (docs/method.md, "Where we had to
choose"): ``fresh`` (the same writes into a fresh initialisation), ``conv_only`` (only conv
weights are written; BN and the classifier keep theta_0) and ``fork`` (the public forked
scripts: conv weights only, into a fresh network with Xavier-uniform convs, at ``[::2, ::2]``
when both widths are exactly halved, else in the leading corner; no index map).

:func:`gather` is the inverse (dense to pruned), used by "PruneFuse V2" to copy the trained
dense network's kept weights back into the selector; :func:`derive_selector` is V2's step
from a trained dense network to the next selector.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn as nn

from .prune import IndexMap, index_tuple, prune_at_init

FUSIONS = ("indices", "fresh", "conv_only", "fork")  # the readings of fuse_variant
V2_DERIVE = ("gather", "reprune")  # derive_selector's ways


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


def fuse(dense_init: nn.Module, pruned_trained: nn.Module, index_map: IndexMap, *,
         keys: Iterable[str] | None = None) -> nn.Module:
    """Return a new dense model: the dense init with the trained pruned tensors written in.

    Args:
        dense_init: theta_0, the same initialization that was pruned (left unchanged).
        pruned_trained: theta_p after training.
        index_map: from :func:`prunefuse.prune.prune_at_init`.
        keys: write only these state-dict entries (None = every one); the others keep
            ``dense_init``'s values.

    Returns:
        theta_F, a deep copy of ``dense_init`` on its device, in train mode.
    """
    fused = copy.deepcopy(dense_init)
    dense_sd = fused.state_dict()
    pruned_sd = pruned_trained.state_dict()
    if keys is not None:
        pruned_sd = {k: pruned_sd[k] for k in keys}
    _check_fit(dense_sd, pruned_sd, index_map)
    with torch.no_grad():
        for key, small in pruned_sd.items():
            if key.endswith("num_batches_tracked"):
                continue
            big = dense_sd[key]
            big[index_tuple(index_map[key])] = small.to(big.device, big.dtype)
    return fused.train()


def conv_keys(model: nn.Module) -> list[str]:
    """State-dict keys of every Conv2d's weight (and bias, if it has one)."""
    return [f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, nn.Conv2d)
            for p, _ in m.named_parameters(recurse=False)]


def fork_placement(dense: nn.Module, pruned: nn.Module) -> IndexMap:
    """The forked scripts' placement of each conv weight, as an index map: along the output
    and input channels ``[::2]`` when both are exactly half the dense widths, else the
    leading ``[:k]``; the kernel whole. It ignores which channels were actually kept."""
    dense_sd, imap = dense.state_dict(), {}
    for key in conv_keys(pruned):
        small, big = pruned.state_dict()[key], dense_sd[key]
        halved = small.ndim > 1 and all(2 * small.shape[d] == big.shape[d] for d in (0, 1))
        imap[key] = [list(range(0, big.shape[d], 2)) if halved and d < 2
                     else list(range(small.shape[d])) for d in range(small.ndim)]
    return imap


def fuse_variant(fusion: str, *, dense_init: nn.Module, fresh_init: nn.Module,
                 pruned_trained: nn.Module, index_map: IndexMap) -> nn.Module:
    """The dense target's initialization under the reading ``fusion`` (see the module doc).

    Args:
        fusion: one of :data:`FUSIONS`; ``"indices"`` is ours (docs/method.md, "Step 3").
        dense_init: theta_0, the dense initialization that was pruned.
        fresh_init: another dense initialization of the same architecture (``fresh``,
            ``fork``); left unchanged.
        pruned_trained: the trained selector theta_p.
        index_map: theta_p's index map into theta_0.

    Returns:
        A new dense model in train mode.
    """
    base, placement = _variant(fusion, dense_init, fresh_init, pruned_trained, index_map)
    return fuse(base, pruned_trained, placement, keys=list(placement))


def fused_conv_slices(fusion: str, *, dense_init: nn.Module, fresh_init: nn.Module,
                      pruned_trained: nn.Module, index_map: IndexMap) -> dict[str, torch.Tensor]:
    """Where :func:`fuse_variant` wrote the selector's conv weights: state-dict key -> boolean
    mask of the dense tensor, for the authors' frozen warm-up epoch
    (``freeze_fused_epochs``)."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion={fusion!r}: unknown; choose one of {list(FUSIONS)}")
    # Shapes only: the fork's Xavier draw is not repeated here.
    placement = fork_placement(fresh_init, pruned_trained) if fusion == "fork" else index_map
    sd = dense_init.state_dict()
    masks = {}
    for key in conv_keys(pruned_trained):
        if key in placement:
            mask = torch.zeros_like(sd[key], dtype=torch.bool)
            mask[index_tuple(placement[key])] = True
            masks[key] = mask
    return masks


def _variant(fusion: str, dense_init: nn.Module, fresh_init: nn.Module,
             pruned_trained: nn.Module, index_map: IndexMap) -> tuple[nn.Module, IndexMap]:
    """The base network and the placement (key -> index lists) of a fusion reading."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion={fusion!r}: unknown; choose one of {list(FUSIONS)}")
    convs = conv_keys(pruned_trained)
    everything = [k for k in pruned_trained.state_dict() if not k.endswith("num_batches_tracked")]
    if fusion == "indices":
        return dense_init, {k: index_map[k] for k in everything}
    if fusion == "fresh":
        return fresh_init, {k: index_map[k] for k in everything}
    if fusion == "conv_only":
        return dense_init, {k: index_map[k] for k in convs}
    base = copy.deepcopy(fresh_init)
    for m in base.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return base, fork_placement(base, pruned_trained)


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


def derive_selector(dense_trained: nn.Module, selector: nn.Module, index_map: IndexMap, *,
                    how: str, ratio: float, example_input: torch.Tensor, steps: int = 1
                    ) -> tuple[nn.Module, IndexMap]:
    """PruneFuse V2 (our interpretation): the next selector from a trained dense network.

    Args:
        dense_trained: the dense network trained on the labeled set (left unchanged).
        selector: the current selector (its architecture; its weights are not used).
        index_map: the current selector's index map.
        how: ``"gather"``: the same kept channels, their trained weights copied back by
            :func:`gather`; ``"reprune"``: an L2 re-prune of the trained network at ``ratio``
            (:func:`prunefuse.prune.prune_at_init`), which yields a new index map.
        ratio: the pruning ratio p (used by ``reprune``).
        example_input: one input batch (used by ``reprune`` to trace the network).
        steps: iterative pruning steps of ``reprune``.

    Returns:
        ``(selector, index_map)``: a new selector holding trained weights, and its map.
    """
    dense = copy.deepcopy(dense_trained).cpu()
    if how == "gather":
        return gather(dense, copy.deepcopy(selector).cpu(), index_map), index_map
    if how == "reprune":
        return prune_at_init(dense, ratio, example_input, steps=steps)
    raise ValueError(f"v2_derive={how!r}: unknown; choose one of {list(V2_DERIVE)}")


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
