"""Stream tonic event streams into an exported network on Lava and read a class decision per step.

``EventSource -> SpikeFormerNetwork -> ClassDecision``, all Lava processes in one
``run(RunSteps)``; the host only hands over raw event arrays and reads recorders. Step
``latency + T - 1`` carries the final decision, equal to PyTorch's on the frames that
``frame_transform`` makes from the same streams (same transform, same tonic binning).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from lava_spikeformer.export.graph import Graph
from lava_spikeformer.export.hdf5 import read_graph
from lava_spikeformer.lava.network import SpikeFormerNetwork, recorders, running
from lava_spikeformer.lava.processes import ClassDecision

from .processes import EventSource
from .transforms import event_transform


@dataclass(frozen=True)
class StreamResult:
    decisions: np.ndarray      # [steps, B] class per Lava step (-1 before the first logits arrive)
    logits: np.ndarray         # [T, B, classes] network output for timestep t (float, or fixed units of 1/64)
    latency: int               # pipeline latency L: timestep t's logits leave at step t + L

    @property
    def final(self) -> np.ndarray:
        """Decision after the last time bin: ``decisions[L + T - 1]``."""
        return self.decisions[self.latency + len(self.logits) - 1]


def stream_events(model: Union[Graph, os.PathLike], streams: Sequence[np.ndarray], *,
                  sensor_size: Tuple[int, int, int], size: Optional[Tuple[int, int]] = None,
                  downsample: float = 1.0, denoise_us: Optional[float] = None, granularity: str = "fused",
                  tag: str = "floating_pt", steps: Optional[int] = None) -> StreamResult:
    """Run raw tonic event ``streams`` of a ``sensor_size`` sensor (one per batch element) through
    ``model`` (an export Graph or .h5 path) on Lava; the event-to-frame options are
    ``frame_transform``'s. ``steps`` defaults to ``T + latency``."""
    graph = model if isinstance(model, Graph) else read_graph(model)
    transform, out_size = event_transform(sensor_size, size=size, downsample=downsample, denoise_us=denoise_us)
    width, height, polarities = out_size
    if graph.static_input or tuple(graph.input.shape) != (polarities, height, width):
        raise ValueError(f"the network takes {'images' if graph.static_input else 'event frames'} "
                         f"{tuple(graph.input.shape)}; the streams give frames {(polarities, height, width)}")
    timesteps, latency = graph.timesteps, graph.latency
    steps = steps or timesteps + latency
    if steps < timesteps + latency:
        raise ValueError(f"steps={steps} is too few: T={timesteps} plus the pipeline latency {latency}")
    batch = len(streams)
    source = EventSource(streams=streams, sensor_size=out_size, n_time_bins=timesteps, transform=transform)
    net = SpikeFormerNetwork(graph=graph, batch=batch, granularity=granularity, input_steps=timesteps)
    decision = ClassDecision(shape=net.out.shape, valid_from=latency)
    source.s_out.connect(net.inp)
    net.out.connect(decision.a_in)
    with recorders([("logits", net.out), ("decisions", decision.s_out)], steps) as buffers:
        with running(net, steps, tag):
            pass
        return StreamResult(decisions=buffers["decisions"].astype(np.int64),
                            logits=buffers["logits"][latency:latency + timesteps].copy(), latency=latency)
