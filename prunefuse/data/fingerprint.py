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
        old = {f["path"]: f["sha256"] for f in recorded_files}
        new = {f["path"]: f["sha256"] for f in now_files}
        for what, paths in (("added", sorted(set(new) - set(old))),
                             ("removed", sorted(set(old) - set(new))),
                             ("changed", sorted(p for p in set(old) & set(new)
                                                if old[p] != new[p]))):
            if paths:
                parts.append(f"{len(paths)} file(s) {what} (first: {Path(paths[0]).name})")
    for key, label in (("num_train", "pool"), ("num_test", "test set"),
                       ("num_classes", "classes"), ("image_shape", "image shape")):
        if key in recorded and recorded[key] != now[key]:
            parts.append(f"{label} {recorded[key]} -> {now[key]}")
    return "; ".join(parts) or "the images or labels differ"


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
