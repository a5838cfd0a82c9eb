import csv

import pytest

from lava_spikeformer.training.checkpoint import load_checkpoint, load_model
from lava_spikeformer.cli import main
from lava_spikeformer.data import load_fashion_mnist
from lava_spikeformer.training.train import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def fmnist():
    """The real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by `make test`)."""
    return load_fashion_mnist("train"), load_fashion_mnist("test")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_training_learns_real_fashion_mnist(tmp_path, fmnist):
    train_set, test_set = fmnist
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=3, batch_size=64, lr=3e-3, train_subset=1536, test_subset=500)
    result = train(cfg, train_set, test_set, progress=False)
    assert result["test_acc"] >= 0.45, result          # chance is 0.10; measured 0.52
    rows = _rows(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    model, payload = load_model(tmp_path / "checkpoint.pt")
    assert payload["epoch"] == 3
    _, acc = evaluate(model, test_set.subset(500), progress=False)
    assert acc == pytest.approx(result["test_acc"])


def test_resume_continues_where_it_stopped(tmp_path, fmnist):
    train_set, test_set = fmnist
    common = dict(out_dir=str(tmp_path / "a"), batch_size=64, train_subset=256, test_subset=64)
    full = train(TrainConfig(epochs=2, **common), train_set, test_set, progress=False)
    common["out_dir"] = str(tmp_path / "b")
    train(TrainConfig(epochs=1, **common), train_set, test_set, progress=False)
    resumed = train(TrainConfig(epochs=2, resume=True, **common), train_set, test_set, progress=False)
    assert [int(r["epoch"]) for r in _rows(tmp_path / "b" / "metrics.csv")] == [1, 2]
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    steps = [s["step"].item() for s in b["optimizer"]["state"].values()]
    assert set(steps) == {8.0}, "AdamW state carried over: 2 epochs x 4 steps"
    assert b["scheduler"]["last_epoch"] == a["scheduler"]["last_epoch"] == 8
    assert b["epoch"] == 2 and resumed["epoch"] == full["epoch"] == 2


def test_t1_then_t4_finetune_via_cli(tmp_path, fmnist):
    t1 = tmp_path / "t1"
    assert main(["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "64", "--batch-size", "64",
                 "--out", str(t1), "--energy-images", "32"]) == 0
    t4 = tmp_path / "t4"
    assert main(["train", "--epochs", "1", "--train-subset", "128", "--test-subset", "64", "--batch-size", "64",
                 "--timesteps", "4", "--finetune-from", str(t1 / "checkpoint.pt"), "--lr", "2e-5",
                 "--out", str(t4), "--energy-images", "32"]) == 0
    model, _ = load_model(t4 / "checkpoint.pt")
    assert model.timesteps == 4
    assert _rows(t4 / "metrics.csv")[0]["timesteps"] == "4"
    for name in ("energy.json", "energy.png", "summary.json", "curves.png"):
        assert (t4 / name).exists(), name
