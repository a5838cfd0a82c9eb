"""The export contract: a Meta-SpikeFormer as a typed graph of folded, Lava-ready nodes.

No torch, no Lava: the HDF5 reader returns a ``Graph``, the reference simulator runs it, the Lava
builders turn it into processes, the Loihi report counts it. BatchNorm is already folded into the
synapses and each RepConv is re-parameterized into one 3x3 convolution. What each op computes,
its inputs, fields and latency are declared once in ``ops.OPS`` (see ``schema.md``).

Shapes are per sample, without batch. ``Node.block`` names the unit a node belongs to (the fused
Lava granularity runs one process per block): data written by the exporter, not parsed from names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

from .errors import GraphError
from .input import InputSpec
from .ops import OPS, spec_of

#: Largest T a graph may declare: a run allocates per timestep (an export claiming T=10**12 asked for
#: an 11 TiB buffer); event models use 8-16, nothing sensible comes near a million.
MAX_TIMESTEPS = 10 ** 6


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: Tuple[str, ...]
    shape: Tuple[int, ...]
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    attrs: Mapping[str, object] = field(default_factory=dict)
    block: str = ""
    #: the integers a chip holds for ``params`` (``fixed.INTEGER_FIELDS``), as a version-2 file stores
    #: them; empty for a graph made in memory (``fixed.node_integers`` quantizes its floats then)
    integers: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def spec(self):
        return spec_of(self.op)

    def latency(self) -> int:
        return self.spec.latency_of(self)


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order; ``output`` names the logits node (a ``dense``); ``input_spec``
    is the input contract (what data, normalized how, the model was made for)."""

    nodes: Tuple[Node, ...]
    output: str
    timesteps: int
    static_input: bool
    model_config: Mapping[str, object] = field(default_factory=dict)
    input_spec: Optional[InputSpec] = None
    float_params: bool = True          # False: read from a fixed-point-only file (params rebuilt from integers)

    def __post_init__(self):
        validate(self)
        if self.input_spec is None:
            object.__setattr__(self, "input_spec", InputSpec.of_graph_input(
                tuple(self.nodes[0].shape), self.timesteps, self.static_input,
                str(self.model_config.get("dataset", ""))))

    @property
    def by_name(self) -> Dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @property
    def input(self) -> Node:
        return self.nodes[0]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def blocks(self) -> Dict[str, Tuple[Node, ...]]:
        """``{block: its nodes in order}`` for every node after the input."""
        groups: Dict[str, list] = {}
        for node in self.nodes[1:]:
            groups.setdefault(node.block or node.name, []).append(node)
        return {name: tuple(nodes) for name, nodes in groups.items()}

    def emits_spikes(self) -> Dict[str, bool]:
        """Whether each node's output carries 0/1 spikes (a delay line carries what it delays)."""
        spikes: Dict[str, bool] = {}
        for node in self.nodes:
            spec = node.spec
            spikes[node.name] = spikes[node.inputs[0]] if spec.role == "delay" else spec.output == "spikes"
        return spikes

    def spike_inputs(self) -> Dict[str, bool]:
        """Whether each node's (first) input carries spikes rather than graded values."""
        spikes = self.emits_spikes()
        return {n.name: bool(n.inputs) and spikes[n.inputs[0]] for n in self.nodes}

    def arrival(self) -> Dict[str, int]:
        """Step at which each node's output for timestep 0 appears on the fine-grained Lava graph,
        once every input of a node has been delayed to its latest input (``aligned``)."""
        arrival: Dict[str, int] = {}
        for node in self.nodes:
            start = max((arrival[i] for i in node.inputs), default=0)
            arrival[node.name] = start + node.latency()
        return arrival

    @property
    def latency(self) -> int:
        """L: the logits for PyTorch timestep t leave the Lava network at step t + L."""
        return self.arrival()[self.output]


def validate(graph: Graph) -> None:
    if not graph.nodes or graph.nodes[0].op != "input":
        raise GraphError("graph: the first node must be the 'input' node")
    if int(graph.timesteps) != graph.timesteps or not 1 <= graph.timesteps <= MAX_TIMESTEPS:
        raise GraphError(f"graph: timesteps must be an int in 1..{MAX_TIMESTEPS}, got {graph.timesteps}")
    seen: Dict[str, Node] = {}
    for node in graph.nodes:
        where = f"node {node.name!r} ({node.op})"
        if node.op not in OPS:
            raise GraphError(f"{where}: unknown op; known ops are {tuple(OPS)}")
        spec = OPS[node.op]
        if node.op == "input" and seen:
            raise GraphError(f"{where}: only the first node may be the input")
        if node.name in seen:
            raise GraphError(f"{where}: duplicate node name")
        lo, hi = spec.arity
        if not lo <= len(node.inputs) <= hi:
            raise GraphError(f"{where}: takes {lo}..{hi} inputs, got {len(node.inputs)}")
        for name in node.inputs:
            if name not in seen:
                raise GraphError(f"{where}: input {name!r} is not an earlier node")
        if not node.shape or any(int(s) < 1 for s in node.shape):
            raise GraphError(f"{where}: shape must be non-empty and positive, got {node.shape}")
        for key in spec.params:
            if key not in node.params:
                raise GraphError(f"{where}: missing parameter {key!r}")
        for key in spec.int_attrs:
            if key not in node.attrs:
                raise GraphError(f"{where}: missing attribute {key!r}")
        if spec.neuron:
            for key in ("threshold", "tau"):
                value = node.attrs.get(key)
                if value is None or not np.isfinite(float(value)) or float(value) <= 0:
                    raise GraphError(f"{where}: neuron {key!r} must be a positive number, got {value}")
        for key, value in node.params.items():
            if not np.all(np.isfinite(value)):
                raise GraphError(f"{where}: parameter {key!r} holds NaN or inf")
        inputs = [tuple(seen[i].shape) for i in node.inputs]
        if spec.check is not None:
            spec.check(node, inputs)
        expected = tuple(int(s) for s in spec.shape(node, inputs))
        if "bias" in node.params and node.params["bias"].shape != (expected[0],):
            raise GraphError(f"{where}: bias shape {node.params['bias'].shape} != ({expected[0]},)")
        if tuple(node.shape) != expected:
            raise GraphError(f"{where}: shape {tuple(node.shape)} != {expected} implied by its inputs and weights")
        seen[node.name] = node
    if graph.output not in seen or seen[graph.output].op != "dense":
        raise GraphError(f"graph: output {graph.output!r} must name a dense node")
