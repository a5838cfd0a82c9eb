"""Quantization-aware training: the torch forward of ``neuron_mode='fixed'`` is the deployed integer
network (``graph/fixed.py``) bit for bit — logits and every layer — with finite gradients."""
import numpy as np
import pytest
import torch

from lava_spikeformer import create_model
from lava_spikeformer.graph import simulate
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.nn.quantized import quantized_forward
from lava_spikeformer.training.checkpoint import load_model

from .conftest import TRAINED, randomize_bn

VARIANTS = [(), ("sdsa1",), ("sdsa2",), ("sdsa4",), ("vs_shortcut",), ("sew_shortcut",)]


def _neurons(graph):
    return [n.name for n in graph.nodes if n.spec.output == "spikes"]


@pytest.mark.parametrize("grad", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("ablations", VARIANTS, ids=["-".join(a) or "default" for a in VARIANTS])
def test_quantized_forward_equals_the_integer_reference(ablations, grad):
    """Both paths: with gradients (QAT) and without (evaluation, where spike-input convolutions run in
    float32 when their bound allows it)."""
    torch.manual_seed(0)
    model = randomize_bn(create_model("meta_spikeformer_small28", ablations=ablations, timesteps=3)).eval()
    torch.nn.init.normal_(model.head.fc.weight, std=0.5)
    graph = to_graph(model)
    x = torch.randn(4, 1, 28, 28)
    with torch.set_grad_enabled(grad):
        logits, records = quantized_forward(model, x, probes=_neurons(graph) + [graph.output])
    reference = simulate(graph, x.numpy(), probes=_neurons(graph), precision="fixed")
    spiking = 0
    for name in _neurons(graph) + [graph.output]:
        np.testing.assert_array_equal(records[name].detach().numpy(), reference[name], err_msg=name)
        spiking += int(reference[name].sum()) if name != graph.output else 0
    assert spiking > 0
    expected = reference[graph.output].mean(0) / 64
    np.testing.assert_array_equal(logits.detach().numpy(), expected)


def test_evaluation_stays_exact_without_onednn():
    """Without oneDNN, PyTorch sends float32 convolutions of batches >= 16 to NNPACK's Winograd, which
    is not exact on integers (measured: off by 0.03); the float32 path must then not be taken."""
    torch.manual_seed(0)
    model = randomize_bn(create_model("meta_spikeformer_small28", timesteps=2)).eval()
    graph = to_graph(model)
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        logits = quantized_forward(model, x)
    expected = simulate(graph, x.numpy(), precision="fixed")[graph.output].mean(0) / 64
    np.testing.assert_array_equal(logits.numpy(), expected)


def test_the_shipped_model_in_fixed_mode_predicts_what_lava_fixed_pt_runs():
    model, _ = load_model(TRAINED, neuron_mode="fixed", timesteps=4)
    model.eval()
    from lava_spikeformer.data import load_fashion_mnist
    x = load_fashion_mnist("test").subset(16).batch(slice(0, 16))
    graph = to_graph(model)
    with torch.no_grad():
        logits = model(x)
    reference = simulate(graph, x.double().numpy(), precision="fixed")[graph.output].mean(0) / 64
    np.testing.assert_array_equal(logits.double().numpy(), reference.astype(np.float32).astype(np.float64))


def test_gradients_are_finite_and_reach_every_trained_parameter_kind():
    torch.manual_seed(1)
    model = randomize_bn(create_model("meta_spikeformer_small28", timesteps=2, neuron_mode="fixed")).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any("head.fc" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert any("stages.0.0" in n and g.abs().sum() > 0 for n, g in grads.items())     # through the whole net
    assert any(".bn." in n or "bn" in n for n in grads)                                 # BN affine is folded in


def test_a_quantized_model_exports_the_same_graph_as_its_float_twin(tmp_path):
    model = randomize_bn(create_model("meta_spikeformer_small28")).eval()
    fixed_model = create_model("meta_spikeformer_small28", neuron_mode="fixed")
    fixed_model.load_state_dict(model.state_dict())
    a, b = to_graph(model), to_graph(fixed_model.eval())
    for x, y in zip(a.nodes, b.nodes):
        for key in x.params:
            np.testing.assert_array_equal(x.params[key], y.params[key])
