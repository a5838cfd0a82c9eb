"""Every shipped model in netx_models/ loads, runs on Lava and reproduces its model card."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lava_spikeformer.fileio import check_seal
from lava_spikeformer.training.checkpoint import load_checkpoint, load_model
from lava_spikeformer.graph import read_graph
from lava_spikeformer.nn.fold import to_graph

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "netx_models").glob("*.json"))
_spec = importlib.util.spec_from_file_location("model_cards", ROOT / "benchmarks" / "model_cards.py")
model_cards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(model_cards)


def test_both_shipped_models_have_cards():
    assert {c.stem for c in CARDS} == {"meta_spikeformer_small28_fmnist", "meta_spikeformer_hardvs_medium_fmnist_dvs"}
    for card in CARDS:
        for suffix in (".h5", ".pt", ".md"):
            assert card.with_suffix(suffix).is_file(), card.with_suffix(suffix)
        assert check_seal(card.with_suffix(".h5")), "shipped exports carry their SHA-256 (fileio.write_sealed_hdf5)"
        assert "model_sha256" in load_checkpoint(card.with_suffix(".pt")), "and the checkpoints their weights'"


@pytest.mark.parametrize("card_path", CARDS, ids=[c.stem for c in CARDS])
def test_shipped_model_reproduces_its_card_on_lava(card_path):
    card = json.loads(card_path.read_text())
    graph = read_graph(card_path.with_suffix(".h5"))
    model, _ = load_model(card_path.with_suffix(".pt"))
    model.eval()
    assert model.cfg.neuron_mode == "float"      # a shipped file loads as the float model, also after QAT
    assert sum(p.numel() for p in model.parameters()) == card["params"]
    assert graph.timesteps == card["timesteps"] and list(graph.input.shape) == card["input"]
    assert graph.latency == card["latency_steps"]
    np.testing.assert_allclose(to_graph(model).by_name[graph.output].params["weight"],
                               graph.by_name[graph.output].params["weight"], rtol=0, atol=0)
    subset = card["evaluation_subset"]
    measured = model_cards.accuracies(model, graph, card["data"], subset["images"], batch=subset["images"])
    for key in ("pytorch", "lava_floating_pt", "lava_fixed_pt"):
        assert measured[key] == subset[key], key
    assert min(subset["pytorch"], subset["lava_fixed_pt"]) > 0.75 and abs(subset["lava_fixed_pt"] - subset["pytorch"]) <= 0.05
