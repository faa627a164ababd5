"""In-memory image datasets: registered loaders, checks and the bundled subset.

Every dataset is held as uint8 tensors ``(N, C, H, W)`` (as in airbench), so a whole split
can sit on the GPU and be cropped, flipped and normalized one batch at a time
(:mod:`prunefuse.augment`) with no PIL and no DataLoader workers in the training loop.
Loaders are registered by name: ``load_dataset("cifar10", root="data")``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import inspect
import io
import os
import pickle
import struct
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..augment import augment, norm_constants, normalize  # noqa: F401 (importable from here too)

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
# Shipped with the package, for a machine with no copy of the data and no network: the images
# the ``demo`` and ``cpu`` profiles draw (``max_train=4000``, ``max_test=2000``), nothing else.
BUNDLED = {"fashion-mnist": Path(__file__).parent.parent / "bundled" / "fashion-mnist-subset.npz"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the places looked at and could not be downloaded."""


class DataError(ValueError):
    """The run's data is missing or unreadable: one line naming the dataset, data_root and
    file. The runner reports it as a :class:`~prunefuse.config.ConfigError`, like any bad
    parameter, before a run folder exists (see :func:`check_data`)."""


@dataclass
class ImageDataset:
    """A train/test split held as uint8 image tensors and int64 labels.

    ``mean``/``std`` are per-channel statistics in [0, 1] pixel units, for
    :func:`prunefuse.augment.normalize`; ``padding`` is the random-crop padding used by
    :func:`prunefuse.augment.augment` (4 px at 32x32, 8 at 64x64).
    ``source`` says where the data was read, for the run record: ``{"source": where,
    "files": [{"path", "bytes", "sha256"}, ...]}`` (empty for data made in memory).
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
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"x_{split}: expected uint8 (N, C, H, W), "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise ValueError(f"y_{split}: expected int64 ({len(x)},), "
                                 f"got {y.dtype} {tuple(y.shape)}")
            bad = y[(y < 0) | (y >= self.num_classes)]
            if len(bad):
                raise ValueError(f"y_{split}: label {int(bad[0])} is outside num_classes="
                                 f"{self.num_classes} (allowed: 0 to {self.num_classes - 1}); "
                                 "fix the labels or num_classes")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"x_test: images are {_shape(self.x_test)}, the training images "
                             f"{_shape(self.x_train)}; train and test must share one size")
        if not len(self.mean) == len(self.std) == self.in_channels:
            raise ValueError(f"mean/std: need {self.in_channels} values each (one per channel)")

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> int:
        """The height; the side of a square image."""
        return self.x_train.shape[2]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image: what a model's example input and MACs use."""
        return tuple(self.x_train.shape[1:])

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
        return (f"{self.name}: {self.num_train} train / {self.num_test} test, "
                f"{_shape(self.x_train)}, {self.num_classes} classes")


def _shape(x: torch.Tensor) -> str:
    """``CxHxW`` of a batch of images."""
    return "x".join(str(d) for d in x.shape[1:])


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, without loading it: its full splits' sizes, classes and image
    shape (after the loader's conversion), and its class names in label order, if any."""

    num_train: int
    num_test: int
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...] | None = None


DATASET_INFO: dict[str, DatasetInfo] = {}


def register_dataset(name: str, info: DatasetInfo | None = None) -> Callable:
    """Decorator adding a loader ``fn(root: Path, download: bool, **options)`` to ``DATASETS``,
    with what the dataset is (``info``; without it, :func:`dataset_info` loads it once to see)."""
    def wrap(fn: Callable[..., ImageDataset]) -> Callable[..., ImageDataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        if info is not None:
            DATASET_INFO[name] = info
        return fn
    return wrap


def dataset_info(name: str) -> DatasetInfo:
    """The registered :class:`DatasetInfo` of ``name``; for a loader registered without one,
    read from the dataset itself (loaded once, without downloading)."""
    if name not in DATASET_INFO:
        if name not in DATASETS:
            raise ValueError(f"dataset={name!r}: unknown; choose one of {sorted(DATASETS)}")
        ds = load_dataset(name, download=False)
        DATASET_INFO[name] = DatasetInfo(ds.num_train, ds.num_test, ds.num_classes,
                                         ds.in_channels, ds.image_size)
    return DATASET_INFO[name]


def default_root() -> Path:
    """``$PRUNEFUSE_DATA`` if set, else ``~/.cache/prunefuse/data``."""
    return Path(os.environ.get("PRUNEFUSE_DATA", "~/.cache/prunefuse/data")).expanduser()


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True,
                 max_train: int | None = None, max_test: int | None = None,
                 pool_seed: int = 0, **kwargs) -> ImageDataset:
    """Load a registered dataset into memory.

    A dataset with a subset shipped in the package (:data:`BUNDLED`: Fashion-MNIST, the images
    of the ``demo`` and ``cpu`` profiles) falls back to it when no copy is found on disk and
    the subset holds every image asked for; then nothing is downloaded. The images are the
    ones the same ``max_train``/``max_test`` draw from the full data, so a run reads the same
    images wherever they come from; ``ds.source`` says where.

    Args:
        name: one of ``DATASETS`` (``fashion-mnist``, ``cifar10``, ``cifar100``,
            ``tiny-imagenet``, ``synthetic``).
        root: directory holding (or receiving) the data; default :func:`default_root`.
        download: fetch missing data from the official URL; if False, or if the download
            fails, raise :class:`DatasetNotFoundError` listing every path looked at.
        max_train: keep a random subset of this many training images (seeded permutation
            with ``pool_seed``, original order kept), or all if None.
        max_test: the same for the test split (always seed 0: one test set for every run).
        pool_seed: seed of the ``max_train`` draw; 0 is the one pool every earlier record
            shares, a run's own seed gives each seed its own pool.
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
    bundle = BUNDLED.get(name)
    covered = bundle is not None and not kwargs and _bundle_covers(bundle, max_train, max_test)
    try:
        ds = loader(root=root, download=download and not covered, **kwargs)
    except DatasetNotFoundError as err:
        if not covered:
            if bundle is not None and bundle.is_file():
                n_train, n_test = _bundle_sizes(bundle)
                err.args = (f"{err}\nThe subset shipped with prunefuse ({bundle.name}) holds "
                            f"only the images of max_train<={n_train} and max_test<={n_test}; "
                            f"got max_train={max_train}, max_test={max_test}.",)
            raise
        ds = _load_bundle(name, bundle, max_train, max_test, pool_seed)
    else:
        full = ds.num_train
        ds.x_train, ds.y_train = _subset(ds.x_train, ds.y_train, max_train, "max_train", pool_seed)
        ds.x_test, ds.y_test = _subset(ds.x_test, ds.y_test, max_test, "max_test")
        ds.source["pool"] = pool_record(full, max_train, pool_seed)
    return ds


def pool_record(full: int, n: int | None, seed: int) -> dict:
    """Which training images a run's pool holds, for its record: the draw's size and seed and
    the sha256 of its indices (int64, ascending), so two runs' pools compare by one string."""
    idx = _draw(full, n, "max_train", seed)
    idx = torch.arange(full) if idx is None else idx
    return {"of": full, "size": len(idx), "seed": seed if n is not None else None,
            "indices_sha256": hashlib.sha256(idx.to(torch.int64).numpy().tobytes()).hexdigest()}


def _draw(full: int, n: int | None, param: str, seed: int = 0) -> torch.Tensor | None:
    """Indices (ascending) of the ``n``-image subset of a ``full``-image split drawn with
    ``seed``."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= full:
        raise ValueError(f"{param}={n!r}: must be a positive int <= {full} (available images)")
    return torch.randperm(full, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, param: str, seed: int = 0):
    idx = _draw(len(x), n, param, seed)
    if idx is None:
        return x, y
    return x[idx].contiguous(), y[idx].contiguous()


def pool_seed_of(cfg: dict) -> int:
    """The seed of a run's pool draw: its own seed with ``pool_draw="seed"``, else 0 (the
    one pool shared by every seed)."""
    return cfg["seed"] if cfg.get("pool_draw", "fixed") == "seed" else 0


def check_data(cfg: dict) -> ImageDataset:
    """Load a run's data (keys ``dataset``, ``data_root``, ``max_train``, ``max_test``,
    ``pool_draw``), or
    fail in one line naming the dataset, ``data_root`` and the file at fault.

    Called before a run folder is created (docs/method.md, "Protocol": a run's record
    names the data files it read), so that missing or corrupt data leaves nothing behind.

    Raises:
        DataError: the data is nowhere to be found, or a file is truncated or corrupt.
    """
    where = f"dataset={cfg['dataset']!r}, data_root={cfg.get('data_root')!r}"
    try:
        return load_dataset(cfg["dataset"], root=cfg.get("data_root"),
                            max_train=cfg.get("max_train"), max_test=cfg.get("max_test"),
                            pool_seed=pool_seed_of(cfg), **dataset_options(cfg))
    except (DatasetNotFoundError, ValueError) as err:
        line = "; ".join(part.strip() for part in str(err).splitlines() if part.strip())
        raise DataError(f"{where}: {line}") from err


# Run parameters that reach a dataset's loader as keywords, when it takes them and they are
# set (not None): imagefolder's options, and synthetic's image_size and channels.
DATA_OPTIONS = ("image_size", "channels", "test_fraction", "classes")


def dataset_options(cfg: dict) -> dict:
    """The :data:`DATA_OPTIONS` of a run config that its dataset's loader takes."""
    loader = DATASETS.get(cfg["dataset"])
    takes = inspect.signature(loader).parameters if loader else {}
    return {k: cfg[k] for k in DATA_OPTIONS if k in takes and cfg.get(k) is not None}


def _file_record(path: Path, content: bytes | None = None) -> dict:
    """Path, size and sha256 of one data file read (``content``: its bytes, if in memory)."""
    digest = hashlib.sha256()
    if content is not None:
        digest.update(content)
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return {"path": str(Path(path).resolve()), "bytes": Path(path).stat().st_size,
            "sha256": digest.hexdigest()}


def _bundle_sizes(bundle: Path) -> tuple[int, int]:
    with np.load(bundle) as z:
        return len(z["train_index"]), len(z["test_index"])


def _bundle_covers(bundle: Path, max_train: int | None, max_test: int | None) -> bool:
    if max_train is None or max_test is None or not bundle.is_file():
        return False
    n_train, n_test = _bundle_sizes(bundle)
    return max_train <= n_train and max_test <= n_test


def _load_bundle(name: str, bundle: Path, max_train: int, max_test: int,
                 pool_seed: int = 0) -> ImageDataset:
    """The shipped subset, cut to exactly the images ``max_train``/``max_test`` draw from the
    full data (:func:`_draw`); refuses if the draw asks for an image it does not hold."""
    raw = bundle.read_bytes()
    with np.load(io.BytesIO(raw)) as z:
        arrays = {k: z[k] for k in z.files}
    out = {}
    for split, n in (("train", max_train), ("test", max_test)):
        held = torch.from_numpy(arrays[f"{split}_index"].astype(np.int64))  # ascending
        want = _draw(int(arrays[f"{split}_full"]), n, f"max_{split}",
                     pool_seed if split == "train" else 0)
        pos = torch.searchsorted(held, want).clamp(max=len(held) - 1)
        if not torch.equal(held[pos], want):
            raise DatasetNotFoundError(
                f"{bundle}: max_{split}={n} draws images this shipped subset does not hold "
                f"(torch {torch.__version__} permutes differently from the one that built it); "
                f"install the full {name} data")
        out[f"x_{split}"] = torch.from_numpy(arrays[f"x_{split}"][pos.numpy()])
        out[f"y_{split}"] = torch.from_numpy(arrays[f"y_{split}"][pos.numpy()].astype(np.int64))
    ds = _fashion_dataset(out)
    ds.source = {"source": "bundled", "files": [_file_record(bundle, raw)],
                 "pool": pool_record(int(arrays["train_full"]), max_train, pool_seed)}
    return ds


def write_bundle(ds: ImageDataset, path: str | os.PathLike, max_train: int, max_test: int) -> Path:
    """Write the subset of Fashion-MNIST ``ds`` (as loaded: 32x32, 3 channels) that
    ``max_train``/``max_test`` draw, back at 28x28 and one channel, as a compressed ``.npz``:
    how :data:`BUNDLED` was made (``ds`` read from the official files)."""
    arrays = {}
    for split, n in (("train", max_train), ("test", max_test)):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        idx = _draw(len(x), n, f"max_{split}")
        arrays.update({f"x_{split}": x[idx, 0, 2:-2, 2:-2].numpy(),
                       f"y_{split}": y[idx].numpy().astype(np.uint8),
                       f"{split}_index": idx.numpy().astype(np.int32),
                       f"{split}_full": np.int64(len(x))})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


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


def _read_idx(path: Path, ndim: int, files: list[dict]) -> np.ndarray:
    """Parse one IDX file (gzipped or not) of unsigned bytes, checking header and length;
    append its record (:func:`_file_record`) to ``files``."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
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
    files.append(_file_record(path, raw))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _checked_labels(labels, n: int, num_classes: int, path: Path) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.shape != (n,):
        raise ValueError(f"{path}: {len(y)} labels for {n} images")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{path}: labels outside [0, {num_classes - 1}]")
    return y


FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
                       "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _fashion_files(d: Path) -> dict[str, Path]:
    """Those of the four IDX files (gzipped or not) that are in ``d``."""
    found = {}
    for key, stem in FASHION_MNIST_FILES.items():
        p = next((p for p in (d / f"{stem}.gz", d / stem) if p.is_file()), None)
        if p is not None:
            found[key] = p
    return found


def _fashion_dataset(arrays: dict[str, torch.Tensor]) -> ImageDataset:
    """28x28 uint8 images ``(N, 28, 28)`` and labels -> the padded 3-channel dataset."""
    out = dict(arrays)
    for split in ("train", "test"):
        x = F.pad(arrays[f"x_{split}"], (2, 2, 2, 2))
        out[f"x_{split}"] = x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return ImageDataset("fashion-mnist", **out, num_classes=10, mean=(0.2190,) * 3,
                        std=(0.3318,) * 3, padding=4)


@register_dataset("fashion-mnist", DatasetInfo(
    60_000, 10_000, 10, 3, 32, ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                "Shirt", "Sneaker", "Bag", "Ankle boot")))
def load_fashion_mnist(root: Path, download: bool = True) -> ImageDataset:
    """Fashion-MNIST, zero-padded from 28x28 to 32x32 (2 px per side) and replicated to three
    channels, so the CIFAR architectures run unchanged.

    Looks in ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout) when ``root`` was
    given (it is not :func:`default_root`), then in ``/usr/share/datasets/fashion-mnist``
    (Debian ``dataset-fashion-mnist``), then in the default root (torchvision's cache), then
    downloads into ``root`` with torchvision. A folder holding some of the four files but not
    all is an error, not skipped. Mean/std are constants computed once over the padded 60000
    training images. ``ds.source`` names the place read and each file's size and sha256.
    """
    cache = default_root()
    places = [("debian", FASHION_MNIST_SYSTEM_DIR), ("cache", cache),
              ("cache", cache / "FashionMNIST" / "raw")]
    if root.resolve() != cache.resolve():
        places = [("data_root", root), ("data_root", root / "FashionMNIST" / "raw"), *places]
    found = None
    for where, d in places:
        paths = _fashion_files(d)
        if len(paths) == len(FASHION_MNIST_FILES):
            found = where, paths
            break
        if paths and where == "data_root":
            missing = sorted(set(FASHION_MNIST_FILES.values())
                             - {p.name.removesuffix(".gz") for p in paths.values()})
            raise ValueError(f"{d}: holds {sorted(p.name for p in paths.values())} but not "
                             f"{missing} (.gz or not); complete or remove it")
    if found is None:
        looked = [d for _, d in places]
        target = root / "FashionMNIST" / "raw"

        def fetch():
            from torchvision.datasets import FashionMNIST
            FashionMNIST(str(root), download=True)
        _fetch("Fashion-MNIST", looked, "Install it with `apt-get install dataset-fashion-mnist`.",
               download, fetch)
        paths = _fashion_files(target)
        if len(paths) != len(FASHION_MNIST_FILES):
            raise DatasetNotFoundError(f"Fashion-MNIST download left no IDX files in {target}")
        found = "download", paths
    where, paths = found
    out, files = {}, []
    for split in ("train", "test"):
        images = _read_idx(paths[f"x_{split}"], 3, files)
        out[f"x_{split}"] = torch.from_numpy(images.copy())
        out[f"y_{split}"] = _checked_labels(_read_idx(paths[f"y_{split}"], 1, files), len(images),
                                            10, paths[f"y_{split}"])
    ds = _fashion_dataset(out)
    ds.source = {"source": where, "files": files}
    return ds


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int, files: list[dict]):
    try:
        raw = path.read_bytes()
        # The official batches are pickles; only load files from a source you trust.
        batch = pickle.loads(raw, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = batch[label_key]
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: truncated or corrupt CIFAR batch ({err!r}); delete it and "
                         "re-download") from err
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    y = _checked_labels(labels, len(data), num_classes, path)
    files.append(_file_record(path, raw))
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), y


def _load_cifar(name: str, root: Path, download: bool, folder: str, train: list[str], test: str,
                label_key: bytes, num_classes: int, url: str, md5: str, mean, std) -> ImageDataset:
    base = root / folder
    where = "data_root"
    if not all((base / f).is_file() for f in [*train, test]):
        _fetch(name, [base], f"Get {url} and extract it into {root}.", download,
               lambda: _download_archive(url, root, md5))
        where = "download"
    files: list[dict] = []
    parts = [_read_cifar_batch(base / f, label_key, num_classes, files) for f in train]
    x_test, y_test = _read_cifar_batch(base / test, label_key, num_classes, files)
    return ImageDataset(name, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                        x_test, y_test, num_classes, mean, std, padding=4,
                        source={"source": where, "files": files})


@register_dataset("cifar10", DatasetInfo(
    50_000, 10_000, 10, 3, 32, ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                "horse", "ship", "truck")))
def load_cifar10(root: Path, download: bool = True) -> ImageDataset:
    """CIFAR-10 from the python batches in ``root/cifar-10-batches-py``."""
    return _load_cifar("cifar10", root, download, "cifar-10-batches-py",
                       [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10,
                       CIFAR10_URL, CIFAR10_MD5, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@register_dataset("cifar100", DatasetInfo(50_000, 10_000, 100, 3, 32))
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


@register_dataset("tiny-imagenet", DatasetInfo(100_000, 10_000, 200, 3, 64))
def load_tiny_imagenet(root: Path, download: bool = True) -> ImageDataset:
    """Tiny ImageNet (200 classes, 64x64) from ``root/tiny-imagenet-200``; the labelled val
    split serves as the test set. Classes are the sorted wnids.

    The 110000 JPEGs are decoded once and cached, as uint8 tensors, in
    ``tiny-imagenet-200/prunefuse-cache.pt``; delete that file if the images change.
    """
    base = root / "tiny-imagenet-200"
    cache = base / TINY_IMAGENET_CACHE
    tensors = None
    where = "data_root"
    if cache.is_file():
        try:
            tensors = torch.load(cache, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
            tensors = None  # a cache cut short by a crash: rebuild it from the JPEGs
    if tensors is None:
        if not (base / "wnids.txt").is_file():
            _fetch("Tiny ImageNet", [base], f"Get {TINY_IMAGENET_URL} and unzip it into {root}.",
                   download, lambda: _download_archive(TINY_IMAGENET_URL, root, TINY_IMAGENET_MD5))
            where = "download"
        tensors = _decode_tiny_imagenet(base)
        tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache
    # The decoded cache stands for the 110000 JPEGs it was made from (decoded just now or
    # before): one file to hash instead of 110000.
    return ImageDataset("tiny-imagenet", **tensors, num_classes=200,
                        mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821), padding=8,
                        source={"source": where, "files": [_file_record(cache)]})


@register_dataset("synthetic", DatasetInfo(512, 256, 10, 3, 32))
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
                        padding=max(1, image_size // 8),
                        source={"source": "synthetic (generated in memory)", "files": []})
