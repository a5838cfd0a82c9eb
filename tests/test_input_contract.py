"""The input contract travels config -> checkpoint -> export -> Lava: run-lava needs no --data, and a
mismatch between the model and the data named is one clear error naming both shapes."""
import json

import numpy as np
import pytest

from lava_spikeformer import create_model
from lava_spikeformer.cli import main
from lava_spikeformer.config import ModelConfig, build_config
from lava_spikeformer.graph import GraphError, InputSpec, read_graph
from lava_spikeformer.graph.input import KNOWN_DATASETS
from lava_spikeformer.training.checkpoint import load_model, save_checkpoint

from .conftest import EVENT_MODEL, ROOT, TRAINED

SHIPPED_IMAGE = ROOT / "netx_models" / "meta_spikeformer_small28_fmnist.h5"
SHIPPED_EVENTS = ROOT / "netx_models" / "meta_spikeformer_hardvs_medium_fmnist_dvs.h5"


def test_known_event_sensors_are_the_readers_own():
    from event_data import HARDVS, FashionMNISTDVS
    assert KNOWN_DATASETS["fmnist-dvs"]["sensor"] == FashionMNISTDVS.sensor_size
    assert KNOWN_DATASETS["hardvs"]["sensor"] == HARDVS.sensor_size


def test_event_dtype_is_tonics():
    from tonic.io import events_struct

    from event_data import EVENT_DTYPE
    assert EVENT_DTYPE == events_struct


def test_spec_travels_from_config_through_checkpoint_and_export(tmp_path):
    model = create_model("meta_spikeformer_small28", timesteps=2)
    spec = model.cfg.input_spec
    assert spec == InputSpec("image", (1, 28, 28), 2, (0.2860,), (0.3530,), None, "fmnist")
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_model(tmp_path / "m.pt")
    assert loaded.cfg.input_spec == spec
    graph = read_graph(loaded.eval().export_hdf5(tmp_path / "m.h5"))
    assert graph.input_spec == spec
    assert build_config("meta_spikeformer_hardvs_small").input_spec.sensor == (34, 34, 2)


def test_old_checkpoints_take_the_registered_data_set():
    cfg = build_config("meta_spikeformer_small28").to_dict()
    del cfg["dataset"]
    assert ModelConfig.from_dict(cfg).dataset == "fmnist"
    with pytest.raises(ValueError, match="ModelConfig.dataset must be"):
        build_config("meta_spikeformer_small28", dataset="cifar")


def test_normalization_equals_the_pytorch_pipeline():
    from lava_spikeformer.data import load_fashion_mnist, normalize
    images = load_fashion_mnist("test").images[:500]
    spec = build_config("meta_spikeformer_small28").input_spec
    np.testing.assert_array_equal(spec.normalize(images.numpy()), normalize(images).double().numpy())
    assert spec.abs_max() == pytest.approx((1 - 0.2860) / 0.3530)


def test_shipped_exports_carry_their_contract():
    assert read_graph(SHIPPED_IMAGE).input_spec.dataset == "fmnist"
    events = read_graph(SHIPPED_EVENTS).input_spec
    assert (events.kind, events.shape, events.timesteps, events.dataset) == ("events", (2, 32, 32), 8, "fmnist-dvs")


@pytest.mark.parametrize("export", [SHIPPED_IMAGE, SHIPPED_EVENTS], ids=["fmnist", "fmnist-dvs"])
def test_run_lava_without_data_uses_the_models_own(export, capsys):
    assert main(["run-lava", str(export), "--tag", "fixed_pt", "--images", "4", "--batch", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"] == read_graph(export).input_spec.dataset and result["images"] == 4
    assert len(result["accuracy_per_step"]) == result["latency_steps"] + result["timesteps"]


@pytest.mark.parametrize("export,data,message", [
    (SHIPPED_IMAGE, "fmnist-dvs", r"takes image of shape \(1, 28, 28\); --data fmnist-dvs gives event frames"),
    (SHIPPED_EVENTS, "fmnist", r"takes events of shape \(2, 32, 32\); --data fmnist gives images \(1, 28, 28\)"),
])
def test_run_lava_refuses_data_that_does_not_fit(export, data, message, capsys):
    assert main(["run-lava", str(export), "--data", data, "--images", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert __import__("re").search(message, err), err


def test_export_without_a_recorded_data_set_asks_for_one(tmp_path, capsys):
    model = create_model("meta_spikeformer_small28", dataset="")
    path = model.eval().export_hdf5(tmp_path / "m.h5")
    assert main(["run-lava", str(path), "--images", "2"]) == 2
    assert "does not record the data set it was made for" in capsys.readouterr().err
    with pytest.raises(GraphError, match="input_spec.shape"):
        InputSpec("image", (0, 28, 28), 1)


def test_reset_classifier_for_transfer():
    model, _ = load_model(TRAINED)
    model.reset_classifier(5)
    assert model.cfg.num_classes == 5 and model.head.fc.weight.shape[:2] == (5, model.num_features)
    import torch
    assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    event_model, _ = load_model(EVENT_MODEL)
    event_model.reset_classifier(300)
    assert event_model.cfg.num_classes == 300
