"""Step 1 of PruneFuse: prune the dense network at initialization.

Whole channels with the lowest L2 norm of their *initial* filters are removed, the same
ratio ``p`` in every group of coupled channels. torch-pruning's dependency graph finds the
groups: channels joined by a residual add are one group, and the group's importance of a
channel is the mean, over the convs that produce it, of that channel's filter norm. Input
channels and the classifier's outputs are never pruned. Each group keeps
``round(C * (1 - p))`` channels (at least one), rounding halves up.

The result is a physically smaller network plus an **index map**: for every entry of the
pruned model's state dict, one index list per dimension, naming the positions of the dense
tensor it was cut from. :mod:`prunefuse.fuse` writes trained weights back through it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from .errors import ConfigError
from .models import build_model

IndexMap = dict[str, list[list[int]]]


def check_ratio(ratio: float) -> float:
    """A pruning ratio (fraction of channels removed, docs/method.md "Step 1: prune at
    initialization") as a float; :class:`ConfigError` unless it is a number in [0, 1)."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(f"ratio={ratio!r}: pruning ratio must be a number in [0, 1)")
    return float(ratio)


def kept_channels(channels: int, ratio: float) -> int:
    """Channels a layer of width ``channels`` keeps at pruning ratio ``ratio``: round(C(1-p)) >= 1."""
    # floor(x + 0.5) rounds halves up, unlike Python's banker's round(); the epsilon absorbs
    # binary noise such as 16 * (1 - 0.7) = 4.800000000000001.
    return max(1, math.floor(channels * (1.0 - ratio) + 0.5 + 1e-9))


def _dependency_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    with torch.enable_grad():
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)


def _classifier(model: nn.Module) -> nn.Module:
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError("model: expected the classifier as an nn.Linear attribute `fc`")
    return fc


def _groups(dg: tp.DependencyGraph, model: nn.Module) -> list:
    return list(
        dg.get_all_groups(ignored_layers=[_classifier(model)], root_module_types=[nn.Conv2d])
    )


def _group_importance(dg: tp.DependencyGraph, group) -> torch.Tensor:
    """Mean over the group's producing convs of each channel's initial filter L2 norm."""
    root = group[0].dep.target.module
    score = torch.zeros(root.out_channels, dtype=torch.float64)
    members = 0
    for item in group:
        module = item.dep.target.module
        if isinstance(module, nn.Conv2d) and dg.is_out_channel_pruning_fn(item.dep.handler):
            norms = module.weight.detach().flatten(1).norm(p=2, dim=1).double()
            score[item.root_idxs] += norms[item.idxs]
            members += 1
    return score / max(members, 1)


class _Tracker:
    """Follows which dense indices survive along each dimension of each module."""

    def __init__(self, model: nn.Module):
        self.names = {m: n for n, m in model.named_modules()}
        self.out: dict[nn.Module, list[int]] = {}
        self.inp: dict[nn.Module, list[int]] = {}
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                self.out[m], self.inp[m] = list(range(m.out_channels)), list(range(m.in_channels))
            elif isinstance(m, nn.Linear):
                self.out[m], self.inp[m] = list(range(m.out_features)), list(range(m.in_features))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                self.out[m] = list(range(m.num_features))

    def remove(self, dg: tp.DependencyGraph, group) -> None:
        for item in group:
            module, handler = item.dep.target.module, item.dep.handler
            if module not in self.out:
                continue  # graph-only nodes (adds, reshapes) hold no tensors
            drop = set(item.idxs)
            if dg.is_out_channel_pruning_fn(handler) or module not in self.inp:
                self.out[module] = [c for i, c in enumerate(self.out[module]) if i not in drop]
            else:
                self.inp[module] = [c for i, c in enumerate(self.inp[module]) if i not in drop]

    def index_map(self, pruned: nn.Module) -> IndexMap:
        imap: IndexMap = {}
        for mname, m in pruned.named_modules():
            for pname, tensor in list(m.named_parameters(recurse=False)) + list(
                m.named_buffers(recurse=False)
            ):
                key = f"{mname}.{pname}" if mname else pname
                if tensor.ndim == 0:
                    imap[key] = []
                elif m not in self.out:
                    raise ValueError(
                        f"cannot map {key!r}: module type {type(m).__name__} is not supported "
                        "by the index map (Conv2d, Linear and BatchNorm are)"
                    )
                elif pname == "weight" and m in self.inp:
                    imap[key] = [self.out[m], self.inp[m]] + [
                        list(range(s)) for s in tensor.shape[2:]
                    ]
                else:
                    imap[key] = [self.out[m]]
        return imap


def _apply(model: nn.Module, example_input: torch.Tensor, keep: Sequence[Sequence[int]] | None,
           ratio: float, steps: int = 1) -> tuple[nn.Module, IndexMap]:
    """Prune ``model`` in place. ``keep`` lists each group's kept root channels; when it is
    None they are chosen by importance at ``ratio``, reached in ``steps`` equal steps of the
    ratio (torch-pruning's iterative steps), the importance recomputed on what is left after
    each step."""
    dg = _dependency_graph(model, example_input)
    groups = _groups(dg, model)
    if not groups:
        raise ValueError(
            f"model {type(model).__name__}: nothing to prune (no conv channel groups outside "
            "the input and the classifier)"
        )
    tracker = _Tracker(model)
    if keep is not None:
        steps = 1
    widths = {group[0].dep.target.module: group[0].dep.target.module.out_channels
              for group in groups}
    for step in range(1, steps + 1):
        plan = []
        for gi, group in enumerate(_groups(dg, model) if step > 1 else groups):
            root = group[0].dep.target.module
            c = root.out_channels
            if keep is None:
                order = torch.argsort(-_group_importance(dg, group), stable=True)
                target = kept_channels(widths[root], ratio * step / steps)
                kept = sorted(order[: min(c, target)].tolist())
            else:
                kept = sorted(keep[gi])
            plan.append((root, kept, [i for i in range(c) if i not in set(kept)]))
        for root, _, drop in plan:
            if drop:
                group = dg.get_pruning_group(root, tp.prune_conv_out_channels, drop)
                tracker.remove(dg, group)
                group.prune()
    return model, tracker.index_map(model)


def prune_at_init(
    model: nn.Module, ratio: float, example_input: torch.Tensor, steps: int = 1
) -> tuple[nn.Module, IndexMap]:
    """Prune a freshly initialised dense model by channel L2 norm (docs/method.md, "Step 1: prune at
    initialization").

    Args:
        model: the dense initialisation theta_0; it is not modified (a deep copy is pruned).
        ratio: fraction of channels removed in every group, in [0, 1).
        example_input: one input batch, used to trace the dependency graph.
        steps: reach ``ratio`` in this many equal steps, each choosing by the filter norms of
            what the previous steps left (torch-pruning's ``iterative_steps``; 1 = one shot).

    Returns:
        ``(pruned_model, index_map)``: the thin network theta_p and, for every key of its
        state dict, the kept dense indices along each dimension.
    """
    import copy

    ratio = check_ratio(ratio)
    dense = copy.deepcopy(model).cpu()
    dense_sd = {k: v.clone() for k, v in dense.state_dict().items()}
    was_training = dense.training
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}: must be an int >= 1")
    pruned, imap = _apply(dense.eval(), example_input.cpu(), None, ratio, steps)
    pruned.train(was_training)
    _check_slices(dense_sd, pruned.state_dict(), imap)
    return pruned, imap


def _check_slices(dense_sd: dict, pruned_sd: dict, imap: IndexMap) -> None:
    """Every pruned tensor must equal the dense one cut at the mapped indices."""
    for key, tensor in pruned_sd.items():
        if key.endswith("num_batches_tracked"):
            continue
        ref = dense_sd[key][index_tuple(imap[key])] if imap[key] else dense_sd[key]
        if ref.shape != tensor.shape or not torch.equal(ref, tensor):
            raise RuntimeError(f"pruning bookkeeping error at {key!r}: index map does not match")


def index_tuple(indices: list[list[int]]) -> tuple[torch.Tensor, ...]:
    """Open-mesh index (like ``numpy.ix_``) selecting the mapped sub-tensor."""
    n = len(indices)
    return tuple(
        torch.as_tensor(ix, dtype=torch.long).view([-1 if d == i else 1 for d in range(n)])
        for i, ix in enumerate(indices)
    )


def pruned_from_index_map(
    arch: str, num_classes: int, index_map: IndexMap, in_channels: int = 3, image_size: int = 32
) -> nn.Module:
    """Rebuild a pruned architecture (random weights) from its index map."""
    model = build_model(arch, num_classes=num_classes, in_channels=in_channels)
    example = torch.zeros(1, in_channels, image_size, image_size)
    dg = _dependency_graph(model.eval(), example)
    names = {m: n for n, m in model.named_modules()}
    keep = []
    for group in _groups(dg, model):
        key = f"{names[group[0].dep.target.module]}.weight"
        if key not in index_map:
            raise ValueError(f"index_map: no entry for {key!r}; it does not fit {arch}")
        keep.append(index_map[key][0])
    pruned, rebuilt = _apply(model, example, keep, 0.0)
    if rebuilt != index_map:
        raise ValueError(f"index_map: does not describe a channel pruning of {arch}")
    return pruned.train()


def save_pruned(path: str | os.PathLike, model: nn.Module, *, arch: str, ratio: float,
                num_classes: int, index_map: IndexMap, in_channels: int = 3,
                image_size: int = 32) -> None:
    """Save a pruned model as (architecture, ratio, index map, state dict), not a pickled module;
    written beside ``path`` first and renamed, so a reader never sees half a file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save({"arch": arch, "ratio": ratio, "num_classes": num_classes,
                "in_channels": in_channels, "image_size": image_size, "index_map": index_map,
                "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)


def load_pruned(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Load what :func:`save_pruned` wrote. Returns ``(model, meta)``; meta holds the rest."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = pruned_from_index_map(blob["arch"], blob["num_classes"], blob["index_map"],
                                  blob["in_channels"], blob["image_size"])
    model.load_state_dict(blob["state_dict"])
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, meta
