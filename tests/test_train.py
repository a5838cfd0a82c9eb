import csv

import pytest
import torch

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


def test_resume_continues_where_it_stopped(tmp_path, fmnist, monkeypatch):
    """A run killed in its second epoch and resumed ends with the same weights, bit for bit, as the
    uninterrupted run: model, optimizer and scheduler state and the batch/augmentation generator are in
    the checkpoint, and nothing else in a step draws randomness. (An earlier version of this test
    compared a 2-epoch run with a 1-epoch run extended to 2 and found > 1e-5 differences: that is a
    different run, not an interrupted one. The cosine schedule is planned over ``epochs``, so the
    1-epoch run's first epoch already had other learning rates; extending a finished run re-plans
    the schedule and cannot equal a run planned for the longer length from the start.)"""
    from lava_spikeformer.training import train as train_module
    train_set, test_set = fmnist
    common = dict(batch_size=64, train_subset=256, test_subset=64, epochs=2)   # augmentation on (default)
    full = train(TrainConfig(out_dir=str(tmp_path / "a"), **common), train_set, test_set, progress=False)

    step = train_module.TrainStep.__call__
    calls = []

    def killed_in_epoch_2(self, x, y):
        calls.append(1)
        if len(calls) == 6:                     # 4 steps per epoch: step 2 of epoch 2
            raise KeyboardInterrupt
        return step(self, x, y)
    monkeypatch.setattr(train_module.TrainStep, "__call__", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out_dir=str(tmp_path / "b"), **common), train_set, test_set, progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(train_module.TrainStep, "__call__", step)
    resumed = train(TrainConfig(out_dir=str(tmp_path / "b"), resume=True, **common), train_set, test_set,
                    progress=False)

    assert [int(r["epoch"]) for r in _rows(tmp_path / "b" / "metrics.csv")] == [1, 2]
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, f"resumed weights differ from the uninterrupted run's: {different[:5]}"
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        for name, value in state_a[key].items():
            assert torch.equal(value, state_b[key][name]), (key, name)
    assert {s["step"].item() for s in state_b.values()} == {8.0}, "AdamW state carried over: 2 epochs x 4 steps"
    assert b["scheduler"] == a["scheduler"] and b["scheduler"]["last_epoch"] == 8
    assert torch.equal(a["rng"], b["rng"])
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        assert resumed[key] == full[key], key
    assert b["epoch"] == resumed["epoch"] == full["epoch"] == 2


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


def test_random_erasing_draws_from_the_run_generator(fmnist, tmp_path):
    """Every image erased at P=1: one zero rectangle of 2-33 % of the image (Fashion-MNIST's background
    is 0), the same rectangles for the same generator state (a resumed run repeats them), none at P=0."""
    from lava_spikeformer.data.fashion_mnist import random_erase
    train_set = fmnist[0]
    images = train_set.images[:64].clone()
    images[images == 0] = 1                                   # make every erased pixel countable
    erased = random_erase(images, torch.Generator().manual_seed(3), 1.0)
    again = random_erase(images, torch.Generator().manual_seed(3), 1.0)
    assert torch.equal(erased, again) and torch.equal(images, train_set.images[:64].clamp(min=1))   # input kept
    fraction = (erased == 0).flatten(1).float().mean(1)
    assert fraction.min() >= 0.015 and fraction.max() <= 0.36, (fraction.min(), fraction.max())
    for image in erased[:, 0]:                                # the zeros form one rectangle
        rows, cols = torch.nonzero(image == 0, as_tuple=True)
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert torch.equal(random_erase(images, torch.Generator().manual_seed(3), 0.0), images)
    with pytest.raises(ValueError, match="random_erasing"):
        train(TrainConfig(epochs=1, random_erasing=1.5, out_dir=str(tmp_path)), train_set, fmnist[1])


def test_init_from_an_image_model_adapts_only_the_input_conv():
    """The shipped image model's weights start the event model of the same widths: every tensor copied,
    the 1-channel input conv repeated for both polarities at half weight (equal polarities give the
    image model's response)."""
    from lava_spikeformer import create_model
    from lava_spikeformer.training.checkpoint import CheckpointError, transfer_weights

    from .conftest import TRAINED
    source = load_checkpoint(TRAINED)["model"]
    model = create_model("meta_spikeformer_hardvs_medium")
    adapted = transfer_weights(TRAINED, model)
    assert adapted == ["stages.0.0.encode.conv.weight"]
    state = model.state_dict()
    for key, value in source.items():
        if key not in adapted:
            assert torch.equal(state[key], value), key
    conv, image_conv = state[adapted[0]], source[adapted[0]]
    assert conv.shape[1] == 2 and torch.equal(conv[:, :1], image_conv / 2) and torch.equal(conv[:, 1:], image_conv / 2)
    with pytest.raises(CheckpointError, match=r"does not fit model meta_spikeformer_hardvs_small: shape mismatches"):
        transfer_weights(TRAINED, create_model("meta_spikeformer_hardvs_small"))


def test_init_from_via_cli_starts_from_the_given_weights(tmp_path, fmnist, capsys):
    """One batch at lr 1e-9 from the shipped model keeps its accuracy (from scratch: ~10 %); the run
    resumes from its own checkpoint once the file it started from is gone."""
    import json
    import shutil

    from .conftest import TRAINED
    out, init = tmp_path / "run", tmp_path / "image_model.pt"
    shutil.copyfile(TRAINED, init)
    args = ["train", "--init-from", str(init), "--train-subset", "64", "--test-subset", "300", "--batch-size", "64",
            "--lr", "1e-9", "--warmup-epochs", "0", "--energy-images", "16", "--out", str(out)]
    assert main(args + ["--epochs", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["test_acc"] >= 0.85       # the shipped model: 94 %
    init.unlink()
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_acc"] >= 0.85
    capsys.readouterr()
    assert main(args + ["--epochs", "1", "--finetune-from", str(TRAINED)]) == 2
    assert "--init-from and --finetune-from both give the starting weights" in capsys.readouterr().err
    assert main(["train", "--init-from", str(out / "checkpoint.pt"), "--epochs", "1", "--out", str(out)]) == 2
    assert "is the input" in capsys.readouterr().err
