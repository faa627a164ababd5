"""The trainer shared by the selector, the baselines and the target (docs/method.md, "Protocol").

SGD with momentum and weight decay (SVP's values by default: :data:`SGD_DEFAULTS`), SVP's
piecewise schedule (181 epochs =
1 at lr/10, 90 at lr, 45 at lr/10, 45 at lr/100; other lengths keep the proportions:
:func:`svp_phases`) or a cosine schedule. Images stay on the device as one uint8 tensor
and are cropped, flipped and normalized per batch there: no DataLoader, no PIL, no
per-image Python. On CUDA: bf16 autocast, channels_last, and no host synchronization inside
an epoch.

Seeded: the sample order and the augmentation come from a generator seeded with ``seed``, so
the same seed gives the same losses on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import augment, norm_constants, normalize
from .device import resolve_device, resolve_eval_batch
from .distill import KD_LAMBDA, KD_T2, KD_TEMPERATURE, check_kd, freeze_teacher, kd_loss
from .infer import FastForward

SCHEDULES = ("svp", "cosine", "constant")  # the learning-rate schedules of lr_at
SVP_PHASES = (1, 90, 45, 45)  # epochs at lr/10, lr, lr/10, lr/100 in SVP's 181-epoch protocol
# SVP's training recipe, the defaults of train() and of the run parameters of the same names
SGD_DEFAULTS = {"batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                "schedule": "svp"}


def svp_phases(epochs: int) -> tuple[int, ...]:
    """Epochs at lr/10, lr, lr/10 and lr/100: the integer lengths closest to SVP's 1:90:45:45
    that sum to ``epochs`` (the ``svp`` schedule).

    Closest means the least sum of squared deviations from ``epochs * 1/181, 90/181, ...``,
    with every phase at least one epoch when there are at least four (ties go to the earlier
    phase). Adding epochs one at a time to the phase with the smallest marginal increase of
    that sum is exact for such a separable convex objective. 181 -> (1, 90, 45, 45),
    60 -> (1, 29, 15, 15), 30 -> (1, 15, 7, 7), 20 -> (1, 9, 5, 5), 4 -> (1, 1, 1, 1), 1 -> (0, 1, 0, 0).
    """
    total = sum(SVP_PHASES)
    quota = [epochs * w / total for w in SVP_PHASES]
    floor = 1 if epochs >= len(SVP_PHASES) else 0
    lengths = [floor] * len(SVP_PHASES)
    for _ in range(epochs - floor * len(SVP_PHASES)):
        i = min(range(len(lengths)), key=lambda j: (2 * (lengths[j] - quota[j]) + 1, j))
        lengths[i] += 1
    return tuple(lengths)


def lr_at(epoch: int, epochs: int, base_lr: float, schedule: str = "svp") -> float:
    """Learning rate of ``epoch`` (0-based) out of ``epochs``.

    ``svp``: SVP's four phases, lr/10, lr, lr/10, lr/100, at :func:`svp_phases` lengths (181
    epochs: exactly 1/90/45/45). ``cosine``: half-cosine from base_lr to 0. ``constant``:
    base_lr.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if schedule != "svp":
        raise ValueError(f"schedule={schedule!r}: must be one of {SCHEDULES}")
    end = 0
    for length, divisor in zip(svp_phases(epochs), (10, 1, 10, 100)):
        end += length
        if epoch < end:
            return base_lr / divisor
    return base_lr / 100


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, g: torch.Generator):
    n = x.shape[0]
    order = torch.randperm(n, generator=g, device=g.device).to(x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if idx.numel() == 1 and n > 1:
            return  # BatchNorm cannot train on a batch of one
        yield x[idx], y[idx]


def _clock(cuda: bool, dev: torch.device) -> float:
    """Wall-clock seconds, after the device's queued work (so a span times that work)."""
    if cuda:
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def _prepare(xb: torch.Tensor, mean, std, channels_last: bool) -> torch.Tensor:
    xb = normalize(xb, mean, std)
    return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, mean, std,
             batch_size: int | None = None, device: torch.device | str | None = None,
             backend: str | None = None, amp: bool | None = None) -> dict:
    """Test loss and accuracy (fraction in [0, 1]) of ``model`` on uint8 images ``x``.

    ``batch_size`` None = the device default (:func:`prunefuse.device.resolve_eval_batch`).
    The forward is :class:`prunefuse.infer.FastForward` (``backend`` None = its default, the
    model's own forward; ``"folded"`` = BatchNorm folded into the convolutions). ``amp``:
    bf16 autocast; None = on for CUDA, off on CPU (as :func:`train`). Inputs are
    channels_last, which is faster on CPU too (``benchmarks/cpu_knobs.py``).
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    batch_size = resolve_eval_batch(dev, batch_size)
    was_training = model.training
    model.eval()
    forward = FastForward(model, backend)
    amp = dev.type == "cuda" if amp is None else amp
    mean, std = norm_constants(mean, std, dev)
    loss = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = _prepare(x[start : start + batch_size].to(dev), mean, std, True)
            yb = y[start : start + batch_size].to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = forward.logits(xb).float()
            loss += F.cross_entropy(out, yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(x.shape[0], 1)
    return {"test_loss": loss.item() / n, "test_acc": correct.item() / n}


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    epochs: int,
    padding: int = 4,
    augmentation: bool = True,
    batch_size: int = SGD_DEFAULTS["batch_size"],
    lr: float = SGD_DEFAULTS["lr"],
    momentum: float = SGD_DEFAULTS["momentum"],
    weight_decay: float = SGD_DEFAULTS["weight_decay"],
    schedule: str = SGD_DEFAULTS["schedule"],
    teacher: nn.Module | None = None,
    kd_lambda: float = KD_LAMBDA,
    kd_temperature: float = KD_TEMPERATURE,
    kd_t2: bool = KD_T2,
    frozen: dict[str, torch.Tensor] | None = None,
    frozen_epochs: int = 0,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int = 1,
    eval_batch_size: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    compile: bool = False,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place on uint8 images ``x`` and labels ``y``.

    Args:
        model: the network (moved to ``device``).
        x, y: training images (uint8, N x C x H x W) and int64 labels, on any device.
        mean, std: per-channel normalization constants.
        epochs: number of epochs (181 in the paper protocol).
        padding: random-crop padding in pixels (4 for 32x32, 8 for 64x64).
        augmentation: random crop + horizontal flip per batch.
        batch_size: images per SGD step.
        lr: peak learning rate; momentum, weight_decay: SGD settings.
        schedule: ``"svp"``, ``"cosine"`` or ``"constant"`` (:func:`lr_at`).
        teacher: if given, trained with :func:`prunefuse.distill.kd_loss` against this frozen
            network (eval mode, run through :class:`prunefuse.infer.FastForward` with its
            default backend); ``kd_lambda`` and ``kd_temperature`` are its lambda and T, and
            ``kd_t2`` whether its KD term carries the T^2 factor.
        frozen: state-dict key -> boolean mask of the entries whose gradient is zeroed in
            the first ``frozen_epochs`` epochs (before each step, so weight decay and
            momentum still move them: the authors' warm-up epoch on the fused slices).
        frozen_epochs: how many first epochs ``frozen`` applies to.
        test: optional (images, labels) evaluated after every ``eval_every``-th epoch and
            after the last one (``eval_every=0``: the last one only). Evaluation time is
            reported as ``eval_seconds``, never inside ``seconds``.
        eval_every: period of that evaluation, in epochs.
        eval_batch_size: batch size of that evaluation; None = 1024 on CUDA, 128 on CPU.
        seed: seeds sample order and augmentation.
        device: ``"cpu"``, ``"cuda"``, ...; default from ``PRUNEFUSE_DEVICE`` or CUDA if present.
        amp: bf16 autocast; default on for CUDA, off on CPU.
        compile: run the full-size batches through ``torch.compile(model)``. On CPU a
            compilation costs time first (``benchmarks/end_to_end.py --compile`` measures
            it) unless inductor's on-disk cache already holds it from an earlier process.
            The one shorter batch at an epoch's end runs eagerly, with the same weights:
            shapes stay static, so each architecture compiles once, however many rounds
            retrain it and whatever the labeled-set size.
        progress: show a tqdm bar over epochs.
        desc: label of the progress bar.
        on_epoch: called with each epoch's metrics as soon as they exist.

    Returns:
        One dict per epoch: epoch, lr, train_loss, train_acc, seconds (training only),
        images_per_s, and on evaluated epochs test_loss, test_acc (fractions), eval_seconds.
    """
    from tqdm.auto import tqdm

    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r}: must be a non-negative int")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be >= 1")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x, y: need the same non-zero length, got {x.shape[0]} and {y.shape[0]}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every={eval_every!r}: must be an int >= 0 (0 = last epoch only)")
    check_kd(kd_lambda, kd_temperature)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    amp = cuda if amp is None else amp
    model.to(dev)
    if cuda:
        model.to(memory_format=torch.channels_last)
    teacher_forward = None
    if teacher is not None:
        freeze_teacher(teacher.to(dev))
        if cuda:
            teacher.to(memory_format=torch.channels_last)
        # Built once: the teacher is frozen for the whole training.
        teacher_forward = FastForward(teacher)
    x, y = x.to(dev), y.to(dev)
    mean, std = norm_constants(mean, std, dev)
    params = dict(model.named_parameters())
    unknown = sorted(set(frozen or {}) - set(params))
    if unknown:
        raise ValueError(f"frozen: {unknown[:3]} are not parameters of the model")
    masks = [(params[k], m.to(dev)) for k, m in (frozen or {}).items()]
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, nesterov=False)
    g = torch.Generator(device=dev).manual_seed(int(seed))
    history: list[dict] = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False, unit="ep")
    for epoch in bar:
        lr_now = lr_at(epoch, epochs, lr, schedule)
        for group in opt.param_groups:
            group["lr"] = lr_now
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        seen = 0
        teacher_seconds = 0.0
        for xb, yb in _batches(x, y, batch_size, g):
            if augmentation:
                xb = augment(xb, padding, generator=g)
            xb = _prepare(xb, mean, std, cuda)
            net = step_model if xb.shape[0] == batch_size else model
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = net(xb)
                if teacher is not None and kd_lambda > 0:
                    t0 = _clock(cuda, dev)
                    t_out = teacher_forward.logits(xb)
                    teacher_seconds += _clock(cuda, dev) - t0
                    loss = kd_loss(out, t_out, yb, kd_lambda, kd_temperature, t2=kd_t2)
                else:
                    loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if epoch < frozen_epochs:
                for p, mask in masks:
                    if p.grad is not None:
                        p.grad.masked_fill_(mask, 0.0)
            opt.step()
            loss_sum += loss.detach() * yb.shape[0]
            correct += (out.detach().argmax(1) == yb).sum()
            seen += yb.shape[0]
        if cuda:
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - start
        row = {
            "epoch": epoch + 1,
            "lr": lr_now,
            "train_loss": loss_sum.item() / max(seen, 1),
            "train_acc": correct.item() / max(seen, 1),
            "seconds": seconds,
            "images_per_s": seen / seconds if seconds > 0 else float("nan"),
        }
        if teacher is not None and kd_lambda > 0:
            row["teacher_seconds"] = teacher_seconds  # part of ``seconds``
        last = epoch + 1 == epochs
        if test is not None and (last or (eval_every and (epoch + 1) % eval_every == 0)):
            t0 = time.perf_counter()
            row.update(evaluate(model, *test, mean=mean, std=std, batch_size=eval_batch_size,
                                device=dev, amp=amp))
            row["eval_seconds"] = time.perf_counter() - t0
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                        acc=f"{row.get('test_acc', row['train_acc']):.3f}")
        if on_epoch is not None:
            on_epoch(row)
    bar.close()
    return history
