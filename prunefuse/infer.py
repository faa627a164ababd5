"""Forward-only passes that pay less per layer: pool scoring, test evaluation, the KD teacher.

Caveat first: a fast forward is a snapshot. It is built from the model's weights at the time
of the call and must be rebuilt after the model trains again; every caller in the package
builds one per trained model (per scoring pass, per evaluation, per KD training).

What it does, on any device:

- folds every BatchNorm that directly follows a convolution into that convolution's weights
  and bias (eval-mode statistics), through a torch.fx trace of ``features`` + ``fc``, so one
  graph returns both the penultimate features and the logits;
- keeps weights and activations channels_last;
- then, by ``backend``:
  ``"model"`` skips all of this and calls the model itself (the reference);
  ``"folded"`` runs the folded graph eagerly;
  ``"jit"`` traces it with TorchScript, ``torch.jit.freeze`` and
  ``torch.jit.optimize_for_inference`` (oneDNN convolutions with fused ReLU on CPU);
  ``"compile"`` runs it through ``torch.compile`` (inductor, weights frozen into the graph).

``"folded"`` and ``"jit"`` pick the same samples as the model on every registered
architecture (tests/test_infer.py), but neither measured faster than the model's own forward
for a p=0.5 selector on a 2-core CPU, build time included (``benchmarks/selection_cost.py``
measures them), so the default stays ``"model"``; pass ``backend="folded"`` to use the folded
graph.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.fx
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

BACKENDS = ("model", "folded", "jit", "compile")
DEFAULT_BACKEND = "model"  # see the module docstring


class _Heads(nn.Module):
    """``x -> (features(x), fc(features(x)))`` as one module, so one trace covers both."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(x)
        return f, self.model.fc(f)


def fold_batchnorm(model: nn.Module) -> torch.fx.GraphModule:
    """An eval-mode copy of ``model`` as a graph ``x -> (features, logits)`` in which each
    BatchNorm fed only by a convolution is folded into it (pre-activation BNs that follow a
    residual add stay). ``model`` itself is not touched."""
    heads = _Heads(copy.deepcopy(model)).eval()
    gm = torch.fx.symbolic_trace(heads)
    mods = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(mods[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (not isinstance(src, torch.fx.Node) or src.op != "call_module"
                or not isinstance(mods[src.target], nn.Conv2d) or len(src.users) > 1):
            continue
        folded = fuse_conv_bn_eval(mods[src.target], mods[node.target])
        parent, _, name = src.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, folded)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


class FastForward:
    """``x -> (features, logits)`` of a trained model, folded and compiled once.

    Args:
        model: exposes ``features(x)`` and ``fc`` (:mod:`prunefuse.models`); any device.
        backend: one of :data:`BACKENDS`; None = :data:`DEFAULT_BACKEND`.

    The ``"jit"`` and ``"compile"`` backends build on the first call (they need an example
    batch); calls take normalized inputs on the model's device.
    """

    def __init__(self, model: nn.Module, backend: str | None = None):
        backend = DEFAULT_BACKEND if backend is None else backend
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: must be one of {BACKENDS}")
        self.backend = backend
        if backend == "model":
            self.module = _Heads(model)
        else:
            self.module = fold_batchnorm(model).to(memory_format=torch.channels_last)
        self._run = self.module if backend in ("model", "folded") else None

    def _build(self, x: torch.Tensor):
        if self.backend == "compile":
            return torch.compile(self.module, options={"freezing": True})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            traced = torch.jit.trace(self.module, x, check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        if self._run is None:
            self._run = self._build(x)
        return self._run(x)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits only, as ``model(x)`` would return them."""
        return self(x)[1]
