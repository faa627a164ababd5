"""Architectures, by name: ``build_model("resnet56", num_classes=10)``.

Every model exposes the same two-stage interface the rest of the package relies on:
``model.features(x)`` returns the pooled penultimate features (k-centers and BALD use them)
and ``model.fc`` is the classifier, so ``model(x) == model.fc(model.features(x))``.

CIFAR ResNets (He et al. 2016, section 4.2) use the "option B" shortcut where the shape
changes (1x1 conv + BN), as SVP's code does. That is what gives the counts quoted in the
literature at 10 classes (resnet20 0.272M, resnet56 0.856M, resnet110 1.73M); the
parameter-free option A gives 2,752 fewer (resnet20 0.270M).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator adding a builder ``fn(num_classes, in_channels) -> nn.Module`` to :data:`MODELS`."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = fn
        return fn

    return wrap


def build_model(
    name: str, num_classes: int, in_channels: int = 3, seed: int | None = None
) -> nn.Module:
    """Build a freshly initialised model from the registry.

    Args:
        name: a key of :data:`MODELS`, e.g. ``"resnet56"``.
        num_classes: size of the classifier output.
        in_channels: image channels (3 for RGB; Fashion-MNIST is replicated to 3).
        seed: if given, the initialisation is drawn from this seed without touching the
            global RNG state; otherwise from the global RNG.

    Returns:
        The model in train mode, on the CPU, Kaiming-normal (fan_out) convs, BN gamma=1, beta=0.
    """
    if name not in MODELS:
        raise ValueError(f"arch={name!r}: unknown architecture; choose one of {sorted(MODELS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: must be a positive integer")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels={in_channels!r}: must be a positive integer")
    if seed is None:
        return MODELS[name](num_classes=num_classes, in_channels=in_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](num_classes=num_classes, in_channels=in_channels)


def check_model(model: nn.Module, name: str, num_classes: int, example: torch.Tensor) -> None:
    """Check that a model offers what PruneFuse needs of every architecture: ``features(x)``
    returning ``(N, D)`` pooled penultimate features, an ``nn.Linear`` attribute ``fc`` from
    ``D`` to ``num_classes``, and ``model(x) == model.fc(model.features(x))`` (pool scoring
    and k-centers read the two stages; pruning keeps ``fc``'s outputs; docs/method.md,
    "Step 1: prune at initialization").

    Args:
        model: a model from the registry, freshly built.
        name: its registry name, for the message.
        num_classes: classes of the dataset.
        example: one input ``(1, C, H, W)`` of the dataset's shape.

    Raises:
        ValueError: naming the architecture and everything it lacks.
    """
    fc = getattr(model, "fc", None)
    missing = []
    if not callable(getattr(model, "features", None)):
        missing.append("a method features(x) returning the (N, D) penultimate features")
    if not isinstance(fc, nn.Linear):
        missing.append("an nn.Linear attribute fc (the classifier, D -> num_classes)")
    if missing:
        raise ValueError(f"arch={name!r}: the model lacks {' and '.join(missing)}; see the "
                         "README, \"Your data, your model\"")
    was = model.training
    model.eval()
    with torch.no_grad():
        feats, out = model.features(example), model(example)
    model.train(was)
    if feats.dim() != 2 or feats.shape[1] != fc.in_features:
        raise ValueError(f"arch={name!r}: features(x) gives shape {tuple(feats.shape)}; fc "
                         f"needs (N, {fc.in_features})")
    if fc.out_features != num_classes or not torch.allclose(out, fc(feats)):
        raise ValueError(f"arch={name!r}: model(x) must equal fc(features(x)) with "
                         f"{num_classes} outputs (got shape {tuple(out.shape)})")


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal (fan_out) for convs, gamma=1 / beta=0 for BN (docs/method.md,
    "Step 1: prune at initialization", as SVP)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; 1x1 conv + BN shortcut when the shape changes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: widths 16/32/64, n basic blocks per stage."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth={depth}: CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


for _depth in (8, 14, 20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}")(
        lambda num_classes, in_channels=3, _d=_depth: CifarResNet(_d, num_classes, in_channels)
    )


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016b): BN-ReLU-conv x3, 1x1-conv projection."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016b): BN-ReLU-3x3 conv twice, 1x1-conv
    projection (no BN) where the shape changes. The block of SVP's PreAct-ResNet-(6n+2) and,
    at widths 128/256/512, of Wide-ResNet (Zagoruyko & Komodakis 2016)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class PreActNet(nn.Module):
    """Pre-activation network for 32x32 inputs: stem conv, three stages, final BN-ReLU-pool."""

    def __init__(
        self,
        block: type[nn.Module],
        blocks_per_stage: int,
        widths: tuple[int, int, int],
        num_classes: int,
        in_channels: int = 3,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        stages, in_planes = [], 16
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(block(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model("preact-resnet164")
def preact_resnet164(num_classes: int, in_channels: int = 3) -> nn.Module:
    """Pre-activation ResNet-164, bottleneck blocks (18 per stage), 1.70M params at 10 classes."""
    return PreActNet(PreActBottleneck, 18, (16, 32, 64), num_classes, in_channels)


# SVP's PreAct-ResNet family for CIFAR (its preact8 ... preact110): depth 6n+2 from basic
# blocks, n per stage, widths 16/32/64; its preact164 is preact-resnet164 above.
for _depth in (8, 14, 20, 56, 110):
    register_model(f"preact{_depth}")(
        lambda num_classes, in_channels=3, _n=(_depth - 2) // 6: PreActNet(
            PreActBlock, _n, (16, 32, 64), num_classes, in_channels)
    )


@register_model("wrn-16-8")
def wrn_16_8(num_classes: int, in_channels: int = 3) -> nn.Module:
    """Wide-ResNet-16-8 (no dropout), 11.0M params at 10 classes."""
    return PreActNet(PreActBlock, 2, (128, 256, 512), num_classes, in_channels)


class TinyImageNetResNet18(torchvision.models.ResNet):
    """torchvision's ResNet-18 for 64x64 inputs: a 3x3 stride-1 stem and no max-pool, so the
    last stage sees 8x8 maps (the common Tiny ImageNet adaptation)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.maxpool = nn.Identity()
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


register_model("resnet18")(TinyImageNetResNet18)
