"""An export file as one hierarchical Lava Process, and running it with ``RunSteps``.

``SpikeFormerNetwork`` has an ``inp`` port (a batch of input frames per step), an ``out`` port
(logits per step) and one ``probe_<i>`` port per requested node. Its SubProcessModel builds
either one process per export node (``granularity='fine'``, each op's Process from
``bindings.py``) or one per block (``'fused'``: fast; blocks are ``Node.block``). The granularity is a constructor argument rather than a run-config tag
because Lava's run config carries a single ``select_tag``, which selects the precision
(``floating_pt`` / ``fixed_pt``).

Latency: synaptic processes deliver one step after their input (as Lava's Dense does); skip paths
get ``DelayLine``s so every sum sees operands of the same timestep. The output for timestep t
leaves at step ``t + latency``; fused blocks delay their output by the same amount, so both
granularities emit identical streams.

Absolute imports only: Lava's compiler executes this file as a top-level module. Running it:
``run.py``.
"""
import os
from typing import List, Optional, Sequence

from lava.magma.core.decorator import implements
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_spikeformer.graph import Graph, read_graph
from lava_spikeformer.lava.bindings import BuildContext, binding_of
from lava_spikeformer.lava.processes.process import DelayLine, FusedBlock, GradedAdd

GRANULARITIES = ("fine", "fused")


def probe_points(graph: Graph, granularity: str) -> List[str]:
    """Nodes whose stream a network of this granularity can expose on a probe port."""
    if granularity == "fine":
        return [n.name for n in graph.nodes[1:]]
    return [group[-1].name for group in graph.blocks().values()]


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
@implements(proc=SpikeFormerNetwork, protocol=LoihiProtocol)
class SpikeFormerNetworkModel(AbstractSubProcessModel):
    def __init__(self, proc: SpikeFormerNetwork):
        graph: Graph = proc.proc_params["graph"]
        batch, input_steps = proc.proc_params["batch"], proc.proc_params["input_steps"]
        shapes = {n.name: tuple(n.shape) for n in graph.nodes}
        arrival = graph.arrival()
        spike_inputs = graph.spike_inputs()
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
                binding = binding_of(node)
                child = self._add(binding.build(node, BuildContext((batch, *shapes[node.inputs[0]]), start,
                                                                   input_steps, spike_inputs[node.name])))
                for src, port in zip(node.inputs, binding.in_ports(child, node)):
                    aligned(src, start, shapes[src]).connect(port)
                ports[node.name] = getattr(child, binding.out_port)
        else:
            for block, group in graph.blocks().items():
                names = {n.name for n in group}
                external = {i for n in group for i in n.inputs if i not in names}
                if len(external) != 1:
                    raise ValueError(f"block {block!r} has inputs {sorted(external)}; a fused block needs exactly one")
                source = external.pop()
                last = group[-1]
                child = self._add(FusedBlock(nodes=group, shape_in=(batch, *shapes[source]),
                                             shape_out=(batch, *shapes[last.name]),
                                             delay=arrival[last.name] - arrival[source],
                                             valid_from=arrival[source], active_steps=input_steps,
                                             spike_inputs={n.name: spike_inputs[n.name] for n in group},
                                             name=block))
                ports[source].connect(child.a_in)
                ports[last.name] = child.a_out
        ports[graph.output].connect(proc.out_ports.out)
        for i, probe in enumerate(proc.proc_params["probes"]):
            ports[probe].connect(getattr(proc.out_ports, f"probe_{i}"))

    def _add(self, child: AbstractProcess) -> AbstractProcess:
        setattr(self, f"proc_{self._count:04d}", child)
        self._count += 1
        return child
