"""Step 4 of PruneFuse: train the fused network with knowledge distillation.

loss = (1 - lambda) * CE(y, z_F) + lambda * T^2 * KL(softmax(z_p / T) || softmax(z_F / T))

The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
(Hinton et al. 2015). lambda = 0 is the "no KD" ablation. ``t2=False`` drops the factor, as
the authors' public code does (their lambda and T: ``prunefuse.config.READINGS["authors"]``);
:func:`kd_pull` says how much weaker that makes the pull towards the teacher.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError

# Knowledge distillation of the fused target (docs/method.md, "Step 4: train with KD").
KD_LAMBDA = 0.5  # weight of the distillation term [choice]
KD_TEMPERATURE = 4.0  # softmax temperature T [choice]
KD_T2 = True  # multiply the KD term by T^2 [choice]


def kd_pull(kd_lambda: float, temperature: float, t2: bool = KD_T2) -> float:
    """The KD term's pull towards the teacher relative to CE's towards the labels: the ratio
    of their gradient scales, lambda / (1 - lambda), times 1 / T^2 without the T^2 factor
    (the soft-target gradient shrinks as 1 / T^2). At lambda 0.5 with T^2 it is 1."""
    if kd_lambda >= 1:
        return float("inf")
    return kd_lambda / (1 - kd_lambda) / (1.0 if t2 else temperature * temperature)


def check_kd(kd_lambda: float, temperature: float) -> None:
    """:class:`ConfigError` unless the KD weight is in [0, 1] and the temperature is > 0."""
    if not 0 <= kd_lambda <= 1:
        raise ConfigError(f"kd_lambda={kd_lambda!r}: must be in [0, 1]")
    if not temperature > 0:
        raise ConfigError(f"kd_temperature={temperature!r}: must be > 0")


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
          temperature: float = KD_TEMPERATURE, t2: bool = KD_T2) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch
    (without the T^2 when ``t2`` is False)."""
    t = temperature
    scale = t * t if t2 else 1.0
    return F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.detach().float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * scale


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
            kd_lambda: float = KD_LAMBDA, temperature: float = KD_TEMPERATURE,
            t2: bool = KD_T2) -> torch.Tensor:
    """The PruneFuse training loss (docs/method.md, "Step 4: train with KD").

    Args:
        student_logits: z_F, the fused network's logits, shape (N, K).
        teacher_logits: z_p, the frozen pruned network's logits (detached here).
        targets: labels, shape (N,).
        kd_lambda: weight of the KD term, in [0, 1].
        temperature: T > 0.
        t2: multiply the KD term by T^2 (ours); False = the authors' code.

    Returns:
        Scalar loss; gradients reach the student only.
    """
    check_kd(kd_lambda, temperature)
    ce = F.cross_entropy(student_logits.float(), targets)
    if kd_lambda == 0:
        return ce
    kl = kd_kl(student_logits, teacher_logits, temperature, t2)
    return (1 - kd_lambda) * ce + kd_lambda * kl


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Eval mode, no gradients: the teacher's BN statistics and weights stay as trained."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
