"""An export file as one hierarchical Lava Process, and running it with ``RunSteps``.

``SpikeFormerNetwork`` has an ``inp`` port (a batch of input frames per step), an ``out`` port
(logits per step) and one ``probe_<i>`` port per requested node. Its SubProcessModel builds
either one process per export node (``granularity='fine'``: Loihi-mappable) or one per block
(``'fused'``: fast). The granularity is a constructor argument rather than a run-config tag
because Lava's run config carries a single ``select_tag``, which selects the precision
(``floating_pt`` / ``fixed_pt``).

Latency: synaptic processes deliver one step after their input (as Lava's Dense does); skip paths
get ``DelayLine``s so every sum sees operands of the same timestep. The output for timestep t
leaves at step ``t + latency``; fused blocks delay their output by the same amount, so both
granularities emit identical streams.

Absolute imports only: Lava's compiler executes this file as a top-level module.
"""
import contextlib
import os
from multiprocessing import shared_memory
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from lava.magma.core.decorator import implements
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.io.source import RingBuffer as Source

from lava_spikeformer.export import fixed
from lava_spikeformer.export.graph import Graph, Node
from lava_spikeformer.export.hdf5 import read_graph
from lava_spikeformer.export.reference import frames_of
from lava_spikeformer.lava.processes.process import (SDSA, Conv, DelayLine, Dense, FusedBlock, GradedAdd, LIF,
                                                     Recorder, SpatialMean)

GRANULARITIES = ("fine", "fused")
TAGS = ("floating_pt", "fixed_pt")


def block_of(name: str) -> str:
    """The block a node belongs to: ``s2.b1.attn.branch.q`` -> ``s2.b1.attn``; ``s0.down.conv`` ->
    ``s0.down``; ``head.fc`` -> ``head``."""
    parts = name.split(".")
    if parts[0] == "head":
        return "head"
    return ".".join(parts[:2] if parts[1] == "down" else parts[:3])


def blocks(graph: Graph) -> List[List[Node]]:
    groups: Dict[str, List[Node]] = {}
    for node in graph.nodes[1:]:
        groups.setdefault(block_of(node.name), []).append(node)
    return list(groups.values())


def probe_points(graph: Graph, granularity: str) -> List[str]:
    """Nodes whose stream a network of this granularity can expose on a probe port."""
    if granularity == "fine":
        return [n.name for n in graph.nodes[1:]]
    return [group[-1].name for group in blocks(graph)]


class SpikeFormerNetwork(AbstractProcess):
    def __init__(self, *, graph: Graph, batch: int = 1, granularity: str = "fine", probes: Sequence[str] = (),
                 input_steps: int = 0, name: Optional[str] = None):
        if not isinstance(graph, Graph):
            raise ValueError(f"graph must be an export Graph, got {type(graph).__name__}")
        if int(batch) != batch or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        allowed = probe_points(graph, granularity)
        bad = [p for p in probes if p not in allowed]
        if bad:
            raise ValueError(f"cannot probe {bad} at granularity {granularity!r}; probe points are {allowed}")
        if int(input_steps) != input_steps or input_steps < 0:
            raise ValueError(f"input_steps must be an int >= 0 (0: an open-ended stream), got {input_steps!r}")
        super().__init__(graph=graph, batch=int(batch), granularity=granularity, probes=tuple(probes),
                         input_steps=int(input_steps), name=name)
        nodes = graph.by_name
        self.inp = InPort(shape=(int(batch), *graph.input.shape))
        self.out = OutPort(shape=(int(batch), *nodes[graph.output].shape))
        for i, probe in enumerate(probes):
            setattr(self, f"probe_{i}", OutPort(shape=(int(batch), *nodes[probe].shape)))
        self.graph, self.granularity, self.probes = graph, granularity, tuple(probes)

    @classmethod
    def from_hdf5(cls, path: os.PathLike, **kwargs) -> "SpikeFormerNetwork":
        return cls(graph=read_graph(path), **kwargs)

    @property
    def latency(self) -> int:
        """L: logits of timestep t leave ``out`` at step t + L."""
        return self.graph.latency

    def probe_latency(self, name: str) -> int:
        return self.graph.arrival()[name]


# ---------------------------------------------------------------------------- building the graph
_OUT_PORT = {"conv": "a_out", "dense": "a_out", "lif": "s_out", "sdsa": "s_out", "add": "a_out",
             "mean": "a_out", "delay": "a_out"}


def _node_process(node: Node, batch: int, shapes: Dict[str, tuple], valid_from: int, active_steps: int,
                  spike_input: bool) -> AbstractProcess:
    shape_in = (batch, *shapes[node.inputs[0]])
    p, a = node.params, node.attrs
    if node.op == "conv":
        return Conv(shape_in=shape_in, weight=p["weight"], bias=p.get("bias"), stride=a["stride"],
                    padding=a["padding"], groups=a["groups"], valid_from=valid_from, active_steps=active_steps,
                    spike_input=spike_input,
                    name=node.name)
    if node.op == "dense":
        return Dense(shape_in=shape_in, weight=p["weight"], bias=p.get("bias"), valid_from=valid_from,
                     active_steps=active_steps, spike_input=spike_input, name=node.name)
    if node.op == "lif":
        return LIF(shape=shape_in, threshold=a["threshold"], tau=a["tau"], name=node.name)
    if node.op == "sdsa":
        return SDSA(shape=shape_in, variant=a["variant"], heads=a["heads"], scale=p.get("scale"),
                    threshold=a["threshold"], tau=a["tau"], name=node.name)
    if node.op == "add":
        return GradedAdd(shape=shape_in, name=node.name)
    if node.op == "mean":
        return SpatialMean(shape_in=shape_in, name=node.name)
    if node.op == "delay":
        return DelayLine(shape=shape_in, steps=a["steps"], name=node.name)
    raise ValueError(f"node {node.name!r}: no Lava process for op {node.op!r}")


def _in_ports(proc: AbstractProcess, node: Node) -> list:
    if node.op == "sdsa":
        return [proc.q_in, proc.v_in] if node.attrs["variant"] == 2 else [proc.q_in, proc.k_in, proc.v_in]
    return [proc.a_in] * len(node.inputs)


@implements(proc=SpikeFormerNetwork, protocol=LoihiProtocol)
class SpikeFormerNetworkModel(AbstractSubProcessModel):
    def __init__(self, proc: SpikeFormerNetwork):
        graph: Graph = proc.proc_params["graph"]
        batch, input_steps = proc.proc_params["batch"], proc.proc_params["input_steps"]
        shapes = {n.name: tuple(n.shape) for n in graph.nodes}
        arrival = graph.arrival()
        spike_inputs = fixed.spike_inputs(graph)
        self._count = 0
        relay = self._add(GradedAdd(shape=(batch, *graph.input.shape), name="input"))
        proc.in_ports.inp.connect(relay.a_in)
        ports = {graph.input.name: relay.a_out}

        def aligned(source: str, at: int, shape) -> object:
            """``source``'s port, delayed so that its timestep-0 value arrives at step ``at``."""
            lag = at - arrival[source]
            if lag == 0:
                return ports[source]
            delay = self._add(DelayLine(shape=(batch, *shape), steps=lag, name=f"{source}.delay{lag}"))
            ports[source].connect(delay.a_in)
            return delay.a_out

        if proc.proc_params["granularity"] == "fine":
            for node in graph.nodes[1:]:
                start = max(arrival[i] for i in node.inputs)
                child = self._add(_node_process(node, batch, shapes, start, input_steps, spike_inputs[node.name]))
                for src, port in zip(node.inputs, _in_ports(child, node)):
                    aligned(src, start, shapes[src]).connect(port)
                ports[node.name] = getattr(child, _OUT_PORT[node.op])
        else:
            for group in blocks(graph):
                names = {n.name for n in group}
                external = {i for n in group for i in n.inputs if i not in names}
                if len(external) != 1:
                    raise ValueError(f"block {block_of(group[0].name)!r} has inputs {sorted(external)}; "
                                     f"a fused block needs exactly one")
                source = external.pop()
                last = group[-1]
                child = self._add(FusedBlock(nodes=group, shape_in=(batch, *shapes[source]),
                                             shape_out=(batch, *shapes[last.name]),
                                             delay=arrival[last.name] - arrival[source],
                                             valid_from=arrival[source], active_steps=input_steps,
                                             spike_inputs={n.name: spike_inputs[n.name] for n in group},
                                             name=block_of(last.name)))
                ports[source].connect(child.a_in)
                ports[last.name] = child.a_out
        ports[graph.output].connect(proc.out_ports.out)
        for i, probe in enumerate(proc.proc_params["probes"]):
            ports[probe].connect(getattr(proc.out_ports, f"probe_{i}"))

    def _add(self, child: AbstractProcess) -> AbstractProcess:
        setattr(self, f"proc_{self._count:04d}", child)
        self._count += 1
        return child


# ---------------------------------------------------------------------------- running
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
        except BaseException:
            if proc.runtime is not None:
                # Lava 0.10 has already joined every worker after a model raised; stop() on a runtime
                # still marked started would wait forever for their replies. Only release resources.
                proc.runtime._is_started = False
            raise
        yield proc
    finally:
        if proc.runtime is not None:
            proc.stop()


def run_network(graph: Graph, x: np.ndarray, *, granularity: str = "fused", tag: str = "floating_pt",
                probes: Iterable[str] = (), steps: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Run ``x`` (images ``[B, C, H, W]`` or event frames ``[T, B, C, H, W]``) through Lava for
    ``steps`` (default and minimum ``T + latency``) steps. With ``tag='fixed_pt'`` the input is
    quantized as in ``export.fixed`` and the outputs are the integer messages (graded values in
    units of 1/64), comparable bit for bit with ``simulate(..., precision='fixed')``.
    Returns ``{name: [T, B, ...]}`` for the output and each probe, re-aligned so that entry t is the
    node's value for timestep t (as ``export.reference.simulate``). The run is stopped even if it raises."""
    frames = np.asarray(frames_of(graph, x))
    if tag == "fixed_pt":
        frames = fixed.quantize_input(frames)
    timesteps, batch = frames.shape[:2]
    probes = tuple(probes)
    net = SpikeFormerNetwork(graph=graph, batch=batch, granularity=granularity, probes=probes,
                             input_steps=timesteps)
    needed = timesteps + graph.latency
    if steps is not None and steps < needed:
        raise ValueError(f"steps={steps} is too few: T={timesteps} plus the pipeline latency {graph.latency} "
                         f"needs at least {needed}")
    steps = steps or needed
    data = np.zeros((batch, *graph.input.shape, steps), dtype=frames.dtype)
    data[..., :timesteps] = np.moveaxis(frames, 0, -1)
    source = Source(data=data)
    source.s_out.connect(net.inp)
    watched = [(graph.output, net.out)] + [(p, getattr(net, f"probe_{i}")) for i, p in enumerate(probes)]
    with recorders(watched, steps) as buffers:
        with running(net, steps, tag):
            pass
        arrival = graph.arrival()
        return {name: buffers[name][arrival[name]:arrival[name] + timesteps].copy() for name, _ in watched}


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
