"""What data a run used, and whether the data a rerun loads are still those.

A run's id is derived from its parameters alone, so that a plan, a grid or ``reproduce`` can
name every run before any data is read. The data therefore enter a run's identity through
its record instead: ``config.json`` holds a fingerprint of the tensors the run trained and
tested on (sha256 of the images and labels, for every dataset, built-in, plugin or
``imagefolder``, with files or none), beside the files read. A rerun of the same parameters
whose data differ is refused in one line naming what changed (files added, removed or
changed, the pool and test sizes, the classes): a run folder holds the results of one data,
and neither resuming on other images nor reporting the old result as current is right
(docs/method.md, "Protocol").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def fingerprint(ds) -> dict[str, Any]:
    """The identity of an :class:`~prunefuse.data.ImageDataset`'s tensors: sha256 over the
    four tensors (shape, dtype and bytes), with the sizes and image shape."""
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        t = getattr(ds, name).detach().cpu().contiguous()
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(np.ascontiguousarray(t.numpy()).tobytes())
    return {"sha256": digest.hexdigest(), "num_train": ds.num_train, "num_test": ds.num_test,
            "num_classes": ds.num_classes, "image_shape": list(ds.image_shape)}


def changes(recorded: dict, now: dict, recorded_files: list[dict] | None = None,
            now_files: list[dict] | None = None) -> str | None:
    """What differs between a recorded fingerprint (and its file list) and the data now, in
    a few words; None when they are the same data."""
    if recorded.get("sha256") == now["sha256"]:
        return None
    parts = []
    if recorded_files is not None and now_files is not None:
        parts += _file_changes(recorded_files, now_files)
    for key, label in (("num_train", "pool"), ("num_test", "test set"),
                       ("num_classes", "classes"), ("image_shape", "image shape")):
        if key in recorded and recorded[key] != now[key]:
            parts.append(f"{label} {recorded[key]} -> {now[key]}")
    return "; ".join(parts) or "the images or labels differ"


def _file_changes(recorded: list[dict], now: list[dict]) -> list[str]:
    """Files added, removed, moved (the same bytes under another path, as when an image
    moves to another class folder), relabeled (the same file, another label in a CSV) and
    changed, each counted with its first example as ``class/name``."""
    old = {f["path"]: f for f in recorded}
    new = {f["path"]: f for f in now}
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    gone_by_hash = {}
    for path in removed:
        gone_by_hash.setdefault(old[path]["sha256"], []).append(path)
    moved = []
    for path in list(added):
        was = gone_by_hash.get(new[path]["sha256"])
        if was:
            source = was.pop(0)
            moved.append(f"{_short(source)} -> {_short(path)}")
            added.remove(path)
            removed.remove(source)
    both = sorted(set(old) & set(new))
    changed = [p for p in both if old[p]["sha256"] != new[p]["sha256"]]
    relabeled = [f"{_short(p)}: {old[p].get('label')!r} -> {new[p].get('label')!r}" for p in both
                 if old[p]["sha256"] == new[p]["sha256"]
                 and old[p].get("label") != new[p].get("label")]
    return [f"{len(items)} file(s) {what} (first: {first(items[0])})"
            for what, items, first in (("added", added, _short), ("removed", removed, _short),
                                       ("moved", moved, str), ("relabeled", relabeled, str),
                                       ("changed", changed, _short)) if items]


def _short(path: str) -> str:
    """A file as its folder and name (``Bag/img00394.png``): enough to find it, short enough
    for one line."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def check_unchanged(record: dict, ds, where: str) -> None:
    """Refuse data that differ from those a run's ``config.json`` ``record`` was made with.

    Args:
        record: the run's config.json, as read.
        ds: the data loaded now.
        where: the run folder, named in the error.

    Raises:
        ConfigError: one line naming the data parameters, what changed and what to do.
    """
    from ..errors import ConfigError

    recorded = record.get("data_fingerprint")
    if recorded is None:
        return  # a record made before fingerprints: nothing to compare
    what = changes(recorded, fingerprint(ds), record.get("data", {}).get("files"),
                   ds.source.get("files"))
    if what is not None:
        cfg = record["config"]
        raise ConfigError(
            f"dataset={cfg['dataset']!r}, data_root={cfg.get('data_root')!r}: the data differ "
            f"from those of the run in {where} ({what}); a run folder holds the results of one "
            f"data: give another --out for the new data, or remove that folder to rerun")
