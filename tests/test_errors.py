"""Bad input -> one clear error naming the file/field and the expectation."""
import gzip

import numpy as np
import pytest
import torch

from lava_spikeformer import create_model
from lava_spikeformer.training.checkpoint import (CheckpointError, load_checkpoint, load_model, save_checkpoint,
                                                  weights_sha256)
from lava_spikeformer.cli import main
from lava_spikeformer.data import DataError, load_fashion_mnist

from .conftest import write_idx


def test_valid_tree_loads(fmnist_dir):
    data = load_fashion_mnist("train", fmnist_dir)
    assert data.images.shape == (16, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (16,) and int(data.labels.max()) < 10


def test_missing_files_name_the_package_and_option(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz not found.*dataset-fashion-mnist.*--data-dir"):
        load_fashion_mnist("train", tmp_path)


def test_corrupt_gzip_names_the_file(fmnist_dir):
    path = fmnist_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: cannot read IDX file"):
        load_fashion_mnist("test", fmnist_dir)


def test_truncated_payload_names_the_file_and_sizes(fmnist_dir):
    path = fmnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: \d+ bytes, expected \d+ for 8 items"):
        load_fashion_mnist("test", fmnist_dir)


def test_wrong_magic_and_image_size(fmnist_dir):
    write_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz", np.zeros((8, 28, 28)), 2051)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: IDX magic 2051, expected 2049"):
        load_fashion_mnist("test", fmnist_dir)
    write_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz", np.zeros((8, 32, 32)), 2051)
    with pytest.raises(DataError, match=r"item shape \(32, 32\), expected \(28, 28\)"):
        load_fashion_mnist("test", fmnist_dir)


def test_label_out_of_range_and_count_mismatch(fmnist_dir):
    write_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz", np.full((8,), 12), 2049)
    with pytest.raises(DataError, match=r"label 12 out of range 0\.\.9"):
        load_fashion_mnist("test", fmnist_dir)
    write_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz", np.zeros((5,)), 2049)
    with pytest.raises(DataError, match="holds 8 images but .* 5 labels"):
        load_fashion_mnist("test", fmnist_dir)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, create_model("meta_spikeformer_small28"), epoch=1)
    return path


def test_checkpoint_round_trip(checkpoint):
    model, payload = load_model(checkpoint, timesteps=4)
    assert payload["epoch"] == 1 and model.timesteps == 4
    assert not list(checkpoint.parent.glob("*.tmp")), "atomic write leaves no temporary file"


def test_missing_and_corrupt_checkpoint(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"broken\.pt is corrupt or not a torch file"):
        load_checkpoint(broken)


def test_foreign_and_future_checkpoints(tmp_path, checkpoint):
    foreign = tmp_path / "foreign.pt"
    torch.save(create_model("meta_spikeformer_small28").state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a lava-spikeformer checkpoint"):
        load_checkpoint(foreign)
    payload = torch.load(checkpoint, weights_only=True)
    payload["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(payload, future)
    with pytest.raises(CheckpointError, match="'format_version' is 99, this version reads 1"):
        load_checkpoint(future)
    payload["format_version"] = 1
    payload["config"]["sdsa"] = 7
    torch.save(payload, future)
    with pytest.raises(CheckpointError, match="field 'config' is invalid: ModelConfig.sdsa"):
        load_checkpoint(future)


def test_incompatible_weights_list_the_keys(tmp_path, checkpoint):
    payload = torch.load(checkpoint, weights_only=True)
    payload["model"].pop("head.fc.weight")
    payload["model"]["extra.weight"] = torch.zeros(1)
    payload["model"]["head.fc.bias"] = torch.zeros(7)
    payload["model_sha256"] = weights_sha256(payload["model"])      # intact: written for another model
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=r"missing keys \['head.fc.weight'\].*unexpected keys \['extra.weight'\]"
                                              r".*head.fc.bias: checkpoint \(7,\) vs model \(10,\)"):
        load_model(bad)


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint") and "does not exist" in err and "\n" not in err
