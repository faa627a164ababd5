"""Your own images as a dataset, with no code: ``dataset=imagefolder data_root=PATH``.

Caveat first: every image is decoded once, at load time, into the uint8 tensors of an
:class:`~prunefuse.data.ImageDataset`, so the whole folder must fit in memory (a 100,000-image
folder of 64x64 RGB is 1.2 GB).

Two layouts, under ``data_root``:

- **folders**: one folder per class (``root/<class>/*.png``), or the same under ``root/train/``;
- **CSV**: ``root/train.csv`` or ``root/labels.csv`` (or ``data_root`` naming a ``.csv`` file)
  with a header ``path,label``; paths relative to the CSV's folder.

The test split is ``root/test/`` (class folders) or ``root/test.csv`` when present, else a
seeded ``test_fraction`` of the images (seed 0, whatever the run's seed, so that every seed of
a study shares one pool). Classes are the sorted class names (numerically when every name is a
whole number); a test class the training images lack is an error. ``image_size=None`` takes
the images as they are: they must be square and of one size (the most common), else the
error names the first image that is not and the ``image_size`` to pass; a given
``image_size`` center-crops each image to a square and resizes it to that side. Mean and std
are computed from the pool. ``ds.source`` records every file read (path, bytes, sha256, split,
label) and the class map, and goes into the run's config.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from . import ImageDataset, register_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEST_SEED = 0  # the seeded test split is one split for every run seed


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def _from_folders(base: Path, split: str) -> list[tuple[Path, str]]:
    """(image path, class name) of every image in the class folders of ``base``."""
    out = []
    folders = sorted(d for d in base.iterdir() if d.is_dir() and d.name not in ("train", "test")
                     and not d.name.startswith("."))
    if not folders:
        raise ValueError(f"{base}: no class folders; give one folder per class holding its "
                         "images, or a CSV of path,label")
    for d in folders:
        images = sorted(p for p in d.rglob("*") if _is_image(p))
        if not images:
            raise ValueError(f"{d}: class {d.name!r} holds no images ({split} split); add "
                             f"images ({', '.join(IMAGE_SUFFIXES)}) or remove the folder")
        out += [(p, d.name) for p in images]
    return out


def read_csv(path: Path, columns: tuple[str, ...] = ("path", "label")) -> list[dict[str, str]]:
    """The rows of a CSV whose header holds ``columns``, paths made absolute against the CSV's
    folder; ValueError in one line naming the file, row and what is wrong."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: unreadable CSV ({err})") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: needs a header row with columns {list(columns)}, "
                         f"lacks {missing}")
    for i, row in enumerate(rows, start=2):
        if not (row.get("path") or "").strip():
            raise ValueError(f"{path}: row {i} has no path")
        row["path"] = str((path.parent / row["path"].strip()).resolve())
        if "label" in row and row["label"] is not None:
            row["label"] = row["label"].strip()
    return rows


def _from_csv(path: Path) -> list[tuple[Path, str]]:
    out = []
    for i, row in enumerate(read_csv(path), start=2):
        if not row["label"]:
            raise ValueError(f"{path}: row {i} ({row['path']}) has no label")
        if not _is_image(Path(row["path"])):
            raise ValueError(f"{path}: row {i}: {row['path']} is not an image file "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        out.append((Path(row["path"]), row["label"]))
    return out


def find_images(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]] | None, str]:
    """The (path, class name) pairs of the training images and of the test images (None when
    the folder has no test split of its own), and the layout found."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return _from_csv(root), None, "csv"
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder; data_root names a folder of class folders "
                         "or a CSV of path,label")
    csvs = [root / n for n in ("train.csv", "labels.csv") if (root / n).is_file()]
    if (root / "train").is_dir():
        train, layout = _from_folders(root / "train", "train"), "folders"
    elif csvs:
        train, layout = _from_csv(csvs[0]), "csv"
    else:
        train, layout = _from_folders(root, "train"), "folders"
    test = None
    if (root / "test").is_dir():
        test = _from_folders(root / "test", "test")
    elif (root / "test.csv").is_file():
        test = _from_csv(root / "test.csv")
    return train, test, layout


def class_map(names: list[str]) -> dict[str, int]:
    """Class name -> label: sorted names, numerically when every name is a whole number."""
    unique = sorted(set(names))
    if all(n.lstrip("-").isdigit() for n in unique):
        unique = sorted(unique, key=int)
    return {n: i for i, n in enumerate(unique)}


def decode(path: Path, channels: int | None) -> tuple[np.ndarray, dict]:
    """One image as uint8 ``(H, W, C)`` (C = ``channels``; None: 1 for a grey image, else 3),
    read once, with its file record (path, bytes, sha256)."""
    from PIL import Image

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            mode = {1: "L", 3: "RGB"}[channels or (1 if grey else 3)]
            img = np.asarray(im.convert(mode))
    except OSError as err:  # PIL.UnidentifiedImageError and truncated files too
        raise ValueError(f"{path}: unreadable image ({err})") from None
    record = {"path": str(path.resolve()), "bytes": len(raw),
              "sha256": hashlib.sha256(raw).hexdigest()}
    return (img[:, :, None] if img.ndim == 2 else img), record


def crop_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Center-crop ``(H, W, C)`` to a square of its short side, then resize to ``size``
    (bilinear, with antialiasing, as PIL's ``resize``)."""
    from PIL import Image

    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[top:top + s, left:left + s]
    if s != size:
        mode = "L" if img.shape[2] == 1 else "RGB"
        im = Image.fromarray(img[:, :, 0] if mode == "L" else img, mode)
        img = np.asarray(im.resize((size, size), Image.BILINEAR))
        img = img[:, :, None] if img.ndim == 2 else img
    return img


def load_images(paths: list[Path], *, image_size: int | None = None,
                channels: int | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Decode image files into uint8 ``(N, C, H, W)``, with each file's record (path, bytes,
    sha256).

    Args:
        paths: the files, in the order wanted.
        image_size: side every image is center-cropped and resized to; None: the images as
            they are, which must be square and of one size (the most common).
        channels: 1 (grey) or 3 (RGB); None: 1 when every image is grey, else 3.

    Raises:
        ValueError: one line naming the file that is unreadable or of another shape.
    """
    decoded = [decode(Path(p), channels) for p in paths]
    if channels is None:  # one grey image among colour ones: all RGB
        ch = max(img.shape[2] for img, _ in decoded)
        decoded = [(np.repeat(img, ch, axis=2) if img.shape[2] != ch else img, rec)
                   for img, rec in decoded]
    images = [img for img, _ in decoded]
    if image_size is None:
        _check_sizes(images, paths)
    else:
        images = [crop_resize(img, image_size) for img in images]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, [rec for _, rec in decoded]


def _check_sizes(images: list[np.ndarray], paths: list[Path]) -> None:
    """With ``image_size=None``: every image square and of the most common size."""
    sizes = Counter(img.shape[:2] for img in images)
    (h, w), _ = sizes.most_common(1)[0]
    for img, path in zip(images, paths):
        if img.shape[0] != img.shape[1]:
            raise ValueError(f"image_size=None: {path} is {img.shape[0]}x{img.shape[1]} (HxW), "
                             f"not square; pass image_size=N to center-crop and resize every "
                             f"image to NxN (the most common size is {h}x{w})")
        if img.shape[:2] != (h, w):
            raise ValueError(f"image_size=None: {path} is {img.shape[0]}x{img.shape[1]}, the "
                             f"other images {h}x{w} (train and test alike); pass "
                             f"image_size={h} to resize every image to one size")


def _declared(classes: str | None, items: list[tuple[Path, str]]) -> dict[str, int] | None:
    """The class map that ``classes`` declares (name -> index, in its order), every item's
    label checked against it; None when not declared."""
    if classes is None:
        return None
    names = [c.strip() for c in str(classes).split(",") if c.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"classes={classes!r}: must name two or more distinct classes, "
                         "comma-separated")
    for path, label in items:
        if label not in names:
            raise ValueError(f"classes={','.join(names)}: {path} is labeled {label!r}, not "
                             "one of them; fix its label or add the class")
    return {c: i for i, c in enumerate(names)}


def _check_options(image_size, channels, test_fraction) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"image_size={image_size!r}: must be a positive number of pixels, or "
                         "null for the images' own size")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels={channels!r}: must be 1 (grey), 3 (RGB) or null (grey if "
                         "every image is grey, else RGB)")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r}: must be in (0, 1)")


@register_dataset("imagefolder")
def load_imagefolder(root: Path, download: bool = True, image_size: int | None = None,
                     channels: int | None = None, test_fraction: float = 0.2,
                     classes: str | None = None) -> ImageDataset:
    """Images from ``root`` (module docstring: the layouts, the split, the checks).

    Args:
        root: the folder (or CSV file) of ``data_root``.
        download: ignored: the images are yours.
        image_size: side in pixels every image is center-cropped and resized to; None: the
            images as they are (square, one size).
        channels: 1 (grey) or 3 (RGB); None: 1 when every image is grey, else 3.
        test_fraction: share of the images held out as the test split, seeded, when the
            folder has no ``test/`` folder or ``test.csv``.
        classes: the class names, comma-separated, in output order: every label must be one
            of them and every one must have training images; None: the labels found.

    Returns:
        The :class:`ImageDataset`; ``source`` lists every file read and the class map.

    Raises:
        ValueError: one line naming the file or parameter at fault.
    """
    _check_options(image_size, channels, test_fraction)
    train, test, layout = find_images(root)
    declared = _declared(classes, train + (test or []))
    classes = class_map([c for _, c in train]) if declared is None else declared
    if declared is not None:
        empty = sorted(set(declared) - {c for _, c in train}, key=list(declared).index)
        if empty:
            raise ValueError(f"classes={','.join(declared)}: class(es) {empty} have no "
                             "training images; add images or leave them out of classes")
    if test is not None:
        unknown = sorted({c for _, c in test} - set(classes))
        if unknown:
            raise ValueError(f"{root}: test classes {unknown} have no training images (the "
                             f"classes are {list(classes)}); add training images or remove them")
    items = train + (test or [])
    x, records = load_images([p for p, _ in items], image_size=image_size, channels=channels)
    y = torch.tensor([classes[c] for _, c in items], dtype=torch.long)
    if test is None:
        n_test = max(1, round(test_fraction * len(train)))
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(TEST_SEED))
        is_test = torch.zeros(len(train), dtype=torch.bool)
        is_test[perm[:n_test]] = True
    else:
        is_test = torch.arange(len(items)) >= len(train)
    files = [{**rec, "split": "test" if t else "train", "label": c}
             for rec, (_, c), t in zip(records, items, is_test.tolist())]
    x_train, y_train = x[~is_test].contiguous(), y[~is_test].contiguous()
    empty = sorted(set(classes) - {c for (_, c), t in zip(items, is_test.tolist()) if not t})
    if empty:
        raise ValueError(f"test_fraction={test_fraction}: leaves class(es) {empty} with no "
                         "training image; add images or lower test_fraction")
    pixels = x_train.double().div(255).transpose(0, 1).reshape(x.shape[1], -1)
    return ImageDataset(
        "imagefolder", x_train, y_train, x[is_test].contiguous(), y[is_test].contiguous(),
        num_classes=len(classes), mean=tuple(pixels.mean(1).tolist()),
        std=tuple(pixels.std(1).clamp_min(1e-6).tolist()),
        padding=max(1, x.shape[2] // 8),
        source={"source": "data_root", "root": str(Path(root).resolve()), "layout": layout,
                "test_split": "seeded" if test is None else "given",
                "classes": list(classes), "files": files})


def write_images(folder: str | Path, x: torch.Tensor, y: torch.Tensor | None = None, *,
                 class_names: list[str] | None = None, layout: str = "folders") -> list[Path]:
    """Write uint8 images ``(N, C, H, W)`` (C = 1 or 3) as PNG files: the inverse of
    :func:`load_imagefolder`, to turn tensors into a folder for it (tests, the labeling
    notebook).

    Args:
        folder: created if needed.
        x: the images.
        y: their labels; names come from ``class_names`` (default the label's digits).
        class_names: one per label.
        layout: ``folders`` (``folder/<class>/<i>.png``), or ``flat`` (``folder/<i>_<class>.png``,
            the class in the name only: unlabeled images whose true class a simulated annotator
            reads), or ``unnamed`` (``folder/<i>.png``).

    Returns:
        The paths written, in the order of ``x``.
    """
    from PIL import Image

    if layout not in ("folders", "flat", "unnamed"):
        raise ValueError(f"layout={layout!r}: choose folders, flat or unnamed")
    folder = Path(folder)
    names = [(class_names[int(c)] if class_names else str(int(c))) for c in y] if y is not None \
        else [None] * len(x)
    paths = []
    for i, (img, name) in enumerate(zip(x, names)):
        if layout == "folders":
            path = folder / name / f"{i:06d}.png"
        elif layout == "flat":
            path = folder / f"{i:06d}_{name}.png"
        else:
            path = folder / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = img.permute(1, 2, 0).numpy()
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)
        paths.append(path)
    return paths
