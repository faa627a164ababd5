"""dataset=imagefolder on real PNG folders written from Debian's Fashion-MNIST files: the
loader against the same images as tensors, both layouts, and each bad shape refused in one
line before any run folder exists."""

import csv
import hashlib
import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from prunefuse.cli import main
from prunefuse.config import make_config, run_id
from prunefuse.data import DATASETS, FASHION_MNIST_SYSTEM_DIR, ImageDataset, load_dataset
from prunefuse.flops import count_macs
from prunefuse.imagefolder import crop_resize, write_images
from prunefuse.models import build_model

pytestmark = pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.is_dir(),
                                reason="needs apt-get install dataset-fashion-mnist")
NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Boot"]


@pytest.fixture(scope="module")
def fashion():
    """300 training and 100 test images of the real data, 1x28x28 as in the IDX files."""
    ds = load_dataset("fashion-mnist", max_train=300, max_test=100)
    return (ds.x_train[:, :1, 2:-2, 2:-2].contiguous(), ds.y_train,
            ds.x_test[:, :1, 2:-2, 2:-2].contiguous(), ds.y_test)


def _expected(x, y, paths):
    """The tensors in the loader's order: class folders sorted, then file names."""
    order = sorted(range(len(paths)), key=lambda i: (paths[i].parent.name, paths[i].name))
    return x[order], y[order]


def test_folders_load_exactly_the_images_written(tmp_path, fashion):
    x, y, xt, yt = fashion
    digits = [str(i) for i in range(10)]
    paths = write_images(tmp_path / "train", x, y, class_names=digits)
    tpaths = write_images(tmp_path / "test", xt, yt, class_names=digits)
    ds = load_dataset("imagefolder", root=tmp_path)
    ex, ey = _expected(x, y, paths)
    assert torch.equal(ds.x_train, ex) and torch.equal(ds.y_train, ey)
    ex, ey = _expected(xt, yt, tpaths)
    assert torch.equal(ds.x_test, ex) and torch.equal(ds.y_test, ey)
    assert ds.describe() == "imagefolder: 300 train / 100 test, 1x28x28, 10 classes"
    pixels = x.double() / 255
    assert ds.mean == pytest.approx((pixels.mean().item(),)) and \
        ds.std == pytest.approx((pixels.std().item(),))
    src = ds.source
    assert src["classes"] == digits and src["layout"] == "folders" and src["test_split"] == "given"
    first = src["files"][0]
    assert first["sha256"] == hashlib.sha256(Path(first["path"]).read_bytes()).hexdigest()
    assert len(src["files"]) == 400 and {f["split"] for f in src["files"]} == {"train", "test"}


def test_csv_with_a_seeded_test_fraction(tmp_path, fashion):
    x, y, _, _ = fashion
    paths = write_images(tmp_path / "img", x, y, layout="unnamed")
    with open(tmp_path / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([p.relative_to(tmp_path), NAMES[int(c)]] for p, c in zip(paths, y))
    ds = load_dataset("imagefolder", root=tmp_path, test_fraction=0.25, channels=3)
    again = load_dataset("imagefolder", root=tmp_path / "train.csv", test_fraction=0.25,
                         channels=3)
    assert (ds.num_train, ds.num_test, ds.in_channels) == (225, 75, 3)
    assert torch.equal(ds.x_test, again.x_test), "one split, seeded"
    assert ds.source["classes"] == sorted(NAMES) and ds.source["test_split"] == "seeded"
    by_path = {str(p.resolve()): i for i, p in enumerate(paths)}
    train = [by_path[f["path"]] for f in ds.source["files"] if f["split"] == "train"]
    assert torch.equal(ds.x_train, x[train].expand(-1, 3, -1, -1))
    assert [sorted(NAMES)[c] for c in ds.y_train] == [NAMES[int(y[i])] for i in train]


def test_image_size_center_crops_then_resizes():
    img = torch.arange(28 * 40, dtype=torch.uint8).view(28, 40, 1).numpy()
    assert (crop_resize(img, 28) == img[:, 6:34]).all()
    assert crop_resize(img, 14).shape == (14, 14, 1)


def test_a_folder_of_pngs_runs_with_no_plugin(tmp_path, fashion, capsys, monkeypatch):
    """The command of docs/plugins.md, as written, on a folder of PNGs."""
    x, y, _, _ = fashion
    write_images(tmp_path / "data", x[:200], y[:200], class_names=NAMES)
    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    command = re.search(r"```bash\n(prunefuse run .*dataset=imagefolder.*)\n```", guide)[1]
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    args = shlex.split(command.replace("FOLDER", str(tmp_path / "data")))[1:]
    assert main([*args, "--no-progress"]) == 0
    record = json.loads(next(out.glob("*/config.json")).read_text())
    assert record["pool_size"] == 160 and record["test_size"] == 40
    assert record["data"]["classes"] == sorted(NAMES) and len(record["data"]["files"]) == 200
    ds = load_dataset("imagefolder", root=tmp_path / "data")  # the pool's statistics, recorded
    assert record["normalization"] == {"mean": pytest.approx(list(ds.mean)),
                                       "std": pytest.approx(list(ds.std)),
                                       "image_shape": [1, 28, 28]}
    assert "1x28x28, 10 classes" in capsys.readouterr().out


def _run_line(tmp_path, capsys, *params):
    out = tmp_path / "runs"
    code = main(["run", "--profile", "smoke", "--out", str(out), "dataset=imagefolder", *params])
    assert not out.exists(), "no run folder for a user error"
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return code, err


def test_each_bad_shape_is_one_line_and_no_folder(tmp_path, fashion, capsys):
    x, y, xt, yt = fashion
    root = tmp_path / "d"
    write_images(root / "train", x[:60], y[:60])
    wide = torch.zeros(1, 1, 28, 40, dtype=torch.uint8)
    odd = write_images(tmp_path / "odd", wide, torch.tensor([3]))[0]
    target = root / "train" / "3" / "wide.png"
    odd.rename(target)
    code, err = _run_line(tmp_path, capsys, f"data_root={root}")
    assert code == 2 and f"image_size=None: {target} is 28x40 (HxW), not square; pass " \
        "image_size=N" in err
    target.unlink()
    write_images(root / "test", torch.nn.functional.pad(xt[:20], (2, 2, 2, 2)), yt[:20])
    code, err = _run_line(tmp_path, capsys, f"data_root={root}")
    assert code == 2 and "is 32x32, the other images 28x28 (train and test alike); pass " \
        "image_size=28" in err
    for p in (root / "test").rglob("*.png"):
        p.unlink()
    code, err = _run_line(tmp_path, capsys, f"data_root={root}")
    assert code == 2 and "holds no images (test split)" in err
    (root / "test" / "99").mkdir(exist_ok=True)
    write_images(root / "test", xt[:5], torch.full((5,), 99))
    for d in (root / "test").iterdir():
        if d.name != "99":
            for p in d.glob("*"):
                p.unlink()
            d.rmdir()
    code, err = _run_line(tmp_path, capsys, f"data_root={root}")
    assert code == 2 and "test classes ['99'] have no training images" in err
    code, err = _run_line(tmp_path, capsys, f"data_root={root}", "channels=2")
    assert code == 2 and "channels=2: must be 1 (grey), 3 (RGB) or null" in err


def test_labels_outside_the_declared_classes_are_one_line(tmp_path, fashion, capsys):
    """A CSV of digit labels with one stray 10: with classes declared it is refused, naming
    the file; a declared class with no image is refused too; without classes, 11 classes."""
    x, y, _, _ = fashion
    root = tmp_path / "csv"
    paths = write_images(root, x[:40], y[:40], layout="unnamed")
    labels = [str(int(c)) for c in y[:40]]
    labels[7] = "10"
    (root / "labels.csv").write_text("path,label\n" + "".join(
        f"{p.name},{c}\n" for p, c in zip(paths, labels)))
    digits = ",".join(str(i) for i in range(10))
    code, err = _run_line(tmp_path, capsys, f"data_root={root}", f"classes={digits}")
    assert code == 2 and f"classes={digits}: {paths[7]} is labeled '10', not one of them" in err
    code, err = _run_line(tmp_path, capsys, f"data_root={root}", f"classes={digits},10,11")
    assert code == 2 and "class(es) ['11'] have no training images" in err
    assert load_dataset("imagefolder", root=root).num_classes == 11
    ds = load_dataset("imagefolder", root=root, classes=f"{digits},10")
    assert ds.source["classes"] == [*digits.split(","), "10"]


def test_macs_use_the_true_height_and_width(tmp_path, monkeypatch):
    """A plugin's 28x40 images run; their MACs are counted at 28x40, not 28x28."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (80, 1, 28, 40), generator=g, dtype=torch.uint8)
    y = torch.arange(80) % 2

    def wide(root, download=True):
        return ImageDataset("wide", x[:60], y[:60], x[60:], y[60:], num_classes=2, mean=(0.5,),
                            std=(0.3,), padding=2)

    monkeypatch.setitem(DATASETS, "wide", wide)
    from prunefuse.experiment import run_experiment

    run = run_experiment(profile="smoke", out=tmp_path, dataset="wide", selector="random",
                         progress=False)
    assert run.name == run_id(make_config("smoke", dataset="wide", selector="random"))
    macs = json.loads((run / "config.json").read_text())["target"]["macs_per_sample"]
    model = build_model("resnet8", 2, 1, seed=0)
    assert macs == count_macs(model, torch.zeros(1, 1, 28, 40))
    assert macs > count_macs(model, torch.zeros(1, 1, 28, 28))


def test_a_changed_folder_is_refused_not_reported_finished(tmp_path, fashion, capsys):
    """Add images, run the same command: one line naming what changed, exit 2, the finished
    run untouched; another --out runs on the new data."""
    x, y, _, _ = fashion
    data = tmp_path / "data"
    write_images(data, x[:200], y[:200], class_names=NAMES)
    out = tmp_path / "runs"
    args = ["run", "--profile", "smoke", "--no-progress", "dataset=imagefolder",
            f"data_root={data}", "selector=random"]
    assert main([*args, "--out", str(out)]) == 0
    run = next(out.glob("*/DONE")).parent
    before = (run / "metrics.jsonl").read_text()
    assert main([*args, "--out", str(out)]) == 0
    assert "skipped: finished" in capsys.readouterr().out
    more = write_images(tmp_path / "more", x[200:300], y[200:300], class_names=NAMES)
    for p in more:
        p.rename(data / p.parent.name / f"new-{p.name}")
    assert main([*args, "--out", str(out)]) == 2
    said = capsys.readouterr()
    err = said.err
    assert said.out == ""  # the refusal is the one line printed
    assert err.count("\n") == 1 and err.startswith(
        f"prunefuse run: error: dataset='imagefolder', data_root={str(data)!r}: the data differ "
        f"from those of the run in {run} (100 file(s) added (first: ")
    assert "/new-" in err and "pool 160 -> 240; test set 40 -> 60)" in err
    assert "give another --out" in err
    assert (run / "metrics.jsonl").read_text() == before
    assert main([*args, "--out", str(tmp_path / "new")]) == 0
    capsys.readouterr()
    # An image moved to another class folder: the same bytes under another label.
    image = sorted((data / NAMES[0]).glob("*.png"))[0]
    image.rename(data / NAMES[1] / image.name)
    assert main([*args, "--out", str(tmp_path / "new")]) == 2
    assert (f"1 file(s) moved (first: {NAMES[0]}/{image.name} -> {NAMES[1]}/{image.name})"
            in capsys.readouterr().err)


def test_a_plugin_dataset_without_files_is_fingerprinted(tmp_path, monkeypatch):
    from prunefuse.config import ConfigError
    from prunefuse.experiment import run_experiment

    seed = {"value": 0}

    def made(root, download=True):
        g = torch.Generator().manual_seed(seed["value"])
        x = torch.randint(0, 255, (60, 1, 16, 16), generator=g, dtype=torch.uint8)
        y = torch.arange(60) % 3
        return ImageDataset("made", x[:40], y[:40], x[40:], y[40:], num_classes=3,
                            mean=(0.5,), std=(0.3,), padding=2)

    monkeypatch.setitem(DATASETS, "made", made)
    kw = dict(profile="smoke", out=tmp_path, dataset="made", selector="random", progress=False)
    run = run_experiment(**kw)
    recorded = json.loads((run / "config.json").read_text())["data_fingerprint"]
    assert recorded["num_train"] == 40 and len(recorded["sha256"]) == 64
    assert run_experiment(**kw) == run
    seed["value"] = 1
    with pytest.raises(ConfigError, match="the data differ from those of the run in .*"
                       r"\(the images or labels differ\)"):
        run_experiment(**kw)


def test_dry_run_reads_a_data_root_dataset_where_the_run_will(tmp_path, fashion, capsys):
    x, y, _, _ = fashion
    write_images(tmp_path / "data", x[:100], y[:100])
    assert main(["reproduce", "--profile", "smoke", "--only", "main_table", "--dry-run",
                 "--images-per-second", "500", "dataset=imagefolder",
                 f"data_root={tmp_path / 'data'}"]) == 0
    assert "total" in capsys.readouterr().out


def test_a_plugin_reading_a_missing_file_names_its_data_root(tmp_path, monkeypatch, capsys):
    def reads_a_file(root, download=True):
        torch.load(Path(root) / "data.pt")

    monkeypatch.setitem(DATASETS, "mine", reads_a_file)
    nowhere = tmp_path / "nowhere"
    assert main(["reproduce", "--profile", "smoke", "--only", "main_table", "--dry-run",
                 "dataset=mine", f"data_root={nowhere}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"dataset='mine', data_root={str(nowhere)!r}: " in err


@pytest.mark.slow
def test_a_batch_on_a_changed_folder_is_refused_before_anything_runs(tmp_path, fashion):
    """reproduce skips finished runs by their DONE marker; on a changed folder it refuses
    in one line instead, and no finished run is touched."""
    from prunefuse.errors import ConfigError
    from prunefuse.reproduce import reproduce

    x, y, _, _ = fashion
    data = tmp_path / "data"
    write_images(data, x[:200], y[:200], class_names=NAMES)
    kw = dict(overrides={"dataset": "imagefolder", "data_root": str(data)},
              artefacts=["figure3"], run_figures=False, log=lambda s: None)
    first = reproduce("smoke", tmp_path / "batch", **kw)
    assert first["executed"] and not first["skipped"]
    again = reproduce("smoke", tmp_path / "batch", **kw)
    assert sorted(again["skipped"]) == sorted(first["executed"])
    before = {p: p.read_text() for p in (tmp_path / "batch" / "runs").glob("*/metrics.jsonl")}
    more = write_images(tmp_path / "more", x[200:260], y[200:260], class_names=NAMES)
    for p in more:
        p.rename(data / p.parent.name / f"new-{p.name}")
    with pytest.raises(ConfigError, match=r"the data differ from those of the run in .*"
                                          r"file\(s\) added"):
        reproduce("smoke", tmp_path / "batch", **kw)
    assert {p: p.read_text() for p in before} == before


def test_explore_shows_a_folder_run_by_class_name_and_refuses_changed_images(tmp_path,
                                                                              fashion):
    """explore reads the folder's own class names, whole rounds, and the run's own images:
    one image rewritten (the count unchanged) is refused, naming it."""
    from prunefuse import explore
    from prunefuse.config import ConfigError
    from prunefuse.experiment import run_experiment

    x, y, _, _ = fashion
    data = tmp_path / "data"
    paths = write_images(data, x[:120], y[:120], class_names=NAMES)
    run = run_experiment(profile="smoke", out=tmp_path / "runs", dataset="imagefolder",
                         data_root=str(data), selector="random", progress=False)
    balance = explore.class_balance(run)
    assert set(balance["class"]) == set(NAMES)
    assert str(balance["round"].dtype) == "Int64" and balance["round"].isna().sum() == len(NAMES)
    paths[0].write_bytes(paths[1].read_bytes())
    with pytest.raises(ConfigError, match=f"1 file.s. changed .first: {paths[0].parent.name}/"):
        explore.load_pool(run)
