"""In-memory image datasets and batch augmentation on tensors.

Every dataset is held as uint8 tensors ``(N, C, H, W)`` (as in airbench), so a whole split
can sit on the GPU and be cropped, flipped and normalized one batch at a time with no PIL
and no DataLoader workers in the training loop. Loaders are registered by name:
``load_dataset("cifar10", root="data")``.
"""

from __future__ import annotations

import dataclasses
import gzip
import inspect
import os
import pickle
import struct
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASETS: dict[str, Callable[..., ImageDataset]] = {}

# Where the Debian package ``dataset-fashion-mnist`` installs the four IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_IMAGENET_CACHE = "prunefuse-cache.pt"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the places looked at and could not be downloaded."""


@dataclass
class ImageDataset:
    """A train/test split held as uint8 image tensors and int64 labels.

    ``mean``/``std`` are per-channel statistics in [0, 1] pixel units, for :func:`normalize`;
    ``padding`` is the random-crop padding used by :func:`augment` (4 px at 32x32, 8 at 64x64).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    padding: int

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"x_{split}: expected uint8 (N, C, H, W), "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise ValueError(f"y_{split}: expected int64 ({len(x)},), "
                                 f"got {y.dtype} {tuple(y.shape)}")
        if not len(self.mean) == len(self.std) == self.in_channels:
            raise ValueError(f"mean/std: need {self.in_channels} values each (one per channel)")

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> int:
        return self.x_train.shape[2]

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_test(self) -> int:
        return len(self.x_test)

    def to(self, device: str | torch.device) -> ImageDataset:
        """Return a copy with all four tensors on ``device`` (images stay uint8)."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return dataclasses.replace(self, **moved)

    def describe(self) -> str:
        """One line for logs, e.g. ``cifar10: 50000 train / 10000 test, 3x32x32, 10 classes``."""
        c, s = self.in_channels, self.image_size
        return (f"{self.name}: {self.num_train} train / {self.num_test} test, {c}x{s}x{s}, "
                f"{self.num_classes} classes")


def register_dataset(name: str) -> Callable:
    """Decorator adding a loader ``fn(root: Path, download: bool, **options)`` to ``DATASETS``."""
    def wrap(fn: Callable[..., ImageDataset]) -> Callable[..., ImageDataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn
    return wrap


def default_root() -> Path:
    """``$PRUNEFUSE_DATA`` if set, else ``~/.cache/prunefuse/data``."""
    return Path(os.environ.get("PRUNEFUSE_DATA", "~/.cache/prunefuse/data")).expanduser()


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True,
                 max_train: int | None = None, max_test: int | None = None,
                 **kwargs) -> ImageDataset:
    """Load a registered dataset into memory.

    Args:
        name: one of ``DATASETS`` (``fashion-mnist``, ``cifar10``, ``cifar100``,
            ``tiny-imagenet``, ``synthetic``).
        root: directory holding (or receiving) the data; default :func:`default_root`.
        download: fetch missing data from the official URL; if False, or if the download
            fails, raise :class:`DatasetNotFoundError` listing every path looked at.
        max_train: keep a random subset of this many training images (seeded permutation
            with seed 0, original order kept), or all if None.
        max_test: the same for the test split.
        **kwargs: dataset-specific options (see the loader, e.g. :func:`load_synthetic`).

    Returns:
        The :class:`ImageDataset`, on the CPU.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}: unknown; choose one of {sorted(DATASETS)}")
    loader = DATASETS[name]
    allowed = [p for p in inspect.signature(loader).parameters if p not in ("root", "download")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{unknown}: not options of dataset {name!r}; allowed: {allowed}")
    root = default_root() if root is None else Path(root).expanduser()
    ds = loader(root=root, download=download, **kwargs)
    ds.x_train, ds.y_train = _subset(ds.x_train, ds.y_train, max_train, "max_train")
    ds.x_test, ds.y_test = _subset(ds.x_test, ds.y_test, max_test, "max_test")
    return ds


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, param: str):
    if n is None:
        return x, y
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(x):
        raise ValueError(f"{param}={n!r}: must be a positive int <= {len(x)} (available images)")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n].sort().values
    return x[idx].contiguous(), y[idx].contiguous()


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


# ---------------------------------------------------------------------------------- loaders

def _fetch(what: str, looked: list[Path], hint: str, download: bool, fetch: Callable[[], None]):
    """Run ``fetch`` if allowed; else, or if it fails, raise a DatasetNotFoundError."""
    where = "\n  ".join(str(p) for p in looked)
    msg = f"{what} not found; looked in:\n  {where}\n{hint}"
    if not download:
        raise DatasetNotFoundError(msg + "\n(or pass download=True)")
    try:
        fetch()
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise DatasetNotFoundError(f"{msg}\ndownload failed: {err}") from err


def _download_archive(url: str, root: Path, md5: str) -> None:
    # Imported here so that loading data already on disk never pays for torchvision's import.
    from torchvision.datasets.utils import download_and_extract_archive
    download_and_extract_archive(url, str(root), md5=md5)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one IDX file (gzipped or not) of unsigned bytes, checking header and length."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as err:  # EOFError: truncated gzip stream
        raise ValueError(f"{path}: unreadable or truncated IDX file ({err})") from err
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 0x08, ndim]):
        raise ValueError(f"{path}: not an IDX uint8 file with {ndim} dims (bad magic number "
                         f"{data[:4].hex()!r}, want '000008{ndim:02x}')")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise ValueError(f"{path}: header declares dims {dims} = {int(np.prod(dims))} bytes but "
                         f"the file holds {len(data) - header}; truncated or corrupt, re-fetch it")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _checked_labels(labels, n: int, num_classes: int, path: Path) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.shape != (n,):
        raise ValueError(f"{path}: {len(y)} labels for {n} images")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{path}: labels outside [0, {num_classes - 1}]")
    return y


@register_dataset("fashion-mnist")
def load_fashion_mnist(root: Path, download: bool = True) -> ImageDataset:
    """Fashion-MNIST, zero-padded from 28x28 to 32x32 (2 px per side) and replicated to three
    channels, so the CIFAR architectures run on it unchanged.

    Looks in ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``), then
    ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout), then downloads there with
    torchvision. Mean/std are constants computed once over the padded 60000 training images.
    """
    files = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    looked = [FASHION_MNIST_SYSTEM_DIR, root, root / "FashionMNIST" / "raw"]

    def find(d: Path) -> dict[str, Path] | None:
        found = {}
        for key, stem in files.items():
            for p in (d / f"{stem}.gz", d / stem):
                if p.is_file():
                    found[key] = p
                    break
        return found if len(found) == len(files) else None

    paths = next((f for f in map(find, looked) if f), None)
    if paths is None:
        def fetch():
            from torchvision.datasets import FashionMNIST
            FashionMNIST(str(root), download=True)
        _fetch("Fashion-MNIST", looked, "Install it with `apt-get install dataset-fashion-mnist`.",
               download, fetch)
        paths = find(looked[-1])
        if paths is None:
            raise DatasetNotFoundError(f"Fashion-MNIST download left no IDX files in {looked[-1]}")
    out = {}
    for split in ("train", "test"):
        images = _read_idx(paths[f"x_{split}"], 3)
        y = _checked_labels(_read_idx(paths[f"y_{split}"], 1), len(images), 10, paths[f"y_{split}"])
        x = torch.from_numpy(np.pad(images, ((0, 0), (2, 2), (2, 2))))
        out[f"x_{split}"] = x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        out[f"y_{split}"] = y
    return ImageDataset("fashion-mnist", **out, num_classes=10, mean=(0.2190,) * 3,
                        std=(0.3318,) * 3, padding=4)


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int):
    try:
        with open(path, "rb") as f:
            # The official batches are pickles; only load files from a source you trust.
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = batch[label_key]
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: truncated or corrupt CIFAR batch ({err!r}); delete it and "
                         "re-download") from err
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    y = _checked_labels(labels, len(data), num_classes, path)
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), y


def _load_cifar(name: str, root: Path, download: bool, folder: str, train: list[str], test: str,
                label_key: bytes, num_classes: int, url: str, md5: str, mean, std) -> ImageDataset:
    base = root / folder
    if not all((base / f).is_file() for f in [*train, test]):
        _fetch(name, [base], f"Get {url} and extract it into {root}.", download,
               lambda: _download_archive(url, root, md5))
    parts = [_read_cifar_batch(base / f, label_key, num_classes) for f in train]
    x_test, y_test = _read_cifar_batch(base / test, label_key, num_classes)
    return ImageDataset(name, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                        x_test, y_test, num_classes, mean, std, padding=4)


@register_dataset("cifar10")
def load_cifar10(root: Path, download: bool = True) -> ImageDataset:
    """CIFAR-10 from the python batches in ``root/cifar-10-batches-py``."""
    return _load_cifar("cifar10", root, download, "cifar-10-batches-py",
                       [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10,
                       CIFAR10_URL, CIFAR10_MD5, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@register_dataset("cifar100")
def load_cifar100(root: Path, download: bool = True) -> ImageDataset:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python``."""
    return _load_cifar("cifar100", root, download, "cifar-100-python", ["train"], "test",
                       b"fine_labels", 100, CIFAR100_URL, CIFAR100_MD5,
                       (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def _decode_64(path: Path) -> torch.Tensor:
    # PIL, once at load time: torchvision.io's decoders are deprecated as of 0.29.
    from PIL import Image
    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))  # a few train JPEGs are grayscale
    except OSError as err:  # includes PIL.UnidentifiedImageError and truncated files
        raise ValueError(f"{path}: unreadable image ({err})") from err
    if img.shape != (64, 64, 3):
        raise ValueError(f"{path}: image is {img.shape} (H, W, C), expected (64, 64, 3)")
    return torch.from_numpy(img.copy()).permute(2, 0, 1)


def _decode_tiny_imagenet(base: Path) -> dict[str, torch.Tensor]:
    wnids = sorted((base / "wnids.txt").read_text().split())
    label = {w: i for i, w in enumerate(wnids)}
    train_files, y_train = [], []
    for w in wnids:
        images = sorted((base / "train" / w / "images").glob("*.JPEG"))
        if not images:
            raise ValueError(f"{base / 'train' / w / 'images'}: class folder missing or empty")
        train_files += images
        y_train += [label[w]] * len(images)
    ann = base / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise ValueError(f"{ann}: missing; the val split needs its annotations")
    test_files, y_test = [], []
    for line in ann.read_text().splitlines():
        if line.strip():
            fname, w = line.split("\t")[:2]
            if w not in label:
                raise ValueError(f"{ann}: {fname} has wnid {w!r}, which is not in wnids.txt")
            test_files.append(base / "val" / "images" / fname)
            y_test.append(label[w])
    return {"x_train": torch.stack([_decode_64(p) for p in train_files]),
            "y_train": torch.tensor(y_train, dtype=torch.long),
            "x_test": torch.stack([_decode_64(p) for p in test_files]),
            "y_test": torch.tensor(y_test, dtype=torch.long)}


@register_dataset("tiny-imagenet")
def load_tiny_imagenet(root: Path, download: bool = True) -> ImageDataset:
    """Tiny ImageNet (200 classes, 64x64) from ``root/tiny-imagenet-200``; the labelled val
    split serves as the test set. Classes are the sorted wnids.

    The 110000 JPEGs are decoded once (a minute or two) and cached in
    ``tiny-imagenet-200/prunefuse-cache.pt`` (1.4 GB); delete that file if the images change.
    """
    base = root / "tiny-imagenet-200"
    cache = base / TINY_IMAGENET_CACHE
    tensors = None
    if cache.is_file():
        try:
            tensors = torch.load(cache, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
            tensors = None  # a cache cut short by a crash: rebuild it from the JPEGs
    if tensors is None:
        if not (base / "wnids.txt").is_file():
            _fetch("Tiny ImageNet", [base], f"Get {TINY_IMAGENET_URL} and unzip it into {root}.",
                   download, lambda: _download_archive(TINY_IMAGENET_URL, root, TINY_IMAGENET_MD5))
        tensors = _decode_tiny_imagenet(base)
        tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache
    return ImageDataset("tiny-imagenet", **tensors, num_classes=200,
                        mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821), padding=8)


@register_dataset("synthetic")
def load_synthetic(root: Path | None = None, download: bool = False, num_train: int = 512,
                   num_test: int = 256, num_classes: int = 10, image_size: int = 32,
                   channels: int = 3, seed: int = 0) -> ImageDataset:
    """Seeded random images that a small CNN learns quickly, for tests and smoke runs.

    Each class has a smooth random prototype (4x4 colour blocks upsampled, so it survives
    pooling); a sample is its class prototype plus Gaussian noise (std 40 grey levels),
    clamped to [0, 255]. Same arguments, same tensors. ``root``/``download`` are ignored.
    """
    for key, v in {"num_train": num_train, "num_test": num_test, "num_classes": num_classes,
                   "image_size": image_size, "channels": channels}.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key}={v!r}: must be a positive int")
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=g) * 255
    protos = F.interpolate(coarse, size=image_size, mode="nearest")

    def sample(n: int):
        y = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.randn(n, channels, image_size, image_size, generator=g) * 40
        return (protos[y] + noise).round().clamp(0, 255).to(torch.uint8), y

    x_train, y_train = sample(num_train)
    x_test, y_test = sample(num_test)
    pixels = x_train.double().div(255).transpose(0, 1).reshape(channels, -1)
    return ImageDataset("synthetic", x_train, y_train, x_test, y_test, num_classes,
                        tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist()),
                        padding=max(1, image_size // 8))
