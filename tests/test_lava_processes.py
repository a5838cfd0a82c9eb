"""Each custom Lava Process, run through ``run(RunSteps)`` on the CPU backend, against an
independent torch/numpy computation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

from lava_spikeformer.lava.run import running
from lava_spikeformer.lava.processes import SDSA, Conv, DelayLine, Dense, GradedAdd, LIF, SpatialMean

RNG = np.random.default_rng(0)


def run_process(proc, inputs, steps, out_port=None):
    """Feed ``inputs`` (``{port: [T, ...]}``) for ``steps`` steps; returns the output as ``[steps, ...]``."""
    for port, series in inputs.items():
        data = np.zeros(series.shape[1:] + (steps,))
        data[..., :len(series)] = np.moveaxis(series, 0, -1)
        src = Source(data=data)
        src.s_out.connect(port)
    out_port = out_port or next(iter(proc.out_ports))
    sink = Sink(shape=out_port.shape, buffer=steps)
    out_port.connect(sink.a_in)
    with running(proc, steps):
        return np.moveaxis(sink.data.get(), -1, 0)


def test_depthwise_conv_with_256_groups_matches_torch_one_step_later():
    x = RNG.normal(size=(3, 2, 256, 6, 6))                    # [T, B, C, H, W]
    w = RNG.normal(size=(256, 1, 3, 3))
    b = RNG.normal(size=256)
    proc = Conv(shape_in=(2, 256, 6, 6), weight=w, bias=b, stride=1, padding=1, groups=256)
    out = run_process(proc, {proc.a_in: x}, steps=4)
    expected = F.conv2d(torch.from_numpy(x).flatten(0, 1), torch.from_numpy(w), torch.from_numpy(b),
                        padding=1, groups=256).numpy().reshape(3, 2, 256, 6, 6)
    np.testing.assert_array_equal(out[0], 0)                  # synapses deliver one step later
    np.testing.assert_allclose(out[1:], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups,stride,padding", [(1, 2, 1), (4, 1, 0)])
def test_grouped_and_strided_conv_matches_torch(groups, stride, padding):
    x = RNG.normal(size=(2, 1, 8, 7, 7))
    w = RNG.normal(size=(12, 8 // groups, 3, 3))
    proc = Conv(shape_in=(1, 8, 7, 7), weight=w, stride=stride, padding=padding, groups=groups)
    out = run_process(proc, {proc.a_in: x}, steps=3)
    expected = F.conv2d(torch.from_numpy(x).flatten(0, 1), torch.from_numpy(w), stride=stride, padding=padding,
                        groups=groups).numpy()
    np.testing.assert_allclose(out[1:].reshape(expected.shape), expected, rtol=1e-12, atol=1e-12)


def test_conv_valid_from_holds_the_bias_back():
    x = np.ones((4, 1, 1, 3, 3))
    proc = Conv(shape_in=(1, 1, 3, 3), weight=np.ones((1, 1, 1, 1)), bias=np.array([0.5]), valid_from=2)
    out = run_process(proc, {proc.a_in: x}, steps=4)
    assert out[:3].max() == 0.0                               # nothing before its input is valid
    np.testing.assert_array_equal(out[3], 1.5)


def test_dense_matches_numpy():
    x = RNG.normal(size=(3, 4, 10))
    w, b = RNG.normal(size=(5, 10)), RNG.normal(size=5)
    proc = Dense(shape_in=(4, 10), weight=w, bias=b)
    out = run_process(proc, {proc.a_in: x}, steps=4)
    np.testing.assert_allclose(out[1:], x @ w.T + b, rtol=1e-12)


def test_lif_hand_computed_sequence_fires_exactly_at_threshold():
    # h = v + (x - v) / 2, spike iff h >= 1, hard reset; by hand:
    x = np.array([2.0, 0.0, 1.0, 1.0, 1.5, 0.5, -2.0, 3.0])
    # h:      1.0(s) 0.0   0.5   0.75  1.125(s) 0.25  -0.875  1.0625(s)
    expected = np.array([1, 0, 0, 0, 1, 0, 0, 1], dtype=float)
    proc = LIF(shape=(1,), threshold=1.0, tau=2.0)
    out = run_process(proc, {proc.a_in: x[:, None]}, steps=8)
    np.testing.assert_array_equal(out[:, 0], expected)


def _torch_sdsa(q, k, v, variant, heads, scale, threshold):
    """SDSA written independently with torch einsum over ``[T, B, C, H, W]`` spikes."""
    q, k, v = (torch.from_numpy(a) for a in (q, k, v))
    t_steps, b, c, h, w = q.shape

    def lif(drive):
        out, mem = [], torch.zeros_like(drive[0])
        for t in range(t_steps):
            hval = mem + (drive[t] - mem) / 2
            s = (hval >= threshold).double()
            out.append(s)
            mem = hval * (1 - s)
        return torch.stack(out)

    if variant == 1:
        return (q * lif((k * v).sum((-1, -2)))[..., None, None]).numpy()
    if variant == 2:
        return (lif(q.sum((-1, -2)))[..., None, None] * v).numpy()
    d = c // heads
    qh, kh, vh = (a.reshape(t_steps, b, heads, d, h * w) for a in (q, k, v))
    kv = torch.einsum("tbhdn,tbhen->tbhde", kh, vh)
    counts = torch.einsum("tbhdn,tbhde->tbhen", qh, kv)
    return lif(counts * torch.from_numpy(scale).view(1, 1, heads, 1, 1)).reshape(t_steps, b, c, h, w).numpy()


@pytest.mark.parametrize("variant", [1, 2, 3, 4])
def test_sdsa_variants_match_torch(variant):
    shape = (2, 16, 4, 4)
    q, k, v = ((RNG.random(size=(4, *shape)) < p).astype(float) for p in (0.3, 0.3, 0.4))
    scale = np.array([0.125, 0.25, 0.5, 1.0])
    threshold = 0.5 if variant != 4 else 0.75
    proc = SDSA(shape=shape, variant=variant, heads=4, scale=scale, threshold=threshold)
    ports = {proc.q_in: q, proc.v_in: v}
    if variant != 2:
        ports[proc.k_in] = k
    out = run_process(proc, ports, steps=5)
    expected = _torch_sdsa(q, k, v, variant, 4, scale, threshold)
    np.testing.assert_array_equal(out[1:], expected)
    assert 0 < expected.mean() < 1


def test_graded_add_sums_every_connected_port():
    a, b = RNG.normal(size=(3, 2, 5)), RNG.normal(size=(3, 2, 5))
    proc = GradedAdd(shape=(2, 5))
    src_a, src_b = Source(data=np.moveaxis(a, 0, -1)), Source(data=np.moveaxis(b, 0, -1))
    src_a.s_out.connect(proc.a_in)
    src_b.s_out.connect(proc.a_in)
    sink = Sink(shape=(2, 5), buffer=3)
    proc.a_out.connect(sink.a_in)
    with running(proc, 3):
        out = np.moveaxis(sink.data.get(), -1, 0)
    np.testing.assert_array_equal(out, a + b)


def test_delay_line_delays_by_its_steps():
    x = RNG.normal(size=(4, 3))
    proc = DelayLine(shape=(3,), steps=3)
    out = run_process(proc, {proc.a_in: x}, steps=7)
    np.testing.assert_array_equal(out[:3], 0)
    np.testing.assert_array_equal(out[3:], x)


def test_spatial_mean():
    x = RNG.normal(size=(2, 2, 3, 4, 5))
    proc = SpatialMean(shape_in=(2, 3, 4, 5))
    out = run_process(proc, {proc.a_in: x}, steps=2)
    np.testing.assert_allclose(out, x.mean((-1, -2)), rtol=1e-12)


@pytest.mark.parametrize("make,match", [
    (lambda: Conv(shape_in=(1, 256, 4, 4), weight=np.zeros((256, 2, 3, 3)), groups=256), "does not fit 256 input"),
    (lambda: LIF(shape=(3,), threshold=0.0), "threshold must be a positive number"),
    (lambda: SDSA(shape=(1, 12, 2, 2), heads=8), "heads=8 must divide the 12 channels"),
    (lambda: SDSA(shape=(1, 8, 2, 2), variant=5), "variant must be 1, 2, 3 or 4"),
    (lambda: DelayLine(shape=(3,), steps=0), "steps must be an int >= 1"),
    (lambda: Dense(shape_in=(1, 4), weight=np.zeros((2, 5))), "does not fit input"),
])
def test_bad_process_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
