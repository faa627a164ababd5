"""A real labeling loop: images whose labels are unknown, a person (or a tool) labels them.

Caveat first: here nobody plays the annotator, so the cost that matters, a person's time per
label, is not measured; each round records its compute (selector MACs and seconds) and how
many labels it asks for.

The steps (docs/labeling.md), each a function here and a ``prunefuse label`` command:

1. :func:`start`: a project folder from a folder or CSV of images (``path``, and ``label``
   where known), the classes, and the loop's parameters (run parameters: ``arch``,
   ``ratio``, ``score``, epochs, ...). The images are checked (shape, readable) and hashed.
2. :func:`next_batch`: the pruned selector (PruneFuse step 1) trained on the labels so far
   scores the unlabeled images (step 2); the batch to label is written as a CSV of paths and
   as Label Studio import tasks, and the round is recorded (selector, scores, picks, cost).
3. :func:`add_labels`: labels back from a CSV (``path,label``) or a Label Studio JSON export.
   Unknown files or classes, a file listed twice and a label that contradicts an earlier one
   are each refused in one line; nothing is written then.
4. :func:`fit`: the selector trained on the labels fused into the dense target (step 3) and
   trained with KD from it (step 4), its accuracy on a held-out share of the labels, and the
   export: state_dict, TorchScript and a model card.

Every file is written atomically and each step's record last, so a step killed halfway is
rerun from its start by the same command, and a step rerun with nothing new does nothing.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import re
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..data.imagefolder import IMAGE_SUFFIXES, load_images, read_csv
from ..errors import ConfigError
from .records import atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text

PROJECT = "project.json"
LABELS = "labels.csv"
ROUNDS = "rounds"
MODEL = "model"
CARD = "model_card.json"
# The loop's run parameters and their defaults: the cpu profile's training [choice].
LOOP_PARAMS: dict[str, Any] = {"arch": "resnet20", "ratio": 0.5, "score": "least_confidence",
                               "selector_epochs": 30, "target_epochs": 60, "batch_size": 32,
                               "schedule": "cosine", "kd_lambda": 0.5, "image_size": None,
                               "channels": None, "seed": 0, "device": "auto"}
HOLDOUT = 0.2  # share of the labels held out to measure the fitted model [choice]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _images_in(source: Path) -> tuple[list[Path], dict[Path, str]]:
    """The images of a folder (recursively) or a CSV (``path``, optional ``label``), and the
    labels the CSV holds."""
    if source.is_dir():
        return sorted(p.resolve() for p in source.rglob("*")
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), {}
    if source.suffix.lower() != ".csv":
        raise ConfigError(f"--images {source}: give a folder of images or a CSV of path[,label]")
    try:
        rows = read_csv(source, columns=("path",))
    except ValueError as err:
        raise ConfigError(f"--images {err}") from None
    paths = [Path(r["path"]) for r in rows]
    return paths, {Path(r["path"]): r["label"] for r in rows if r.get("label")}


def _loop_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """The loop's parameters, checked by the run config's own rules (one line each)."""
    from .config import make_config

    unknown = sorted(set(overrides) - set(LOOP_PARAMS))
    if unknown:
        raise ConfigError(f"{unknown}: not parameters of the labeling loop; it takes "
                          f"{sorted(LOOP_PARAMS)}")
    params = {**LOOP_PARAMS, **overrides}
    cfg = make_config("cpu", **params)
    return {k: cfg[k] for k in LOOP_PARAMS}


def start(project: str | Path, *, images: str | Path, labels: str | Path | None = None,
          classes: list[str] | None = None, **params: Any) -> dict:
    """Start a labeling project (or confirm one already started with the same inputs).

    Args:
        project: the project folder (created).
        images: a folder of images (searched recursively) or a CSV with a ``path`` column and
            an optional ``label`` column.
        labels: a CSV of ``path,label`` already known.
        classes: the class names, in label order; default the sorted names of the labels
            given (every class then needs one label).
        **params: :data:`LOOP_PARAMS` to change (``arch``, ``ratio``, ``score``, ...).

    Returns:
        The project record (``project.json``).

    Raises:
        ConfigError: one line naming the input at fault.
    """
    project = Path(project)
    paths, known = _images_in(Path(images))
    if not paths:
        raise ConfigError(f"--images {images}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    cfg = _loop_params(params)
    try:
        x, records = load_images(paths, image_size=cfg["image_size"], channels=cfg["channels"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    names = set(known.values())
    if labels is not None:
        names |= {r["label"] for r in _label_rows(Path(labels))}
    if not classes and not names:
        raise ConfigError("--classes: needed when no labels are given to read them from; "
                          "e.g. --classes cat,dog")
    classes = list(classes) if classes else sorted(names)
    pixels = x.double().div(255).transpose(0, 1).reshape(x.shape[1], -1)
    record = {"images": [r["path"] for r in records], "sha256": [r["sha256"] for r in records],
              "classes": classes, "params": cfg, "image_shape": list(x.shape[1:]),
              "mean": pixels.mean(1).tolist(), "std": pixels.std(1).clamp_min(1e-6).tolist()}
    if (project / PROJECT).exists():
        old = _read_json(project / PROJECT)
        if old != record:
            raise ConfigError(f"{project}: already a labeling project of {len(old['images'])} "
                              "images with other images, classes or parameters; give another "
                              "folder")
    else:
        atomic_write_json(project / PROJECT, record)
    if not (project / LABELS).exists():
        atomic_write_text(project / LABELS, "path,label\n")
    if known:
        add_labels(project, rows=[{"path": str(p), "label": c} for p, c in known.items()],
                   where=str(images))
    if labels is not None:
        add_labels(project, labels)
    return record


def _label_rows(source: Path) -> list[dict[str, str]]:
    """``path``/``label`` rows of a CSV, or of a Label Studio JSON export (the first choice of
    each task's annotations not cancelled; a task with none is left out)."""
    if source.suffix.lower() != ".json":
        try:
            return [r for r in read_csv(source) if r["label"]]
        except ValueError as err:
            raise ConfigError(str(err)) from None
    try:
        tasks = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{source}: not a Label Studio JSON export ({err})") from None
    if not isinstance(tasks, list):
        raise ConfigError(f"{source}: a Label Studio JSON export is a list of tasks")
    rows = []
    for task in tasks:
        data = task.get("data", {})
        choices = {c for a in task.get("annotations", []) if not a.get("was_cancelled")
                   for r in a.get("result", []) if r.get("type", "choices") == "choices"
                   for c in r.get("value", {}).get("choices", [])}
        path = data.get("path") or data.get("image")
        if len(choices) > 1:
            raise ConfigError(f"{source}: {path}: conflicting labels {sorted(choices)} in its "
                              "annotations; keep one")
        if choices:
            rows.append({"path": path, "label": choices.pop()})
    return rows


def labels(project: str | Path) -> dict[str, str]:
    """The labels so far: image path -> class name."""
    return {r["path"]: r["label"] for r in read_csv(Path(project) / LABELS)}


def add_labels(project: str | Path, source: str | Path | None = None, *,
               rows: list[dict[str, str]] | None = None, relabel: bool = False,
               where: str | None = None) -> dict[str, int]:
    """Add labels from a CSV (``path,label``; paths relative to it or absolute) or a Label
    Studio JSON export, all or none.

    Args:
        project: the project folder.
        source: the file of labels.
        rows: instead of ``source``, the ``path``/``label`` rows themselves.
        relabel: let a label replace an earlier, different one (else refused).
        where: what to name in errors instead of ``source``.

    Returns:
        ``{"added": n, "unchanged": n, "relabeled": n, "labeled": total}``.

    Raises:
        ConfigError: one line for an unknown file, an unknown class, a file listed twice or
            a label that contradicts an earlier one; the labels are then untouched.
    """
    project = Path(project)
    meta = _read_json(project / PROJECT)
    where = where or str(source)
    rows = rows if rows is not None else _label_rows(Path(source))
    known = set(meta["images"])
    names = Counter(Path(p).name for p in meta["images"])
    by_name = {Path(p).name: p for p in meta["images"] if names[Path(p).name] == 1}
    current = labels(project)
    seen: dict[str, str] = {}
    counts = {"added": 0, "unchanged": 0, "relabeled": 0}
    for row in rows:
        path, label = str(row["path"]), row["label"]
        path = path.split("?d=", 1)[-1]  # Label Studio's local-files URL
        if path not in known:  # a path relative to the working directory, or a unique name
            name = Path(path).name
            if path.startswith("/data/upload/"):  # an upload: Label Studio prefixes 8 hex digits
                name = re.sub(r"^[0-9a-f]{8}-", "", name)
            path = str(Path(path).resolve()) if str(Path(path).resolve()) in known \
                else by_name.get(name, path)
        if path not in known:
            twice = names.get(Path(path).name, 0) > 1
            raise ConfigError(f"{where}: {row['path']}: not an image of the project "
                              f"({len(known)} images, listed in {project / PROJECT})"
                              + ("; its file name is not unique there, so give its full path"
                                 if twice else ""))
        if label not in meta["classes"]:
            raise ConfigError(f"{where}: {path}: unknown class {label!r}; the classes are "
                              f"{meta['classes']}")
        if path in seen:
            raise ConfigError(f"{where}: {path}: listed twice ({seen[path]!r} and {label!r}); "
                              "give each image once")
        seen[path] = label
        if path in current and current[path] != label and not relabel:
            raise ConfigError(f"{where}: {path}: already labeled {current[path]!r}, here "
                              f"{label!r}; pass --relabel to replace it")
        counts["unchanged" if current.get(path) == label else
               "relabeled" if path in current else "added"] += 1
    current.update(seen)
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["path", "label"])
    w.writerows(sorted(current.items()))
    atomic_write_text(project / LABELS, text.getvalue())
    return {**counts, "labeled": len(current)}


def _data(project: Path) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The project record, its images (uint8) and labels (-1 where unknown)."""
    meta = _read_json(project / PROJECT)
    missing = [p for p in meta["images"] if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"{missing[0]}: missing since the project started ({len(missing)} "
                          "image(s)); put the images back where start found them, or start "
                          "another project")
    try:
        x, records = load_images([Path(p) for p in meta["images"]], **{
            k: meta["params"][k] for k in ("image_size", "channels")})
    except (ValueError, OSError) as err:
        raise ConfigError(f"{err}; the project's images must stay as start found them") from None
    changed = [r["path"] for r, h in zip(records, meta["sha256"]) if r["sha256"] != h]
    if changed:
        raise ConfigError(f"{changed[0]}: changed since the project started ({len(changed)} "
                          "image(s)); start another project for other images")
    index = {c: i for i, c in enumerate(meta["classes"])}
    known = labels(project)
    y = torch.tensor([index[known[p]] if p in known else -1 for p in meta["images"]])
    return meta, x, y


def _trainer(meta: dict, device) -> dict:
    """The training keywords of :func:`prunefuse.train.train` for this project."""
    from ..train import SGD_DEFAULTS

    p = meta["params"]
    side = meta["image_shape"][1]
    return dict(mean=meta["mean"], std=meta["std"], padding=max(1, side // 8),
                batch_size=p["batch_size"], schedule=p["schedule"], lr=SGD_DEFAULTS["lr"],
                device=device, progress=False)


def _selector(meta: dict, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, seed: int):
    """The dense init, the pruned selector trained on ``idx`` (PruneFuse steps 1-2), its
    index map, forward MACs per image and training seconds."""
    from ..device import resolve_device
    from ..flops import count_macs
    from ..models import build_model
    from ..prune import prune_at_init
    from ..train import train

    p = meta["params"]
    example = torch.zeros(1, *meta["image_shape"])
    dense = build_model(p["arch"], len(meta["classes"]), meta["image_shape"][0], seed=p["seed"])
    selector, index_map = prune_at_init(dense, p["ratio"], example)
    macs = count_macs(selector, example)
    start_ = time.perf_counter()
    train(selector, x[idx], y[idx], epochs=p["selector_epochs"], seed=seed,
          **_trainer(meta, resolve_device(p["device"])))
    return dense, selector, index_map, macs, time.perf_counter() - start_


def rounds(project: str | Path) -> list[dict]:
    """The recorded rounds, in order."""
    found = (Path(project) / ROUNDS).glob("round_[0-9][0-9].json")
    return [_read_json(f) for f in sorted(found)]


def next_batch(project: str | Path, *, size: int, image_url: str = "") -> dict:
    """Choose the next ``size`` images to label, write them and record the round.

    With no labels yet the batch is a seeded random draw (as a run's initial set); after
    that the selector trained on the labels scores the unlabeled images with ``score``.
    Rerun before any of its images is labeled, it returns the round already written.

    Args:
        project: the project folder.
        size: images in the batch.
        image_url: prefix of each task's ``data.image`` in the Label Studio tasks (e.g.
            ``/data/local-files/?d=`` for its local file storage); the task's ``data.path``
            keeps the file's path, which :func:`add_labels` reads back.

    Returns:
        The round record (``rounds/round_XX.json``): its ``csv`` and ``tasks`` files.
    """
    from ..flops import training_macs
    from ..select import SCORE_SPECS, score_pool, score_values, select
    from ..select import random as random_select

    project = Path(project)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"--size {size!r}: must be a positive number of images")
    meta, x, y = _data(project)
    done = rounds(project)
    labeled = torch.nonzero(y >= 0).flatten()
    if done and done[-1]["labeled_before"] == len(labeled):
        # nothing labeled since: the batch already written stands, whatever size is asked
        return {**done[-1], "pending": True}
    unlabeled = torch.nonzero(y < 0).flatten()
    if not len(unlabeled):
        raise ConfigError(f"{project}: every image is labeled; run `prunefuse label fit`")
    r, p = len(done) + 1, meta["params"]
    seed = p["seed"] * 1000 + r
    n = min(size, len(unlabeled))
    record: dict[str, Any] = {"round": r, "labeled_before": len(labeled), "size": n}
    if not len(labeled) or not SCORE_SPECS[p["score"]].model:
        picks, values = random_select(len(unlabeled), n, seed=seed), None
        record.update(selector=None, macs=0, seconds=0.0)
    else:
        _, selector, _, macs, seconds = _selector(meta, x, y, labeled, seed)
        start_ = time.perf_counter()
        out = score_pool(selector, x[unlabeled], meta["mean"], meta["std"])
        feats = score_pool(selector, x[labeled], meta["mean"], meta["std"]).features \
            if SCORE_SPECS[p["score"]].labeled_features else None
        picks = select(p["score"], out, feats, n, seed=seed)
        values = score_values(p["score"], out, feats)
        seconds += time.perf_counter() - start_
        record.update(selector={"arch": p["arch"], "ratio": p["ratio"], "score": p["score"],
                                "macs_per_image": macs, "epochs": p["selector_epochs"]},
                      macs=training_macs(macs, len(labeled), p["selector_epochs"])
                      + macs * len(unlabeled), seconds=seconds)
    chosen = [meta["images"][i] for i in unlabeled[picks].tolist()]
    record["picks"] = chosen
    record["scores"] = None if values is None else values[picks].tolist()
    stem = project / ROUNDS / f"round_{r:02d}"
    rows = "".join(f"{_csv_cell(path)},\n" for path in chosen)
    atomic_write_text(stem.with_suffix(".csv"), "path,label\n" + rows)
    tasks = [{"data": {"image": image_url + path, "path": path}} for path in chosen]
    atomic_write_json(stem.with_suffix(".tasks.json"), tasks)
    record.update(csv=str(stem.with_suffix(".csv")), tasks=str(stem.with_suffix(".tasks.json")))
    atomic_write_json(stem.with_suffix(".json"), record)  # the commit point
    return record


def _csv_cell(text: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text])
    return out.getvalue()


def fit(project: str | Path, *, holdout: float = HOLDOUT) -> dict:
    """Train the dense target on the labels by PruneFuse (fuse the trained selector, then KD)
    and export it with its model card; up to date (nothing done) when the labels and
    parameters are those of the card already written.

    Args:
        project: the project folder.
        holdout: share of the labels held out (seeded) to measure accuracy; the model is
            trained on the rest.

    Returns:
        The model card (``model/model_card.json``); the model is ``model/model.pt``
        (state_dict and what to build it) and ``model/model.torchscript.pt``.
    """
    from ..device import resolve_device
    from ..fuse import fuse_variant
    from ..train import evaluate, train

    project = Path(project)
    if not 0 < holdout < 1:
        raise ConfigError(f"--holdout {holdout}: must be in (0, 1)")
    meta, x, y = _data(project)
    labeled = torch.nonzero(y >= 0).flatten()
    key = hashlib.sha256(json.dumps([meta["params"], holdout, y.tolist()]).encode()).hexdigest()
    card_path = project / MODEL / CARD
    if card_path.exists() and _read_json(card_path)["inputs_sha256"] == key:
        return _read_json(card_path)
    n_hold = round(holdout * len(labeled))
    if n_hold < 1 or len(labeled) - n_hold < 2:
        raise ConfigError(f"{project}: {len(labeled)} labels are too few to train and hold "
                          f"out {holdout:g} of them; label more (`prunefuse label next`)")
    p = meta["params"]
    perm = labeled[torch.randperm(len(labeled), generator=torch.Generator().manual_seed(0))]
    held, train_idx = perm[:n_hold].sort().values, perm[n_hold:].sort().values
    device = resolve_device(p["device"])
    dense, selector, index_map, _, sel_seconds = _selector(meta, x, y, train_idx, p["seed"])
    model = fuse_variant("indices", dense_init=dense, fresh_init=dense,
                         pruned_trained=selector.cpu(), index_map=index_map)
    start_ = time.perf_counter()
    train(model, x[train_idx], y[train_idx], epochs=p["target_epochs"], seed=p["seed"] + 500,
          teacher=selector, kd_lambda=p["kd_lambda"], **_trainer(meta, device))
    seconds = time.perf_counter() - start_
    acc = evaluate(model, x[held], y[held], mean=meta["mean"], std=meta["std"],
                   device=device)["test_acc"]
    model = model.cpu().eval()
    example = torch.zeros(1, *meta["image_shape"])
    atomic_torch_save({"state_dict": model.state_dict(), "arch": p["arch"],
                       "num_classes": len(meta["classes"]), "classes": meta["classes"],
                       "in_channels": meta["image_shape"][0]}, project / MODEL / "model.pt")
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated in torch, still the format asked
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(copy.deepcopy(model), example), buffer)
    atomic_write_bytes(project / MODEL / "model.torchscript.pt", buffer.getvalue())
    card = {"classes": meta["classes"], "image_shape": meta["image_shape"],
            "normalization": {"mean": meta["mean"], "std": meta["std"],
                              "input": "pixels / 255, then (x - mean) / std per channel"},
            "arch": p["arch"], "params": p, "labels": len(labeled), "trained_on": len(train_idx),
            "holdout": {"share": holdout, "images": n_hold, "accuracy": acc},
            "rounds": [{k: r[k] for k in ("round", "labeled_before", "size", "macs", "seconds")}
                       for r in rounds(project)],
            "fit_seconds": {"selector": sel_seconds, "target": seconds},
            "inputs_sha256": key}
    atomic_write_json(card_path, card)
    atomic_write_text(project / MODEL / "model_card.md", _card_markdown(card))
    return card


def exported_accuracy(project: str | Path, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the exported TorchScript model (``model/model.torchscript.pt``) on images
    ``x`` (uint8 ``(N, C, H, W)``, normalized as its model card says) with labels ``y``
    (indices into the card's classes): a test set of one's own, the same every round."""
    project = Path(project)
    card = _read_json(project / MODEL / CARD)
    model = torch.jit.load(project / MODEL / "model.torchscript.pt")
    mean = torch.tensor(card["normalization"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(card["normalization"]["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        predicted = model((x.float() / 255 - mean) / std).argmax(1)
    return (predicted == y).float().mean().item()


def _card_markdown(card: dict) -> str:
    lines = [f"# {card['arch']} on {card['labels']} labels",
             "", f"Accuracy on {card['holdout']['images']} held-out labels: "
             f"{100 * card['holdout']['accuracy']:.2f}% (trained on {card['trained_on']}).",
             "", f"Classes, in output order: {', '.join(card['classes'])}.",
             f"Input: {'x'.join(map(str, card['image_shape']))} (CxHxW), "
             f"{card['normalization']['input']}; mean {card['normalization']['mean']}, "
             f"std {card['normalization']['std']}.", "",
             "| round | labeled before | asked | selector GMACs | seconds |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['round']} | {r['labeled_before']} | {r['size']} | {r['macs'] / 1e9:.3f} | "
              f"{r['seconds']:.1f} |" for r in card["rounds"]]
    return "\n".join(lines) + "\n"
