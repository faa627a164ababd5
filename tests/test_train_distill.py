"""KD loss (step 4) and the trainer: schedule, determinism, KD path."""

import json

import pytest
import torch
import torch.nn.functional as F

from prunefuse.config import _rounded_svp_phases
from prunefuse.data import load_dataset
from prunefuse.device import resolve_eval_batch
from prunefuse.distill import kd_kl, kd_loss
from prunefuse.models import build_model
from prunefuse.prune import prune_at_init
from prunefuse.train import evaluate, lr_at, svp_phases, train


def test_kd_zero_when_student_equals_teacher():
    logits = torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    assert kd_kl(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, logits.clone(), y, kd_lambda=1.0).item() == pytest.approx(0, abs=1e-6)
    assert kd_loss(logits, logits, y, kd_lambda=0.0).item() == pytest.approx(
        F.cross_entropy(logits, y).item())


def test_kd_matches_formula_and_gradients_reach_student_only():
    s = torch.randn(5, 4, requires_grad=True)
    t = torch.randn(5, 4, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    lam, temp = 0.3, 2.0
    loss = kd_loss(s, t, y, kd_lambda=lam, temperature=temp)
    pt, ps = F.softmax(t / temp, 1), F.softmax(s / temp, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    ref = (1 - lam) * F.cross_entropy(s, y) + lam * temp**2 * kl
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_kd_rejects_bad_hyperparameters():
    z = torch.randn(2, 3)
    with pytest.raises(ValueError, match="kd_lambda=1.5"):
        kd_loss(z, z, torch.tensor([0, 1]), kd_lambda=1.5)
    with pytest.raises(ValueError, match="kd_temperature=0"):
        kd_loss(z, z, torch.tensor([0, 1]), temperature=0)


def test_svp_schedule_181_epochs():
    lrs = [lr_at(e, 181, 0.1) for e in range(181)]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1:91] == [0.1] * 90
    assert lrs[91:136] == [pytest.approx(0.01)] * 45
    assert lrs[136:] == [pytest.approx(0.001)] * 45
    assert lr_at(0, 10, 0.1, "cosine") == 0.1
    with pytest.raises(ValueError, match="schedule='step'"):
        lr_at(0, 10, 0.1, "step")


def _phases(epochs, schedule):
    """Lengths of the runs of equal learning rate, in epoch order, as (divisor, length)."""
    out = []
    for e in range(epochs):
        div = round(1.0 / lr_at(e, epochs, 1.0, schedule))
        if out and out[-1][0] == div:
            out[-1][1] += 1
        else:
            out.append([div, 1])
    return [tuple(p) for p in out]


@pytest.mark.parametrize("epochs,phases,old", [
    (181, (1, 90, 45, 45), (1, 90, 45, 45)),
    # the old rounding of each boundary made the lr/10 phase shorter than the lr/100 one ...
    (20, (1, 9, 5, 5), (1, 10, 4, 5)),
    (60, (1, 29, 15, 15), (1, 30, 14, 15)),
    # ... and dropped it at 4 epochs; every phase is present from 4 epochs on now.
    (4, (1, 1, 1, 1), (1, 2, 0, 1)),
])
def test_schedule_phase_lengths(epochs, phases, old):
    assert svp_phases(epochs) == phases and sum(phases) == epochs
    assert _phases(epochs, "svp") == [(d, n) for d, n in zip((10, 1, 10, 100), phases)]
    assert _rounded_svp_phases(epochs) == old


def test_run_ids_change_only_where_the_svp_schedule_did():
    from prunefuse.config import make_config, run_id

    base = make_config("paper")  # 181 epochs: the same phases, the same id as before
    assert "svp_phases" not in json.dumps(base)
    changed = make_config("paper", target_epochs=60)
    same_cosine = make_config("paper", target_epochs=60, schedule="cosine")
    # 181 keeps its id; 60 epochs of svp get the marker, cosine is untouched by it
    assert run_id(base).endswith(_digest({k: v for k, v in base.items()}))
    assert not run_id(changed).endswith(_digest(changed))
    assert run_id(same_cosine).endswith(_digest(same_cosine))


def _digest(cfg):
    """The run id's hash as it was computed before the svp phases changed."""
    import hashlib

    from prunefuse.config import ID_IF_NOT_DEFAULT, NOT_IN_ID, PARAMS
    ident = {k: v for k, v in sorted(cfg.items()) if k not in NOT_IN_ID
             and not (k in ID_IF_NOT_DEFAULT and v == PARAMS[k].default)}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def test_svp_phases_are_the_closest_integer_split():
    # Brute force: among all splits with every phase >= 1, the least squared deviation from
    # epochs * (1, 90, 45, 45) / 181; ties to the earlier phase, as in lexicographic order.
    for epochs in range(4, 24):
        quota = [epochs * w / 181 for w in (1, 90, 45, 45)]
        best = min(((a, b, c, epochs - a - b - c) for a in range(1, epochs)
                    for b in range(1, epochs) for c in range(1, epochs) if epochs - a - b - c >= 1),
                   key=lambda s: (round(sum((x - q) ** 2 for x, q in zip(s, quota)), 12),
                                  [-x for x in s]))
        assert svp_phases(epochs) == best, epochs
    assert svp_phases(3) == (0, 1, 1, 1) and svp_phases(0) == (0, 0, 0, 0)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", num_train=300, num_test=100, seed=0)


def _run(ds, seed, teacher=None):
    model = build_model("resnet8", 10, seed=0)
    hist = train(model, ds.x_train, ds.y_train, mean=ds.mean, std=ds.std, epochs=2,
                 batch_size=64, seed=seed, teacher=teacher, progress=False, device="cpu",
                 test=(ds.x_test, ds.y_test))
    return model, hist


@pytest.mark.slow
def test_amp_flag_reaches_the_forward_passes(synthetic):
    """precision='fp32' passes amp=False; on the CPU amp=None is fp32 too, amp=True is not."""
    kw = dict(mean=synthetic.mean, std=synthetic.std, epochs=1, batch_size=64, seed=0,
              progress=False, device="cpu", test=(synthetic.x_test, synthetic.y_test))
    runs = {amp: train(build_model("resnet8", 10, seed=0), synthetic.x_train, synthetic.y_train,
                       amp=amp, **kw)[0] for amp in (None, False, True)}
    assert runs[None]["train_loss"] == runs[False]["train_loss"]
    assert runs[None]["test_loss"] == runs[False]["test_loss"]
    assert runs[True]["train_loss"] != runs[False]["train_loss"]


def test_same_seed_same_losses_on_cpu(synthetic):
    _, a = _run(synthetic, seed=1)
    _, b = _run(synthetic, seed=1)
    _, c = _run(synthetic, seed=2)
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["test_acc"] for r in a] == [r["test_acc"] for r in b]
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]
    assert set(a[0]) >= {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
                         "seconds", "images_per_s"}


@pytest.mark.slow
def test_compiled_training_matches_eager_on_cpu(synthetic):
    """``compile=True`` (torch.compile, inductor on CPU) trains the same model: equal up to
    floating-point rounding, and the weights of the module passed in are the ones updated.
    One graph per architecture: the epoch's short last batch runs eagerly, so a new model
    of the same shape on a labeled set of another size (a later round) compiles nothing."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    x, y = synthetic.x_train[:150], synthetic.y_train[:150]  # batches of 64, 64 and 22
    runs = []
    for compiled in (False, True):
        model = build_model("resnet8", 10, seed=0)
        hist = train(model, x, y, mean=synthetic.mean, std=synthetic.std, epochs=1,
                     batch_size=64, seed=3, compile=compiled, progress=False, device="cpu")
        runs.append((model, hist[0]["train_loss"]))
    (eager, loss_e), (comp, loss_c) = runs
    assert loss_c == pytest.approx(loss_e, rel=1e-3)
    for (name, a), b in zip(eager.state_dict().items(), comp.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
    assert counters["stats"]["unique_graphs"] == 1
    train(build_model("resnet8", 10, seed=1), x[:100], y[:100], mean=synthetic.mean,
          std=synthetic.std, epochs=1, batch_size=64, compile=True, progress=False, device="cpu")
    assert counters["stats"]["unique_graphs"] == 1


def test_kd_training_leaves_teacher_frozen(synthetic):
    dense = build_model("resnet8", 10, seed=0)
    teacher, _ = prune_at_init(dense, 0.5, torch.zeros(1, 3, 32, 32))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    _, hist = _run(synthetic, seed=0, teacher=teacher)
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(before[k], v), k  # BN running stats included
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in hist)


def test_train_rejects_bad_arguments(synthetic):
    model = build_model("resnet8", 10)
    with pytest.raises(ValueError, match="epochs=-1"):
        train(model, synthetic.x_train, synthetic.y_train, mean=synthetic.mean,
              std=synthetic.std, epochs=-1, progress=False)
    with pytest.raises(ValueError, match="device='cuda'"):
        if torch.cuda.is_available():
            raise ValueError("device='cuda' available; nothing to test")
        train(model, synthetic.x_train, synthetic.y_train, mean=synthetic.mean,
              std=synthetic.std, epochs=1, device="cuda", progress=False)


def test_eval_batch_default_per_device_and_results_independent_of_it(synthetic):
    assert resolve_eval_batch(torch.device("cpu")) == 128
    assert resolve_eval_batch(torch.device("cuda")) == 1024
    assert resolve_eval_batch(torch.device("cpu"), 7) == 7
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"batch_size={bad!r}: must be an int >= 1"):
            resolve_eval_batch(torch.device("cpu"), bad)
    model = build_model("resnet8", 10, seed=1)
    x, y = synthetic.x_test[:300], synthetic.y_test[:300]
    kw = {"mean": synthetic.mean, "std": synthetic.std}
    default = evaluate(model, x, y, **kw)  # batch 128, channels_last inputs
    odd = evaluate(model, x, y, **kw, batch_size=37)
    assert default["test_acc"] == odd["test_acc"]
    assert default["test_loss"] == pytest.approx(odd["test_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate(model, x, y, **kw, batch_size=0)


def test_loops_build_normalization_constants_once(synthetic, monkeypatch):
    """Every batch of train, evaluate and score_pool gets mean/std as tensors already on its
    device: built from the Python tuples once per loop, not copied host-to-device per batch
    (a copy that blocks the host on CUDA)."""
    import prunefuse.select as select_mod
    import prunefuse.train as train_mod
    from prunefuse.augment import normalize

    seen = []

    def spy(x, mean, std, *args, **kw):
        seen.append((isinstance(mean, torch.Tensor) and mean.device == x.device,
                     isinstance(std, torch.Tensor) and std.device == x.device))
        return normalize(x, mean, std, *args, **kw)

    monkeypatch.setattr(train_mod, "normalize", spy)
    monkeypatch.setattr(select_mod, "normalize", spy)
    model = build_model("resnet8", 10, seed=0)
    kw = {"mean": synthetic.mean, "std": synthetic.std}
    x, y = synthetic.x_train[:256], synthetic.y_train[:256]
    train(model, x, y, **kw, epochs=1, batch_size=64, test=(x[:100], y[:100]),
          eval_batch_size=50, progress=False, device="cpu")
    select_mod.score_pool(model, x[:100], **kw, batch_size=50)
    assert len(seen) == 4 + 2 + 2  # 4 steps, 2 test batches, 2 scoring batches
    assert all(a and b for a, b in seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_training_does_not_synchronize_per_step(synthetic):
    """The host waits for the GPU a fixed number of times per epoch, however many steps the
    epoch has: torch's sync debug mode warns at every synchronizing call."""
    import warnings

    def syncs(n_images):
        model = build_model("resnet8", 10, seed=0)
        x, y = synthetic.x_train[:n_images].cuda(), synthetic.y_train[:n_images].cuda()
        train(model, x[:64], y[:64], mean=synthetic.mean, std=synthetic.std, epochs=1,
              batch_size=32, progress=False, device="cuda")  # warm-up: cuDNN, allocator
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train(model, x, y, mean=synthetic.mean, std=synthetic.std, epochs=1,
                      batch_size=32, progress=False, device="cuda")
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message) for w in caught)

    few, many = syncs(64), syncs(288)  # 2 steps against 9 steps
    assert few == many, (few, many)


@pytest.mark.slow
@pytest.mark.realdata
def test_fashion_mnist_trains_well_above_chance():
    from pathlib import Path

    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist (CI installs it)")
    ds = load_dataset("fashion-mnist", max_train=3000, max_test=1000)
    model = build_model("resnet8", 10, seed=0)
    train(model, ds.x_train, ds.y_train, mean=ds.mean, std=ds.std, epochs=4, seed=0,
          progress=False, device="cpu")
    acc = evaluate(model, ds.x_test, ds.y_test, mean=ds.mean, std=ds.std, device="cpu")
    assert acc["test_acc"] > 0.6  # chance is 0.1


def test_kd_pull_compares_the_readings_pull_towards_the_teacher():
    from prunefuse.config import READINGS
    from prunefuse.distill import kd_pull

    assert kd_pull(0.5, 4.0) == 1.0 and kd_pull(0.0, 3.0, t2=False) == 0.0
    authors = READINGS["authors"]
    theirs = kd_pull(authors["kd_lambda"], authors["kd_temperature"], authors["kd_t2"])
    assert theirs == pytest.approx(0.35 / 9 / 0.65) and round(1.0 / theirs) == 17
    assert kd_pull(1.0, 4.0) == float("inf")
