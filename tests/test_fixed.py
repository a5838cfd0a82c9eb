"""The integer network of ``graph.fixed``: hand-checked quantization and neuron arithmetic."""
import numpy as np
import pytest
import torch

from lava_spikeformer import create_model
from lava_spikeformer.graph import fixed, kernels as ops, simulate
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.graph.simulate import predict

from .conftest import randomize_bn


def test_weights_get_8_bit_mantissas_with_a_per_channel_exponent():
    mantissa, exponent = fixed.quantize_weight(np.array([[0.5, -0.25], [3.0, 0.001]]))
    # 127 / 0.5 = 254 -> 2**7; 127 / 3 = 42.3 -> 2**5
    np.testing.assert_array_equal(exponent, [7, 5])
    np.testing.assert_array_equal(mantissa, [[64, -32], [96, 0]])
    assert np.abs(mantissa).max() <= 127


def test_shift_rounds_half_up_per_channel():
    acc = np.array([[5, -5, 6, 3]])
    np.testing.assert_array_equal(fixed.shift_round(acc, np.array([1, 1, 2, -2])), [[3, -2, 2, 12]])


def test_integer_lif_reproduces_the_hand_computed_float_sequence():
    x = fixed.quantize_input([2.0, 0.0, 1.0, 1.0, 1.5, 0.5, -2.0, 3.0])
    lif = ops.LIFState(threshold=1.0, tau=2.0, step_fn=fixed.lif_step_fixed)
    spikes = [int(lif.step(np.array([v]))[0]) for v in x]
    assert spikes == [1, 0, 0, 0, 1, 0, 0, 1]                 # u = 2h in 1/64: 128 fires exactly at vth=128
    assert fixed.v_threshold(1.0, 2.0) == 128 and fixed.decay_factor(2.0) == 2048


def test_fixed_point_network_tracks_the_float_network():
    torch.manual_seed(0)
    model = randomize_bn(create_model("meta_spikeformer_small28", timesteps=2)).eval()
    torch.nn.init.normal_(model.head.fc.weight, std=0.5)
    graph = to_graph(model)
    x = np.random.default_rng(0).normal(size=(8, 1, 28, 28))
    float_logits, fixed_logits = predict(graph, x), predict(graph, x, precision="fixed")
    out = simulate(graph, x, precision="fixed")[graph.output]
    assert out.dtype == np.int64 and np.abs(float_logits).max() > 0.1
    # a random deep network amplifies every flipped spike; the logits must still clearly agree
    assert np.corrcoef(fixed_logits.ravel(), float_logits.ravel())[0, 1] > 0.85


def test_unknown_precision_is_rejected():
    graph = to_graph(create_model("meta_spikeformer_small28").eval())
    with pytest.raises(ValueError, match="precision must be one of"):
        simulate(graph, np.zeros((1, 1, 28, 28)), precision="half")
