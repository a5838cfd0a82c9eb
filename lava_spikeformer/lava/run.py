"""Running an export on Lava: one ``run`` for image batches, event frames and raw event streams.

``source -> SpikeFormerNetwork -> [ClassDecision]``, all Lava processes in one ``run(RunSteps)``;
the host hands over the input (a ``RingBuffer`` of frames, or an ``EventSource`` that bins raw
tonic streams per step) and reads shared-memory recorders. Outputs are re-aligned so that entry t
is a node's value for timestep t, as ``graph.simulate`` gives it. Every run is stopped, also when
it raises.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer as Source

from event_data.transforms import event_transform, frame_of, time_bins
from lava_spikeformer.graph import Graph, fixed, read_graph
from lava_spikeformer.graph.simulate import frames_of
from lava_spikeformer.lava import stock
from lava_spikeformer.lava.processes.network import SpikeFormerNetwork
from lava_spikeformer.lava.processes import ClassDecision, EventSource, Recorder

TAGS = ("floating_pt", "fixed_pt")


@dataclass(frozen=True)
class EventStreams:
    """Raw tonic event streams (one per batch element) of a ``sensor_size`` (W, H, P) sensor and the
    ``frame_transform`` options that fit them to the model's input."""

    streams: Sequence[np.ndarray]
    sensor_size: Tuple[int, int, int]
    size: Optional[Tuple[int, int]] = None
    downsample: float = 1.0
    denoise_us: Optional[float] = None


@dataclass(frozen=True)
class RunResult:
    outputs: Dict[str, np.ndarray]       # {node: [T, B, ...]} for the output and every probe
    decisions: Optional[np.ndarray]      # [steps, B] class per Lava step (-1 before the first logits)
    latency: int                         # L: timestep t leaves at step t + L
    steps: int
    seconds: float                       # wall time of build + run + stop
    streamed: bool = False               # samples one after another (sample b's timestep t at step b*T + t + L)


@contextlib.contextmanager
def running(proc: AbstractProcess, steps: int, tag: str = "floating_pt"):
    """Run the process graph of ``proc`` for ``steps`` steps on Lava's CPU backend; read Vars inside
    the ``with`` block. ``stop()`` always follows, also when the run or the block raises: a Lava
    run left unstopped keeps its worker processes alive and hangs the interpreter at exit."""
    if tag not in TAGS:
        raise ValueError(f"tag must be one of {TAGS}, got {tag!r}")
    try:
        try:
            proc.run(condition=RunSteps(num_steps=int(steps)), run_cfg=Loihi2SimCfg(select_tag=tag))
        except BaseException as exc:
            if proc.runtime is not None:
                try:
                    failure = _release_failed_run(proc.runtime)
                except Exception:              # never hide the run's own error behind a cleanup one
                    failure = None
                if failure is not None and isinstance(exc, RuntimeError) and "Exception(s) occurred" in str(exc):
                    raise RuntimeError(f"Lava run failed: {failure}") from exc
            raise
        yield proc
    finally:
        if proc.runtime is not None:
            proc.stop()


def _release_failed_run(runtime) -> Optional[str]:
    """After a run raised: leave Lava 0.10's runtime in a state its ``stop()`` can finish, and
    return the first worker's error (Lava only says "1 Exception(s) occurred. See output above").

    * A model that raised inside a step: Lava has already joined every worker; ``stop()`` on a
      runtime still marked started would wait forever for their replies, so it is marked stopped.
    * Stopped, the runtime's ``stop()`` skips ``join()``: the two threads of its own channels
      (``runtime_to_service`` / ``service_to_runtime``) would stay blocked, two per failed run.
      They are joined here.
    * A model that raised while it was built (its ``__init__``): the other workers wait for a
      command that never comes and ``stop()`` would join them forever. They are terminated."""
    runtime._is_started = False
    runtime.join()
    failure = None
    for actor in getattr(getattr(runtime, "_messaging_infrastructure", None), "actors", ()):
        if not getattr(actor, "_is_done", False) and actor.is_alive():     # Lava closes the ones it joined
            actor.terminate()
            multiprocessing.Process.join(actor, 5)
            if actor.is_alive():
                actor.kill()
                multiprocessing.Process.join(actor)
        with contextlib.suppress(Exception):
            if failure is None and actor.exception:
                failure = repr(actor.exception[0])
    return failure


@contextlib.contextmanager
def recorders(watched, steps: int):
    """Connects a ``Recorder`` to each ``(name, OutPort)``; yields ``{name: [steps, ...] array}``
    backed by shared memory, valid inside the ``with`` block (released after it)."""
    blocks, buffers = [], {}
    try:
        for name, port in watched:
            size = int(np.prod(port.shape)) * steps * 8
            shm = shared_memory.SharedMemory(create=True, size=max(size, 8))
            blocks.append(shm)
            buffers[name] = np.ndarray((steps, *port.shape), np.float64, buffer=shm.buf)
            buffers[name][:] = 0
            port.connect(Recorder(shape=port.shape, steps=steps, buffer_name=shm.name).a_in)
        yield buffers
    finally:
        buffers.clear()
        for shm in blocks:
            shm.close()
            shm.unlink()


def _host_frames(graph: Graph, inputs, tag: str) -> np.ndarray:
    """``[T, B, C, H, W]`` input frames of images, frames or ``EventStreams`` (binned as ``EventSource``
    bins them), in fixed units with ``tag='fixed_pt'``."""
    if isinstance(inputs, EventStreams):
        transform, out_size = _stream_transform(graph, inputs)
        frames = np.stack([np.stack([frame_of(b, out_size) for b in time_bins(transform(events), graph.timesteps)])
                           for events in inputs.streams], axis=1)
    else:
        frames = np.asarray(frames_of(graph, inputs))          # refuses NaN/inf (GraphError)
    return fixed.quantize_input(frames) if tag == "fixed_pt" else frames


def _stream_transform(graph: Graph, inputs: EventStreams):
    transform, out_size = event_transform(inputs.sensor_size, size=inputs.size, downsample=inputs.downsample,
                                          denoise_us=inputs.denoise_us)
    width, height, polarities = out_size
    if graph.static_input or tuple(graph.input.shape) != (polarities, height, width):
        raise ValueError(f"the network takes {'images' if graph.static_input else 'event frames'} "
                         f"{tuple(graph.input.shape)}; the streams give frames {(polarities, height, width)}")
    return transform, out_size


def _source(graph: Graph, inputs, tag: str, steps: int):
    """(source process, T, batch) for an input array or ``EventStreams``: all samples at once."""
    if isinstance(inputs, EventStreams):
        transform, out_size = _stream_transform(graph, inputs)
        source = EventSource(streams=inputs.streams, sensor_size=out_size, n_time_bins=graph.timesteps,
                             transform=transform)
        return source, graph.timesteps, len(inputs.streams)
    frames = _host_frames(graph, inputs, tag)
    timesteps, batch = frames.shape[:2]
    data = np.zeros((batch, *graph.input.shape, steps), dtype=frames.dtype)
    data[..., :timesteps] = np.moveaxis(frames, 0, -1)
    return Source(data=data), timesteps, batch


def _sequential_decisions(logits: np.ndarray, latency: int, steps: int) -> np.ndarray:
    """``[steps, B]``: per sample, the argmax of its logits summed over the timesteps that have left
    the network by each step (-1 before its first), as ``ClassDecision`` decides for a batch."""
    timesteps, batch = logits.shape[:2]
    decisions = np.full((steps, batch), -1, np.int64)
    running = np.cumsum(logits, axis=0).argmax(-1)             # [T, B]
    for b in range(batch):
        first = b * timesteps + latency
        decisions[first:first + timesteps, b] = running[:, b]
        decisions[first + timesteps:, b] = running[-1, b]
    return decisions


def _run_stock(graph: Graph, inputs, probes: Tuple[str, ...], steps: Optional[int], decisions: bool,
               t0: float) -> RunResult:
    """The ``loihi`` granularity: samples streamed one after another through stock processes."""
    frames = _host_frames(graph, inputs, "fixed_pt")
    timesteps, batch = frames.shape[:2]
    net = stock.build_stock(graph, timesteps, probes)
    needed = batch * timesteps + net.latency
    if steps is not None and (int(steps) != steps or steps < needed):
        raise ValueError(f"steps={steps} is too few: {batch} sample(s) of T={timesteps} streamed one after another "
                         f"plus the pipeline latency {net.latency} need at least {needed}")
    steps = int(steps or needed)
    data = np.zeros((frames[0, 0].size, steps), dtype=frames.dtype)
    data[:, :batch * timesteps] = frames.transpose(1, 0, *range(2, frames.ndim)).reshape(batch * timesteps, -1).T
    source = Source(data=data)
    source.s_out.connect(net.inp)
    Source(data=(np.arange(steps) < batch * timesteps).astype(np.int32)[None]).s_out.connect(net.valid)
    watched = [(graph.output, net.out)] + [(p, net.probes[p]) for p in probes]
    with recorders(watched, steps) as buffers:
        with running(source, steps, "fixed_pt"):
            pass
        outputs = {}
        for name, _ in watched:
            start = net.arrival[name]
            per_sample = buffers[name][start:start + batch * timesteps].reshape(
                batch, timesteps, *graph.by_name[name].shape)
            outputs[name] = np.swapaxes(per_sample, 0, 1).copy()
    chosen = _sequential_decisions(outputs[graph.output], net.latency, steps) if decisions else None
    return RunResult(outputs, chosen, net.latency, steps, time.perf_counter() - t0, streamed=True)


def run(model: Union[Graph, os.PathLike], inputs, *, granularity: str = "fused", tag: str = "floating_pt",
        probes: Iterable[str] = (), steps: Optional[int] = None, decisions: bool = False) -> RunResult:
    """Run ``inputs`` — images ``[B, C, H, W]``, event frames ``[T, B, C, H, W]`` or ``EventStreams`` —
    through ``model`` (a Graph or .h5 path) on Lava for ``steps`` steps (default and minimum: the
    pipeline latency plus T, or ``B*T`` for 'loihi'). With ``tag='fixed_pt'`` the input is quantized as in
    ``graph.fixed`` and the outputs are the integer messages (graded values in units of 1/64), comparable
    bit for bit with ``simulate(..., precision='fixed')``. ``granularity``: 'fine' or 'fused' (our
    ProcessModels, see ``SpikeFormerNetwork``: the batch runs in lock step) or 'loihi' (lava-nc's stock
    processes only, ``stock.py``; fixed_pt only; the samples stream one after another, events binned on
    the host). ``decisions``: the class decided at every Lava step (a ``ClassDecision`` process; for
    'loihi', the same rule applied per sample to the recorded logits)."""
    graph = model if isinstance(model, Graph) else read_graph(model)
    if tag == "floating_pt" and not graph.float_params:
        raise ValueError("this export holds integers only (written with integers_only=True): run it with "
                         "tag='fixed_pt'")
    probes = tuple(probes)
    t0 = time.perf_counter()
    if granularity == stock.GRANULARITY:
        if tag != "fixed_pt":
            raise ValueError(f"granularity {stock.GRANULARITY!r} runs lava-nc's stock processes, whose GradedVec and "
                             f"ProdNeuron have fixed_pt models only: use tag='fixed_pt', got {tag!r}")
        return _run_stock(graph, inputs, probes, steps, decisions, t0)
    latency = graph.latency
    needed = graph.timesteps + latency
    if steps is not None and (int(steps) != steps or steps < needed):
        raise ValueError(f"steps={steps} is too few: T={graph.timesteps} plus the pipeline latency {latency} "
                         f"needs at least {needed}")
    steps = int(steps or needed)
    source, timesteps, batch = _source(graph, inputs, tag, steps)
    entry = SpikeFormerNetwork(graph=graph, batch=batch, granularity=granularity, probes=probes,
                               input_steps=timesteps)
    source.s_out.connect(entry.inp)
    out, arrival = entry.out, graph.arrival()
    ports = {p: getattr(entry, f"probe_{i}") for i, p in enumerate(probes)}
    watched = [(graph.output, out)] + [(p, ports[p]) for p in probes]
    if decisions:
        shape = (batch, *graph.by_name[graph.output].shape)
        decision = ClassDecision(shape=shape, valid_from=latency)
        (out if out.shape == shape else out.reshape(shape)).connect(decision.a_in)
        watched.append(("<decisions>", decision.s_out))
    shapes = graph.by_name
    with recorders(watched, steps) as buffers:
        with running(entry, steps, tag):
            pass
        outputs = {name: buffers[name][arrival[name]:arrival[name] + timesteps].reshape(
                       timesteps, batch, *shapes[name].shape).copy()
                   for name, _ in watched if name != "<decisions>"}
        chosen = buffers["<decisions>"].astype(np.int64) if decisions else None
    return RunResult(outputs, chosen, latency, steps, time.perf_counter() - t0)


def run_network(graph: Graph, x: np.ndarray, *, granularity: str = "fused", tag: str = "floating_pt",
                probes: Iterable[str] = (), steps: Optional[int] = None) -> Dict[str, np.ndarray]:
    """``run(...).outputs`` for an input array: ``{name: [T, B, ...]}``."""
    return run(graph, x, granularity=granularity, tag=tag, probes=probes, steps=steps).outputs


@dataclass(frozen=True)
class StreamResult:
    decisions: np.ndarray      # [steps, B] class per Lava step (-1 before the first logits arrive)
    logits: np.ndarray         # [T, B, classes] network output for timestep t (float, or fixed units of 1/64)
    latency: int               # pipeline latency L: timestep t's logits leave at step t + L (+ b*T when streamed)
    sequential: bool = False   # samples streamed one after another (the 'loihi' granularity)

    @property
    def final(self) -> np.ndarray:
        """Each sample's decision after its last time bin (``decisions[L + T - 1]`` for a batch in lock
        step; sample b's ``decisions[L + (b+1)*T - 1, b]`` when streamed)."""
        timesteps, batch = self.logits.shape[:2]
        if not self.sequential:
            return self.decisions[self.latency + timesteps - 1]
        last = self.latency + (np.arange(batch) + 1) * timesteps - 1
        return self.decisions[last, np.arange(batch)]


def stream_events(model: Union[Graph, os.PathLike], streams: Sequence[np.ndarray], *,
                  sensor_size: Tuple[int, int, int], size: Optional[Tuple[int, int]] = None,
                  downsample: float = 1.0, denoise_us: Optional[float] = None, granularity: str = "fused",
                  tag: str = "floating_pt", steps: Optional[int] = None) -> StreamResult:
    """Raw tonic event ``streams`` of a ``sensor_size`` sensor (one per batch element) through ``model``
    on Lava, with a class decision per step; the event-to-frame options are ``frame_transform``'s."""
    graph = model if isinstance(model, Graph) else read_graph(model)
    result = run(graph, EventStreams(streams, sensor_size, size, downsample, denoise_us), granularity=granularity,
                 tag=tag, steps=steps, decisions=True)
    return StreamResult(result.decisions, result.outputs[graph.output], result.latency, result.streamed)
