"""Tests for prunefuse.data: each loader reads tiny files written here in the real on-disk
format; augment is checked against a per-image reference replaying the same random draws."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from prunefuse import augment as A
from prunefuse import data
from prunefuse.augment import augment, normalize
from prunefuse.data import DatasetNotFoundError, load_dataset, write_bundle

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA not available"))]


# ----------------------------------------------------------------------------- Fashion-MNIST

def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    """Write ``arr`` (uint8) as an IDX file: magic 0x00 0x00 0x08 ndim, big-endian dims."""
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_fashion(d: Path, n_train: int = 20, n_test: int = 10, compress: bool = True):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, arr in arrays.items():
        write_idx(d / name, arr, compress)
    return arrays


@pytest.fixture
def no_system_fashion(tmp_path, monkeypatch):
    """Hide the Debian copy and torchvision's cache so the loader reads the test's files."""
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    monkeypatch.setenv("PRUNEFUSE_DATA", str(tmp_path / "empty-cache"))


@pytest.mark.parametrize("sub,compress", [("", True), ("FashionMNIST/raw", True), ("", False)])
def test_fashion_mnist_roundtrip(tmp_path, no_system_fashion, sub, compress):
    arrays = write_fashion(tmp_path / sub, compress=compress)
    ds = load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.x_train.is_contiguous()
    assert (ds.num_classes, ds.padding, ds.in_channels, ds.image_size) == (10, 4, 3, 32)
    for split, stem in (("train", "train"), ("test", "t10k")):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        orig = torch.from_numpy(arrays[f"{stem}-images-idx3-ubyte"])
        assert torch.equal(x[:, :, 2:30, 2:30], orig[:, None].expand(-1, 3, -1, -1))
        border = x.clone()
        border[:, :, 2:30, 2:30] = 0
        assert border.sum() == 0  # 2 px of zeros on every side
        assert torch.equal(y, torch.from_numpy(arrays[f"{stem}-labels-idx1-ubyte"]).long())


def test_fashion_mnist_truncated_gzip_names_file(tmp_path, no_system_fashion):
    write_fashion(tmp_path)
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*truncated"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_mnist_short_payload_names_file(tmp_path, no_system_fashion):
    write_fashion(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])  # valid gzip, but fewer bytes than the header declares
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: header declares dims"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_mnist_bad_magic_and_labels(tmp_path, no_system_fashion):
    arrays = write_fashion(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train-labels-idx1-ubyte"][:-1])
    with pytest.raises(ValueError, match="19 labels for 20 images"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(20, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels outside \[0, 9\]"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((20, 1, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="bad magic number"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_mnist_missing_lists_paths(tmp_path, no_system_fashion):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    msg = str(info.value)
    for path in (tmp_path / "no-system-copy", tmp_path, tmp_path / "FashionMNIST" / "raw"):
        assert str(path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg


def test_fashion_mnist_failed_download_is_chained(tmp_path, no_system_fashion, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed") as info:
        load_dataset("fashion-mnist", root=tmp_path, download=True)
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert str(tmp_path) in str(info.value)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explicit_data_root_wins_and_is_recorded(tmp_path, monkeypatch):
    system, cache, mine = tmp_path / "debian", tmp_path / "cache", tmp_path / "mine"
    write_fashion(system, n_train=20)
    write_fashion(cache / "FashionMNIST" / "raw", n_train=16)
    write_fashion(mine, n_train=12, compress=False)
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", system)
    monkeypatch.setenv("PRUNEFUSE_DATA", str(cache))
    ds = load_dataset("fashion-mnist", root=mine, download=False)
    assert ds.num_train == 12 and ds.source["source"] == "data_root"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    assert ds.source["files"] == [{"path": str((mine / n).resolve()),
                                   "bytes": (mine / n).stat().st_size,
                                   "sha256": _sha256(mine / n)} for n in names]
    # no data_root: the Debian copy, then torchvision's cache
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.num_train == 20 and ds.source["source"] == "debian"
    assert ds.source["files"][0]["path"] == str(system / "train-images-idx3-ubyte.gz")
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.num_train == 16 and ds.source["source"] == "cache"


def test_corrupt_or_partial_data_root_fails_in_one_line(tmp_path, no_system_fashion):
    mine = tmp_path / "mine"
    write_fashion(mine)
    path = mine / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    cfg = {"dataset": "fashion-mnist", "data_root": str(mine), "max_train": None,
           "max_test": None}
    with pytest.raises(data.DataError) as info:
        data.check_data(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"dataset='fashion-mnist', data_root={str(mine)!r}: {path}: ")
    assert "truncated" in msg
    path.unlink()
    with pytest.raises(data.DataError, match=r"holds \[.*\] but not \['t10k-images-idx3-ubyte'\]"):
        data.check_data(cfg)


def test_corrupt_data_root_leaves_no_run_folder(tmp_path, no_system_fashion, capsys):
    from prunefuse.cli import main

    mine = tmp_path / "mine"
    write_fashion(mine)
    (mine / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b")
    out = tmp_path / "runs"
    assert main(["run", "--profile", "smoke", "--out", str(out), "dataset=fashion-mnist",
                 f"data_root={mine}", "max_train=20", "max_test=10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"data_root={str(mine)!r}" in err
    assert "train-labels-idx1-ubyte.gz" in err and not out.exists()


# sha256 of the demo's images and labels (x_train, y_train, x_test, y_test as loaded: uint8
# 32x32x3 and int64), read from the official files with max_train=4000, max_test=2000.
DEMO_SUBSET_SHA256 = "e7117d798f45263992fae2eca83ff571b9e2b623dc885e4b4b18b35d154fa9f6"


def _subset_sha(ds) -> str:
    h = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        h.update(getattr(ds, key).numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def offline(monkeypatch):
    """No Debian copy, no cache, and a downloader that must not be called."""
    import torchvision.datasets

    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    return calls


def test_bundled_subset_is_the_demo_draw(tmp_path, no_system_fashion, offline):
    ds = load_dataset("fashion-mnist", max_train=4000, max_test=2000)
    assert ds.source["source"] == "bundled" and offline == []
    bundle = data.BUNDLED["fashion-mnist"]
    assert ds.source["files"] == [{"path": str(bundle.resolve()), "bytes": bundle.stat().st_size,
                                   "sha256": _sha256(bundle)}]
    assert _subset_sha(ds) == DEMO_SUBSET_SHA256
    assert bundle.stat().st_size < 3_000_000
    assert "MIT" in (bundle.parent / "LICENSE-fashion-mnist.txt").read_text()
    # a smaller draw is a sub-draw of the bundled one: the same images as from the full data
    small = load_dataset("fashion-mnist", max_train=1000, max_test=7)
    idx = torch.randperm(4000, generator=torch.Generator().manual_seed(0))  # not the draw
    assert small.num_train == 1000 and not torch.equal(small.x_train, ds.x_train[idx[:1000]])
    full_draw = data._draw(60000, 1000, "max_train")
    held = torch.from_numpy(np.load(bundle)["train_index"].astype(np.int64))
    pos = torch.searchsorted(held, full_draw)
    assert torch.equal(held[pos], full_draw) and torch.equal(small.x_train, ds.x_train[pos])


@pytest.mark.parametrize("max_train,max_test", [(None, 2000), (4001, 2000), (4000, 2001)])
def test_bundled_subset_refuses_what_it_does_not_hold(tmp_path, no_system_fashion, offline,
                                                      max_train, max_test):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", max_train=max_train, max_test=max_test)
    msg = str(info.value)
    assert "download failed" in msg and len(offline) == 1
    assert f"holds only the images of max_train<=4000 and max_test<=2000; got " \
           f"max_train={max_train}, max_test={max_test}" in msg


def test_bundled_subset_equals_the_full_data_draw():
    if not data.FASHION_MNIST_SYSTEM_DIR.is_dir():  # the hash above stands for the full data
        ds = load_dataset("fashion-mnist", max_train=4000, max_test=2000, download=False)
        assert ds.source["source"] == "bundled" and _subset_sha(ds) == DEMO_SUBSET_SHA256
        return
    ds = load_dataset("fashion-mnist", max_train=4000, max_test=2000, download=False)
    assert ds.source["source"] == "debian" and _subset_sha(ds) == DEMO_SUBSET_SHA256


def _can_hide_debian() -> bool:
    probe = ["unshare", "-m", "-n", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.slow
def test_demo_profile_runs_offline_without_debian_files(tmp_path):
    """A fresh machine: no Debian package, empty cache, no network (a mount and network
    namespace where ``unshare`` works; else the same hidden in the subprocess)."""
    out = tmp_path / "runs"
    args = ["run", "--profile", "demo", "--out", str(out), "--no-progress", "arch=resnet8",
            "selector=random", "budgets=[0.1]", "target_epochs=1", "selector_epochs=1"]
    env = {**os.environ, "HOME": str(tmp_path), "PRUNEFUSE_DATA": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(data.__file__).parents[2])}
    if _can_hide_debian():
        script = ("[ -d /usr/share/datasets ] && mount -t tmpfs none /usr/share/datasets; "
                  'exec "$@"')
        cmd = ["unshare", "-m", "-n", "sh", "-c", script, "sh", sys.executable, "-m",
               "prunefuse.cli", *args]
    else:
        code = ("import pathlib, sys, urllib.error, torchvision.datasets\n"
                "from prunefuse import data\n"
                "data.FASHION_MNIST_SYSTEM_DIR = pathlib.Path('/nonexistent')\n"
                "def no_network(*a, **k): raise urllib.error.URLError('no network')\n"
                "torchvision.datasets.FashionMNIST = no_network\n"
                "from prunefuse.cli import main\n"
                "sys.exit(main(sys.argv[1:]))\n")
        cmd = [sys.executable, "-c", code, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = [p for p in out.iterdir() if (p / "DONE").exists()]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["data"]["source"] == "bundled" and record["pool_size"] == 4000
    assert record["data"]["files"][0]["sha256"] == _sha256(data.BUNDLED["fashion-mnist"])


@pytest.mark.realdata
def test_real_fashion_mnist():
    if not data.FASHION_MNIST_SYSTEM_DIR.is_dir():
        pytest.skip(f"{data.FASHION_MNIST_SYSTEM_DIR} absent; "
                    "apt-get install dataset-fashion-mnist")
    ds = load_dataset("fashion-mnist", download=False)
    assert (ds.num_train, ds.num_test) == (60000, 10000)
    assert ds.x_train.shape == (60000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert set(ds.y_train.unique().tolist()) == set(range(10))
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    # the hardcoded statistics are those of the padded training set
    pixels = ds.x_train[:, 0].double() / 255
    assert pixels.mean().item() == pytest.approx(ds.mean[0], abs=1e-4)
    assert pixels.std().item() == pytest.approx(ds.std[0], abs=1e-4)


@pytest.mark.slow
@pytest.mark.realdata
def test_write_bundle_remakes_the_shipped_subset_from_the_official_files(tmp_path):
    if not data.FASHION_MNIST_SYSTEM_DIR.is_dir():
        pytest.skip(f"{data.FASHION_MNIST_SYSTEM_DIR} absent; "
                    "apt-get install dataset-fashion-mnist")
    full = load_dataset("fashion-mnist", download=False)
    assert full.source["source"] == "debian"
    made = write_bundle(full, tmp_path / "subset.npz", max_train=4000, max_test=2000)
    with np.load(made) as new, np.load(data.BUNDLED["fashion-mnist"]) as shipped:
        assert sorted(new.files) == sorted(shipped.files)
        for key in shipped.files:
            assert np.array_equal(new[key], shipped[key]), key


# ----------------------------------------------------------------------------------- CIFAR

def write_cifar_batch(path: Path, n: int, label_key: bytes, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"test", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, num_classes, n).tolist(),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [0] * n
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)  # the official batches are protocol-2 pickles
    return batch


CIFAR_LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels", 100),
}


def write_cifar(root: Path, name: str):
    folder, train, test, key, k = CIFAR_LAYOUTS[name]
    batches = [write_cifar_batch(root / folder / f, 4, key, k, i) for i, f in enumerate(train)]
    return batches, write_cifar_batch(root / folder / test, 3, key, k, 99)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_roundtrip(tmp_path, name):
    train, test = write_cifar(tmp_path, name)
    key, k = CIFAR_LAYOUTS[name][3:]
    ds = load_dataset(name, root=tmp_path, download=False)
    assert ds.x_train.shape == (4 * len(train), 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8 and ds.y_test.dtype == torch.int64
    assert (ds.num_classes, ds.padding) == (k, 4)
    want = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32)
    assert torch.equal(ds.x_train, torch.from_numpy(want))
    assert ds.y_train.tolist() == sum((b[key] for b in train), [])
    assert torch.equal(ds.x_test, torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32)))
    assert ds.y_test.tolist() == test[key]


def test_cifar_truncated_pickle_names_file(tmp_path):
    write_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="data_batch_3: truncated or corrupt"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar_bad_rows_and_labels(tmp_path):
    write_cifar(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-python" / "test"
    bad = {b"data": np.zeros((3, 3000), dtype=np.uint8), b"fine_labels": [0, 1, 2]}
    path.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match=r"test: data has shape \(3, 3000\)"):
        load_dataset("cifar100", root=tmp_path, download=False)
    bad = {b"data": np.zeros((3, 3072), dtype=np.uint8), b"fine_labels": [0, 1]}
    path.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        load_dataset("cifar100", root=tmp_path, download=False)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tiny-imagenet"])
def test_missing_with_download_false_lists_paths(tmp_path, name):
    with pytest.raises(DatasetNotFoundError, match="download=True") as info:
        load_dataset(name, root=tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "http" in str(info.value)


def test_cifar_failed_download_is_chained(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    def offline(url, root, md5=None):
        assert url == data.CIFAR10_URL and md5 == data.CIFAR10_MD5
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed: .*no network") as info:
        load_dataset("cifar10", root=tmp_path, download=True)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


# ---------------------------------------------------------------------------- Tiny ImageNet

def smooth_image(seed: int, gray: bool = False) -> np.ndarray:
    """8x8 blocks of flat colour: JPEG reproduces these to within a few grey levels."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (8, 8, 1 if gray else 3), dtype=np.uint8)
    return img.repeat(8, 0).repeat(8, 1)


def write_tiny_imagenet(root: Path):
    """Two classes (written unsorted in wnids.txt), two train images each, three val images;
    one train image is grayscale. Returns the source arrays as (N, 3, 64, 64) tensors."""
    base = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    train, y_train = [], []
    for label, w in enumerate(sorted(wnids)):
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(2):
            gray = (w, i) == ("n02", 1)
            img = smooth_image(10 * label + i, gray)
            Image.fromarray(img[..., 0] if gray else img).save(
                base / "train" / w / "images" / f"{w}_{i}.JPEG", quality=95, subsampling=0)
            train.append(np.broadcast_to(img, (64, 64, 3)))
            y_train.append(label)
    lines, test, y_test = [], [], []
    for i, w in enumerate(["n01", "n02", "n01"]):
        img = smooth_image(100 + i)
        Image.fromarray(img).save(base / "val" / "images" / f"val_{i}.JPEG", quality=95,
                                  subsampling=0)
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
        test.append(img)
        y_test.append(sorted(wnids).index(w))
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")

    def chw(imgs):
        return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    return chw(train), y_train, chw(test), y_test


def test_tiny_imagenet_roundtrip_and_cache(tmp_path):
    x_train, y_train, x_test, y_test = write_tiny_imagenet(tmp_path)
    ds = load_dataset("tiny-imagenet", root=tmp_path, download=False)
    assert ds.x_train.shape == (4, 3, 64, 64) and ds.x_test.shape == (3, 3, 64, 64)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert (ds.num_classes, ds.padding, ds.image_size) == (200, 8, 64)
    assert ds.y_train.tolist() == y_train and ds.y_test.tolist() == y_test
    # JPEG is lossy: allow a few grey levels on average
    assert (ds.x_train.float() - x_train.float()).abs().mean() < 4
    assert (ds.x_test.float() - x_test.float()).abs().mean() < 4
    gray = ds.x_train[3]  # n02_1, the grayscale JPEG, decoded to RGB
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])

    cache = tmp_path / "tiny-imagenet-200" / data.TINY_IMAGENET_CACHE
    assert cache.is_file()
    for jpeg in (tmp_path / "tiny-imagenet-200").rglob("*.JPEG"):
        jpeg.unlink()  # a second load that still works can only have read the cache
    again = load_dataset("tiny-imagenet", root=tmp_path, download=False)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(again, key), getattr(ds, key))


def test_tiny_imagenet_errors(tmp_path):
    write_tiny_imagenet(tmp_path)
    base = tmp_path / "tiny-imagenet-200"
    (base / "train" / "n01" / "images" / "n01_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="n01_0.JPEG: unreadable image"):
        load_dataset("tiny-imagenet", root=tmp_path, download=False)
    (base / "val" / "val_annotations.txt").unlink()
    with pytest.raises(ValueError, match="val_annotations.txt: missing"):
        load_dataset("tiny-imagenet", root=tmp_path, download=False)
    for f in (base / "train" / "n02" / "images").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="n02.*class folder missing or empty"):
        load_dataset("tiny-imagenet", root=tmp_path, download=False)
    assert not (base / data.TINY_IMAGENET_CACHE).exists()  # no cache of a broken dataset


def test_tiny_imagenet_rebuilds_a_corrupt_cache(tmp_path):
    write_tiny_imagenet(tmp_path)
    cache = tmp_path / "tiny-imagenet-200" / data.TINY_IMAGENET_CACHE
    first = load_dataset("tiny-imagenet", root=tmp_path, download=False)
    cache.write_bytes(cache.read_bytes()[:1000])  # as if a crash had cut it short
    again = load_dataset("tiny-imagenet", root=tmp_path, download=False)
    assert torch.equal(again.x_train, first.x_train)
    assert torch.load(cache, weights_only=True)["x_train"].shape == (4, 3, 64, 64)


# ---------------------------------------------------------------------------------- augment

def reference_augment(x, padding, dy, dx, flips):
    """One image at a time: pad, crop at the drawn offset, flip if drawn."""
    out = torch.empty_like(x)
    h, w = x.shape[2:]
    for i in range(len(x)):
        img = F.pad(x[i], (padding,) * 4)[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = img.flip(-1) if flips[i] else img
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("padding,flip", [(4, True), (2, False), (0, True), (8, True)])
def test_augment_matches_reference(device, dtype, padding, flip):
    x = torch.randint(1, 256, (16, 3, 12, 10), generator=torch.Generator().manual_seed(1))
    x = x.to(device=device, dtype=dtype)
    out = augment(x, padding, torch.Generator(device).manual_seed(7), flip=flip)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    dy, dx, flips = A._draw_offsets(len(x), padding, flip,
                                       torch.Generator(device).manual_seed(7), x.device)
    assert dy.min() >= 0 and dy.max() <= 2 * padding and dx.max() <= 2 * padding
    assert torch.equal(out, reference_augment(x, padding, dy, dx, flips))
    again = augment(x, padding, torch.Generator(device).manual_seed(7), flip=flip)
    assert torch.equal(out, again)
    if padding == 8:  # wider than the 12x10 image: some crops are almost all padding
        assert (out == 0).any()


def test_augment_identity_and_randomness():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(augment(x, 0, flip=False), x)
    a = augment(x, 4, torch.Generator().manual_seed(0))
    b = augment(x, 4, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="padding=-1"):
        augment(x, -1)


# -------------------------------------------------------------------------------- normalize

def test_normalize_matches_manual():
    x = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32 and out.shape == x.shape
    for c in range(3):
        manual = (x[:, c].double() / 255 - mean[c]) / std[c]
        assert torch.allclose(out[:, c].double(), manual, atol=1e-5)
    assert normalize(x, mean, std, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="3 channels"):
        normalize(x, (0.5,), (0.5,))
    m, s = A.norm_constants(mean, std, x.device)
    assert torch.equal(normalize(x, m, s), out)
    with pytest.raises(ValueError, match="3 channels"):
        normalize(x, *A.norm_constants((0.5,), (0.5,), x.device))


# ------------------------------------------------------------------------ synthetic, API

def test_synthetic_seeded():
    a = load_dataset("synthetic", seed=3)
    b = load_dataset("synthetic", seed=3)
    c = load_dataset("synthetic", seed=4)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (512, 3, 32, 32) and a.x_test.shape == (256, 3, 32, 32)
    small = load_dataset("synthetic", num_train=8, num_test=4, num_classes=3, image_size=16,
                         channels=1)
    assert small.x_train.shape == (8, 1, 16, 16) and small.y_train.max() < 3
    assert small.describe() == "synthetic: 8 train / 4 test, 1x16x16, 3 classes"
    with pytest.raises(ValueError, match="num_train=0"):
        load_dataset("synthetic", num_train=0)


def test_unknown_dataset_and_option():
    with pytest.raises(ValueError, match=r"dataset='foo': unknown; choose one of \[.*'cifar10'"):
        load_dataset("foo")
    with pytest.raises(ValueError, match="not options of dataset 'cifar10'"):
        load_dataset("cifar10", num_train=5)


def test_max_train_subset():
    full = load_dataset("synthetic")
    sub = load_dataset("synthetic", max_train=100, max_test=10)
    assert (sub.num_train, sub.num_test) == (100, 10)
    again = load_dataset("synthetic", max_train=100)
    assert torch.equal(sub.x_train, again.x_train)
    rows = {tuple(r.flatten()[:32].tolist()) for r in full.x_train}
    assert all(tuple(r.flatten()[:32].tolist()) in rows for r in sub.x_train)
    for bad in (0, 513, 2.5, True):
        with pytest.raises(ValueError, match=f"max_train={bad!r}"):
            load_dataset("synthetic", max_train=bad)


def test_to_keeps_uint8():
    ds = load_dataset("synthetic", num_train=4, num_test=2)
    moved = ds.to("cpu")
    assert moved.x_train.dtype == torch.uint8 and moved.name == "synthetic"
    assert torch.equal(moved.x_test, ds.x_test)

