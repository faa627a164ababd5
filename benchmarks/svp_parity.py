"""Training parity with SVP's own code: both tools train the same target on one fixed labeled
set, and this prints their test accuracies side by side.

Selection is taken out: both train a ResNet-20 on the same 1,200 labeled images of the same
files, so a gap is a gap in training, not in which images were chosen. The data is the CPU
study's 6,000-image Fashion-MNIST pool and 2,000 test images (zero-padded to 32x32, three
channels), written as CIFAR-10 python batches, which SVP's code reads and prunefuse reads as
``dataset=cifar10`` (with CIFAR-10's normalisation constants in both). The labels are one
random draw of the pool, in SVP's ``labeled_*.index`` format, which SVP takes as a
precomputed selection and prunefuse as ``labels_file``. Both train 30 epochs of SVP's
schedule (1/15/7/7 epochs at lr 0.01/0.1/0.01/0.001), batch 64, momentum 0.9, weight decay
5e-4, random crop and flip, with the test set after every epoch. SVP reports the best test
accuracy over epochs; both tools' final-epoch accuracies are compared too.

    python benchmarks/svp_parity.py data DIR                  # the batches and the labels
    python benchmarks/svp_parity.py prunefuse DIR --seeds 0 1 2 3
    python benchmarks/svp_parity.py svp-command DIR --seeds 0 1 2 3   # SVP's commands
    python benchmarks/svp_parity.py table DIR                 # both tools, per seed and paired
    python benchmarks/svp_parity.py keep DIR OUT              # the records table reads, into OUT

SVP's code is not a dependency: clone stanford-futuredata/selection-via-proxy, apply
``benchmarks/svp_md5.patch`` (the batches here are not CIFAR-10's, so its md5 checks must go),
and install it in its own environment (``pip install --no-deps -e .`` beside torch,
torchvision, click 7, tqdm, scipy and pandas).

Goal: prunefuse's target at least as accurate as SVP's on the same labels, within noise (the
paired 95% interval of prunefuse - SVP reaches 0 or above), on at least 4 seeds.
"""

from __future__ import annotations

import argparse
import csv
import io
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from prunefuse.runs import CACHE, CONFIG, LOCK, METRICS, is_done, read_jsonl

POOL, TEST, LABELS, EPOCHS, BATCH = 6000, 2000, 1200, (1, 15, 7, 7), 64
LRS = (0.01, 0.1, 0.01, 0.001)
SVP_ARCH = "resnet20"


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes written as Python 2 strings, as in the official CIFAR batches:
    torchvision (``encoding="latin1"``) reads their keys as str, prunefuse
    (``encoding="bytes"``) as bytes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                    else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_data(out: Path) -> None:
    """The CIFAR-10 batches (five of 1,200 training images, one test batch) and the labels."""
    from prunefuse.data import dataset_info, load_dataset

    ds = load_dataset("fashion-mnist", max_train=POOL, max_test=TEST)
    base = out / "data" / "cifar10" / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)

    def dump(name: str, x, y) -> None:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.numpy().reshape(len(x), 3072), b"filenames": [b""] * len(x)}
        (base / name).write_bytes(_py2_pickle(batch))

    per = POOL // 5
    for i in range(5):
        part = slice(i * per, (i + 1) * per)
        dump(f"data_batch_{i + 1}", ds.x_train[part], ds.y_train[part])
    dump("test_batch", ds.x_test, ds.y_test)
    names = [n.encode() for n in dataset_info("fashion-mnist").class_names]
    (base / "batches.meta").write_bytes(_py2_pickle({b"label_names": names,
                                                     b"num_cases_per_batch": per}))
    labels = np.random.default_rng(0).choice(POOL, LABELS, replace=False)
    sel = out / "selection" / "proxy" / str(LABELS)
    sel.mkdir(parents=True, exist_ok=True)
    np.savetxt(sel / f"labeled_{LABELS}.index", labels, fmt="%d")
    print(f"wrote {base} and {sel}/labeled_{LABELS}.index")


def labels_path(out: Path) -> Path:
    return out / "selection" / "proxy" / str(LABELS) / f"labeled_{LABELS}.index"


def prunefuse_args(out: Path, seed: int) -> list[str]:
    """The ``prunefuse run`` parameters of one seed."""
    return ["dataset=cifar10", f"data_root={out / 'data' / 'cifar10'}", "arch=resnet20",
            "selector=dense", f"labels_file={labels_path(out)}", f"budgets={LABELS / POOL:g}",
            f"target_epochs={sum(EPOCHS)}", "schedule=svp", f"batch_size={BATCH}",
            "eval_every=1", "report=both", "max_train=null", "max_test=null", f"seed={seed}"]


def run_prunefuse(out: Path, seeds: list[int]) -> None:
    for seed in seeds:
        cmd = ["prunefuse", "run", "--profile", "cpu", "--out", str(out / "prunefuse"),
               *prunefuse_args(out, seed)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def svp_command(out: Path, seed: int) -> str:
    epochs = " ".join(f"--epochs {e}" for e in EPOCHS)
    lrs = " ".join(f"--learning-rate {lr}" for lr in LRS)
    return (f"python -m svp.cifar active --run-dir {out / 'svp' / f's{seed}'} "
            f"--datasets-dir {out / 'data'} --dataset cifar10 --arch {SVP_ARCH} {epochs} {lrs} "
            f"--batch-size {BATCH} --initial-subset 300 --round 300 --round 600 "
            f"--precomputed-selection {out / 'selection'} --seed {seed} --no-cuda")


def _svp_seed(out: Path, seed: int) -> dict | None:
    """SVP's best and final test accuracy (fractions) of one seed, from its target's logs."""
    runs = sorted((out / "svp" / f"s{seed}").glob(f"*/target/{LABELS}/results.csv"))
    if not runs:
        return None
    with runs[-1].open() as f:  # one row per epoch and split, accuracies in percent
        accs = [float(r["top1_accuracy"]) / 100 for r in csv.DictReader(f) if r["mode"] == "test"]
    if len(accs) < sum(EPOCHS):
        return None  # unfinished
    return {"best": max(accs), "final": accs[-1]}


def _prunefuse_seed(out: Path, seed: int) -> dict | None:
    for cfg_path in sorted((out / "prunefuse").glob(f"*-s{seed}-*/{CONFIG}")):
        run = cfg_path.parent
        if not is_done(run):
            continue
        rows = read_jsonl(run / METRICS)
        t = [r for r in rows if r["kind"] == "target"][-1]
        return {"best": t["best_test_acc"], "final": t["final_test_acc"]}
    return None


def table(out: Path) -> None:
    from prunefuse.stats import interval_row, mean_sd_text

    seeds = sorted(int(p.name[1:]) for p in (out / "svp").glob("s*"))
    pairs = [(s, _prunefuse_seed(out, s), _svp_seed(out, s)) for s in seeds]
    pairs = [(s, p, v) for s, p, v in pairs if p and v]
    if not pairs:
        sys.exit("no seed has finished in both tools yet")
    print("| seed | prunefuse final | SVP final | prunefuse best | SVP best |")
    print("|---|---|---|---|---|")
    for s, p, v in pairs:
        print(f"| {s} | {100 * p['final']:.2f} | {100 * v['final']:.2f} | {100 * p['best']:.2f} "
              f"| {100 * v['best']:.2f} |")
    for which in ("final", "best"):
        for name, key in (("prunefuse", 1), ("SVP", 2)):
            row = interval_row([100 * pair[key][which] for pair in pairs])
            print(f"{which:5s} {name:9s}: "
                  f"{mean_sd_text(row['diff_mean'], row['diff_sd'], row['n_pairs'])} %")
        diff = interval_row([100 * (p[which] - v[which]) for _, p, v in pairs])
        print(f"{which:5s} prunefuse - SVP: {diff['diff_mean']:+.2f} points, 95% interval "
              f"[{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}], n = {diff['n_pairs']}")


def keep(out: Path, dest: Path) -> None:
    """Copy what :func:`table` reads into ``dest``, small enough to commit: prunefuse's run
    records (without the selector cache), SVP's per-epoch results and config of each seed, and
    the labels. The CIFAR-format batches are left out; ``data`` writes them again."""
    import shutil

    for run in sorted((out / "prunefuse").iterdir()):
        if is_done(run):
            shutil.copytree(run, dest / "prunefuse" / run.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(CACHE, "*.ipynb", LOCK))
    for results in sorted((out / "svp").glob(f"s*/*/target/{LABELS}/results.csv")):
        stamp = results.parents[2]
        for src in (results, *stamp.glob("config_*.json")):
            target = dest / src.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    labels = labels_path(dest)
    labels.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(labels_path(out), labels)
    print(f"kept the records of {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["data", "prunefuse", "svp-command", "table", "keep"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("dest", type=Path, nargs="?", help="keep: where to copy the records")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    a = ap.parse_args()
    out = a.dir.resolve()
    if a.what == "data":
        write_data(out)
    elif a.what == "prunefuse":
        run_prunefuse(out, a.seeds)
    elif a.what == "svp-command":
        for seed in a.seeds:
            print(svp_command(out, seed))
    elif a.what == "keep":
        if a.dest is None:
            ap.error("keep: give the folder to copy the records into")
        keep(out, a.dest.resolve())
    else:
        table(out)


if __name__ == "__main__":
    main()
