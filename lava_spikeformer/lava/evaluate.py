"""Evaluate an export on Lava over a test set: the data set it was made for unless another is named.

Images are normalized as the model's input contract says and shown for T steps; event data sets
stream raw events through an ``EventSource``. Each batch is one ``run`` with a ``ClassDecision``
process, so the result has the decision accuracy at every Lava step.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
from tqdm.auto import tqdm

from event_data.sources import STREAM_SOURCES
from lava_spikeformer.analysis.evaluation import LavaEvaluation
from lava_spikeformer.data.idx import fashion_mnist_arrays
from lava_spikeformer.graph import Graph, GraphError, InputSpec, read_graph
from lava_spikeformer.lava.run import EventStreams, run

#: image data sets Lava can evaluate on: name -> (root -> (uint8 images [N, C, H, W], labels))
IMAGE_TESTS = {"fmnist": lambda root: (lambda x: (x[0][:, None], x[1]))(fashion_mnist_arrays("test", root))}
DATA_SETS = (*IMAGE_TESTS, *STREAM_SOURCES)
RASTER_NEURONS = 40


def resolve_data(graph: Graph, data: Optional[str], where: str = "the export") -> str:
    """The data set to evaluate on: ``data`` if named (refused unless it fits), else the model's own."""
    spec = graph.input_spec
    if data is None:
        if not spec.dataset:
            raise GraphError(f"{where} does not record the data set it was made for (written by an older "
                             f"version?); name one with --data ({', '.join(DATA_SETS)}) or re-export it")
        data = spec.dataset
    if data not in DATA_SETS:
        raise GraphError(f"Lava evaluation reads {', '.join(DATA_SETS)}, not {data!r}")
    kind = "image" if data in IMAGE_TESTS else "events"
    if kind != spec.kind:
        gives = "images (1, 28, 28)" if kind == "image" else "event frames (2 polarities)"
        raise GraphError(f"{where} takes {spec.kind} of shape {spec.shape}; --data {data} gives {gives}")
    if kind == "events" and spec.channels != 2:
        raise GraphError(f"{where} takes event frames of shape {spec.shape}; --data {data} gives 2 polarities")
    return data


def _per_sample_steps(result, timesteps: int) -> np.ndarray:
    """``[B, steps]`` decisions counted from each sample's own first step: samples streamed one after
    another (the 'loihi' granularity) start every T steps and are followed for T + L steps; a
    lock-step batch starts together."""
    if not result.streamed:
        return result.decisions.T
    span = timesteps + result.latency
    return np.stack([result.decisions[b * timesteps:b * timesteps + span, b] for b in range(result.decisions.shape[1])])


def evaluate_on_lava(model: Union[Graph, os.PathLike], *, data: Optional[str] = None, root=None,
                     tag: str = "floating_pt", granularity: str = "fused", samples: int = 64, batch: int = 32,
                     steps: Optional[int] = None, progress: bool = True) -> LavaEvaluation:
    graph = model if isinstance(model, Graph) else read_graph(model)
    name = "the graph" if isinstance(model, Graph) else str(model)
    if int(samples) != samples or samples < 1 or int(batch) != batch or batch < 1:
        raise ValueError(f"samples and batch must be ints >= 1, got {samples!r}, {batch!r}")
    data = resolve_data(graph, data, name)
    if data in IMAGE_TESTS:
        images, labels = IMAGE_TESTS[data](root)
        graph.input_spec.require(images.shape[1:], f"--data {data}")
        normalize = InputSpec.of_graph_input(graph.input.shape, graph.timesteps, True, data).normalize
        count = min(samples, len(labels))
        batches = ((normalize(images[i:i + batch]), labels[i:i + batch]) for i in range(0, count, batch))
    else:
        dataset, options = STREAM_SOURCES[data](root, "test", tuple(graph.input.shape[1:]))
        count = min(samples, len(dataset))

        def stream_batches():
            for start in range(0, count, batch):
                part = [dataset[i] for i in range(start, min(start + batch, count))]
                yield (EventStreams([events for events, _ in part], dataset.sensor_size, **options),
                       np.array([label for _, label in part]))
        batches = stream_batches()
    probes = [n.name for n in graph.nodes if n.spec.output == "spikes"] if granularity == "fine" else []
    correct, per_step, seconds, steps_run, arrival, latency = 0, 0, 0.0, 0, graph.arrival(), graph.latency
    spike_sums, spike_counts, raster = {p: 0.0 for p in probes}, {p: 0 for p in probes}, None
    for inputs, y in tqdm(batches, total=-(-count // batch), desc=f"lava {tag} {granularity} {data}",
                          disable=not progress):
        result = run(graph, inputs, granularity=granularity, tag=tag, probes=probes, steps=steps, decisions=True)
        seconds += result.seconds
        latency = result.latency
        steps_run += result.steps
        correct += int((result.outputs[graph.output].mean(0).argmax(1) == y).sum())
        per_step = per_step + (_per_sample_steps(result, graph.timesteps) == y[:, None]).sum(0)
        for p in probes:
            spike_sums[p] += float(result.outputs[p].sum())
            spike_counts[p] += result.outputs[p].size
        if probes and raster is None:                       # sample 0: up to 40 neurons that fire, per layer
            raster = {}
            for p in probes:
                spikes = result.outputs[p][:, 0].reshape(graph.timesteps, -1)
                raster[p] = spikes[:, np.flatnonzero(spikes.any(0))[:RASTER_NEURONS]]
    return LavaEvaluation(
        model=name, data=data, tag=tag, granularity=granularity, images=count, accuracy=correct / count,
        accuracy_per_step=[round(float(a), 4) for a in per_step / count],
        steps_per_second_incl_startup=steps_run / seconds, latency_steps=latency, timesteps=graph.timesteps,
        firing_rates={p: spike_sums[p] / spike_counts[p] for p in probes}, raster=raster,
        raster_arrival={p: arrival[p] for p in probes} if probes else {})
