"""The labeling loop on a folder of real Fashion-MNIST PNGs whose labels the loop does not
know: start, next, add (a CSV, then a Label Studio JSON export in the format Label Studio
documents), next, fit; the annotator is played from the file names. Each bad label file is
one line and exit 2 with nothing lost; a step killed halfway reruns; the exported
TorchScript model predicts what the trained model predicts."""

import csv
import json
from pathlib import Path

import pytest
import torch

from prunefuse import label
from prunefuse.cli import main
from prunefuse.data import FASHION_MNIST_SYSTEM_DIR, load_dataset
from prunefuse.imagefolder import load_images, write_images
from prunefuse.models import build_model
from prunefuse.train import evaluate  # noqa: F401 (the loop's own measure)

pytestmark = pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.is_dir(),
                                reason="needs apt-get install dataset-fashion-mnist")
NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Boot"]
TINY = ["arch=resnet8", "selector_epochs=1", "target_epochs=1", "batch_size=64"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """300 unlabeled PNGs, 28x28 grey, the true class in each name (000012_Trouser.png)."""
    ds = load_dataset("fashion-mnist", max_train=300, max_test=100)
    folder = tmp_path_factory.mktemp("pool")
    write_images(folder, ds.x_train[:, :1, 2:-2, 2:-2].contiguous(), ds.y_train,
                 class_names=NAMES, layout="flat")
    return folder


def _truth(path: str) -> str:
    return Path(path).stem.split("_", 1)[1]


def _annotate_csv(batch_csv: str, out: Path) -> Path:
    """The annotator fills the label column of the batch CSV."""
    with open(batch_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([r["path"], _truth(r["path"])] for r in rows)
    return out


def _annotate_label_studio(tasks_json: str, out: Path) -> Path:
    """What Label Studio exports (JSON) once the imported tasks are labeled with a
    <Choices name="choice" toName="image"> interface."""
    tasks = json.loads(Path(tasks_json).read_text())
    export = [{"id": i + 1, "data": t["data"], "project": 1,
               "annotations": [{"id": 100 + i, "completed_by": 1, "was_cancelled": False,
                                "result": [{"id": f"r{i}", "from_name": "choice",
                                            "to_name": "image", "type": "choices",
                                            "origin": "manual",
                                            "value": {"choices": [_truth(t["data"]["path"])]}}]}],
               "predictions": []} for i, t in enumerate(tasks)]
    out.write_text(json.dumps(export))
    return out


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_next_add_next_fit_with_csv_and_label_studio(pool, tmp_path, capsys):
    project = tmp_path / "project"
    assert main(["label", "start", str(project), "--images", str(pool), "--classes",
                 ",".join(NAMES), *TINY]) == 0
    assert "300 images, 1x28x28" in capsys.readouterr().out
    assert main(["label", "next", str(project), "--size", "40"]) == 0
    first = label.rounds(project)[0]
    assert first["selector"] is None and len(first["picks"]) == 40
    assert main(["label", "next", str(project), "--size", "40"]) == 0  # nothing labeled since
    assert label.rounds(project) == [first]
    capsys.readouterr()

    filled = _annotate_csv(first["csv"], tmp_path / "round1.csv")
    assert main(["label", "add", str(project), str(filled)]) == 0
    assert "40 labels added, 0 replaced, 0 unchanged; 40 labeled in all" in capsys.readouterr().out
    assert main(["label", "add", str(project), str(filled)]) == 0  # rerun: nothing changes
    assert "0 labels added, 0 replaced, 40 unchanged" in capsys.readouterr().out

    before = (project / label.LABELS).read_text()
    bad = tmp_path / "bad.csv"
    one = first["picks"][0]
    for rows, line in [
        ([["elsewhere/x.png", "Bag"]], "elsewhere/x.png: not an image of the project"),
        ([[one, "Cat"]], f"{one}: unknown class 'Cat'; the classes are"),
        ([[second := label.rounds(project)[0]["picks"][1], _truth(second)],
          [second, _truth(second)]], f"{second}: listed twice"),
        ([[one, "Bag" if _truth(one) != "Bag" else "Coat"]],
         f"{one}: already labeled {_truth(one)!r}"),
    ]:
        with open(bad, "w", newline="") as f:
            csv.writer(f).writerows([["path", "label"], *rows])
        assert main(["label", "add", str(project), str(bad)]) == 2
        assert line in _err(capsys)
        assert (project / label.LABELS).read_text() == before, "nothing lost, nothing half-added"

    assert main(["label", "next", str(project), "--size", "40"]) == 0
    second_round = label.rounds(project)[1]
    assert second_round["selector"]["score"] == "least_confidence"
    assert second_round["macs"] > 0 and len(second_round["scores"]) == 40
    assert not set(second_round["picks"]) & set(label.labels(project))
    tasks = json.loads(Path(second_round["tasks"]).read_text())
    assert tasks[0] == {"data": {"image": second_round["picks"][0],
                                 "path": second_round["picks"][0]}}
    export = _annotate_label_studio(second_round["tasks"], tmp_path / "export.json")
    capsys.readouterr()
    assert main(["label", "add", str(project), str(export)]) == 0
    assert "80 labeled in all" in capsys.readouterr().out
    conflicting = json.loads(export.read_text())[:1]
    conflicting[0]["annotations"].append(
        {"result": [{"type": "choices", "value": {"choices": ["Bag", "Coat"]}}]})
    (tmp_path / "conflict.json").write_text(json.dumps(conflicting))
    assert main(["label", "add", str(project), str(tmp_path / "conflict.json")]) == 2
    assert "conflicting labels" in _err(capsys)

    assert main(["label", "fit", str(project)]) == 0
    assert "held-out labels" in capsys.readouterr().out
    card = json.loads((project / "model" / "model_card.json").read_text())
    assert card["classes"] == NAMES and card["labels"] == 80 and card["holdout"]["images"] == 16
    assert [r["round"] for r in card["rounds"]] == [1, 2] and card["rounds"][1]["macs"] > 0
    assert (project / "model" / "model_card.md").read_text().startswith("# resnet8 on 80 labels")
    stamp = (project / "model" / "model.pt").stat().st_mtime_ns
    assert label.fit(project) == card, "rerun with nothing new: up to date"
    assert (project / "model" / "model.pt").stat().st_mtime_ns == stamp

    # the exported model predicts what the trained model predicts
    blob = torch.load(project / "model" / "model.pt", weights_only=True)
    assert blob["classes"] == NAMES  # the outputs' names travel with the weights
    model = build_model(blob["arch"], blob["num_classes"], blob["in_channels"], seed=0)
    model.load_state_dict(blob["state_dict"])
    scripted = torch.jit.load(project / "model" / "model.torchscript.pt")
    x, _ = load_images(sorted(pool.glob("*.png"))[:64])
    mean = torch.tensor(card["normalization"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(card["normalization"]["std"]).view(1, -1, 1, 1)
    inputs = (x.float() / 255 - mean) / std
    with torch.no_grad():
        assert torch.allclose(scripted(inputs), model.eval()(inputs), atol=1e-5)


def test_a_step_killed_halfway_reruns(pool, tmp_path, monkeypatch):
    project = tmp_path / "p"
    label.start(project, images=pool, classes=NAMES, arch="resnet8", selector_epochs=1)
    real = label.atomic_write_json

    def killed(path, obj):
        if Path(path).name == "round_01.json":
            raise KeyboardInterrupt
        return real(path, obj)

    monkeypatch.setattr(label, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        label.next_batch(project, size=10)
    assert label.rounds(project) == []  # the batch files may be there; the round is not
    monkeypatch.setattr(label, "atomic_write_json", real)
    assert label.next_batch(project, size=10)["round"] == 1


def test_label_studio_uploads_a_pending_batch_and_missing_images(pool, tmp_path, capsys):
    """An export of images uploaded to Label Studio (/data/upload/<project>/<8 hex>-<name>)
    is matched by name; a pending batch asked for at another size says so; an image gone
    since start is one line, exit 2."""
    import shutil

    images = tmp_path / "images"
    shutil.copytree(pool, images)
    project = tmp_path / "p"
    assert main(["label", "start", str(project), "--images", str(images), "--classes",
                 ",".join(NAMES), *TINY]) == 0
    assert main(["label", "next", str(project), "--size", "5"]) == 0
    capsys.readouterr()
    assert main(["label", "next", str(project), "--size", "8"]) == 0
    assert "round 1 is still to label (5 images, not --size 8)" in capsys.readouterr().out
    batch = label.rounds(project)[0]
    export = [{"id": i, "data": {"image": f"/data/upload/3/{i:08x}-{Path(path).name}"},
               "annotations": [{"result": [{"type": "choices",
                                            "value": {"choices": [_truth(path)]}}]}]}
              for i, path in enumerate(batch["picks"])]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["label", "add", str(project), str(tmp_path / "export.json")]) == 0
    assert "5 labels added" in capsys.readouterr().out
    assert label.labels(project) == {p: _truth(p) for p in batch["picks"]}
    gone = next(p for p in sorted(images.iterdir()) if str(p) not in batch["picks"])
    gone.unlink()
    assert main(["label", "next", str(project), "--size", "5"]) == 2
    assert f"{gone}: missing since the project started (1 image(s))" in _err(capsys)


def test_start_refuses_what_it_cannot_use(pool, tmp_path, capsys):
    assert main(["label", "start", str(tmp_path / "p"), "--images", str(pool)]) == 2
    assert "--classes: needed when no labels are given" in _err(capsys)
    assert main(["label", "start", str(tmp_path / "p"), "--images", str(pool), "--classes",
                 "a,b", "ratio=0"]) == 2
    assert "ratio=0: prunes nothing" in _err(capsys)
    assert main(["label", "start", str(tmp_path / "p"), "--images", str(pool), "--classes",
                 "a,b", "max_train=3"]) == 2
    assert "not parameters of the labeling loop" in _err(capsys)
    assert not (tmp_path / "p").exists()


def test_the_documented_commands_run_as_written(pool, tmp_path, monkeypatch, capsys):
    """docs/labeling.md's commands, in its order, one epoch per training; the annotator fills
    each file an `add` names (the batch CSV, or a Label Studio export of the batch)."""
    import re
    import shlex

    guide = (Path(__file__).parents[1] / "docs" / "labeling.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", guide, flags=re.S)[1].strip().splitlines()
    assert [c.split()[2] for c in commands] == ["start", "next", "add", "next", "add", "fit"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pool").symlink_to(pool)
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv[1] == "start":
            argv += TINY
        if argv[1] == "add":
            latest = label.rounds("proj")[-1]
            if argv[3].endswith(".json"):
                _annotate_label_studio(latest["tasks"], Path(argv[3]))
            else:
                _annotate_csv(latest["csv"], Path(argv[3]))
        assert main(argv) == 0, capsys.readouterr().err
    assert json.loads(Path("proj/model/model_card.json").read_text())["labels"] == 80


def test_the_readme_shows_the_documented_loop():
    """The README's labeling commands are the ones the test above runs, comments aside."""
    import re

    root = Path(__file__).parents[1]

    def block(text, first):
        found = [b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if first in b]
        assert found, first
        return [line.split("#")[0].strip() for line in found[0].strip().splitlines()]

    start = "prunefuse label start"
    assert block((root / "README.md").read_text(), start) == \
        block((root / "docs" / "labeling.md").read_text(), start)
