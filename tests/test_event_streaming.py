"""Event streams injected into Lava: EventSource -> network -> ClassDecision, against PyTorch and
the integer reference on the same frames."""

import numpy as np
import pytest
import torch

from event_data import FashionMNISTDVS, frame_transform
from lava_spikeformer.lava.processes import EventSource
from lava_spikeformer.lava.run import stream_events
from lava_spikeformer.training.checkpoint import load_model
from lava_spikeformer.graph import simulate
from lava_spikeformer.nn.fold import to_graph

from .conftest import EVENT_MODEL

SAMPLES = 8


@pytest.fixture(scope="module")
def setup():
    """The shipped event model (float64), 8 raw test streams and their frames as PyTorch sees them."""
    model, _ = load_model(EVENT_MODEL)
    model = model.double().eval()
    dataset = FashionMNISTDVS("test")
    streams = [dataset[i][0] for i in range(SAMPLES)]
    transform = frame_transform(dataset.sensor_size, n_time_bins=8, size=(32, 32))
    frames = np.stack([transform(events) for events in streams], axis=1).astype(np.float64)   # [T, B, 2, H, W]
    with torch.no_grad():
        logits = model(torch.from_numpy(frames)).numpy()
    return to_graph(model), dataset, streams, frames, logits


def test_float_streaming_gives_pytorch_decisions_at_every_step(setup):
    graph, dataset, streams, frames, logits = setup
    result = stream_events(graph, streams, sensor_size=dataset.sensor_size, size=(32, 32), granularity="fused")
    latency, timesteps = result.latency, 8
    assert latency == graph.latency and result.decisions.shape == (timesteps + latency, SAMPLES)
    assert (result.decisions[:latency] == -1).all()
    np.testing.assert_allclose(result.logits.mean(0), logits, rtol=1e-9, atol=1e-12)
    running = np.cumsum(result.logits, axis=0).argmax(-1)                    # decision after each timestep
    np.testing.assert_array_equal(result.decisions[latency:], running)
    np.testing.assert_array_equal(result.final, logits.argmax(1))
    assert len(set(result.final.tolist())) > 1                               # a real model, not a constant


def test_fixed_point_streaming_equals_the_integer_reference(setup):
    graph, dataset, streams, frames, _ = setup
    result = stream_events(graph, streams, sensor_size=dataset.sensor_size, size=(32, 32), tag="fixed_pt")
    reference = simulate(graph, frames, precision="fixed")[graph.output]
    np.testing.assert_array_equal(result.logits, reference)
    np.testing.assert_array_equal(result.final, reference.sum(0).argmax(1))


def test_event_source_rejects_what_it_cannot_stream():
    with pytest.raises(ValueError, match="streams\\[0\\] must be a tonic event array"):
        EventSource(streams=[np.zeros((3, 4))], sensor_size=(32, 32, 2), n_time_bins=8)
    with pytest.raises(ValueError, match="n_time_bins"):
        EventSource(streams=[FashionMNISTDVS("test")[0][0]], sensor_size=(34, 34, 2), n_time_bins=0)


def test_streams_must_match_the_network_input(setup):
    graph, dataset, streams, _, _ = setup
    with pytest.raises(ValueError, match=r"streams give frames \(2, 34, 34\)"):
        stream_events(graph, streams[:1], sensor_size=dataset.sensor_size)
