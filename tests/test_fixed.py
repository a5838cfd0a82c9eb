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


def test_shift_floors_per_channel_as_lavas_weight_exp():
    acc = np.array([[5, -5, 6, 3]])
    np.testing.assert_array_equal(fixed.shift_floor(acc, np.array([1, 1, 2, -2])), [[2, -3, 1, 12]])


def test_biases_scales_and_the_mean_are_8_bit_mantissas():
    mantissa, k = fixed.quantize_integer([5, -127, 128, 300, -1000, 0])
    np.testing.assert_array_equal(mantissa << k, [5, -127, 128, 300, -1000, 0])
    assert np.abs(mantissa).max() <= 127 and k.tolist() == [0, 0, 1, 2, 3, 0]
    assert fixed.quantized_integer([255]).tolist() == [256]              # 255 / 2 = 127.5 -> 128 -> 64 << 2
    assert fixed.mean_reciprocal(49) == (84, 12)                          # 84 / 4096 = 0.020508 ~ 1/49
    assert fixed.mean_reciprocal(64) == (64, 12)                          # exact for powers of two
    x = np.arange(2 * 49).reshape(1, 2, 7, 7)
    np.testing.assert_array_equal(fixed.spatial_mean_fixed(x), [[(x[0, 0].sum() * 84) >> 12,
                                                                 (x[0, 1].sum() * 84) >> 12]])


def test_integer_lif_is_lavas_bit_accurate_lif_with_greater_or_equal():
    x = fixed.quantize_input([2.0, 0.0, 1.0, 1.0, 1.5, 0.5, -2.0, 3.0])
    lif = ops.LIFState(threshold=1.0, tau=2.0, step_fn=fixed.lif_step_fixed)
    spikes = [int(lif.step(np.array([v]))[0]) for v in x]
    # v in 2**-12: 2.0 -> 128 << 6 = 8192 (+1) > vth 128 << 6 = 8192: fires exactly at the threshold (>=)
    assert spikes == [1, 0, 0, 0, 1, 0, 0, 1]
    assert fixed.v_threshold(1.0, 2.0) == 128 and fixed.dv(2.0) == 2048
    # the hand-computed membrane: after 1.0, 1.0 (no spike): v = (4097 >> 1) + 4096 + 1 = 6145
    _, v = fixed.lif_step_fixed(np.array([64]), np.array([4097]), 1.0, 2.0)
    assert v.tolist() == [6145]
    _, v = fixed.lif_step_fixed(np.array([-64]), np.array([-4095]), 1.0, 2.0)
    assert v.tolist() == [-2047 - 4096 + 1]                              # decay truncates toward zero
    _, v = fixed.lif_step_fixed(np.array([1 << 17, (1 << 17) + 1]), np.array([0, 0]), 1.0, 2.0)
    assert v.tolist() == [(1 << 23) - 1, -(1 << 23) + 64 + 1]          # 2**23 saturates v; above wraps u


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
