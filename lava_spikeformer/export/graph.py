"""The export contract: a Meta-SpikeFormer as a typed graph of folded, Lava-ready nodes.

No torch, no Lava: the HDF5 reader returns a ``Graph``, the numpy reference runs it, the Lava
loader turns it into processes, the Loihi report counts it. BatchNorm is already folded into the
synapses and each RepConv is re-parameterized into one 3x3 convolution.

Node ops (``inputs`` are node names; shapes are per sample, without batch):

=========  ==================================================  ===========================
op         computes per timestep                               output
=========  ==================================================  ===========================
input      the image (static: the same at each of T steps)     graded ``(C, H, W)``
conv       ``conv2d(x, weight, bias, stride, padding, groups)`` graded ``(C', H', W')``
dense      ``weight @ x + bias``                               graded ``(C',)``
lif        paper LIF (tau, threshold, hard reset, ``>=``)      spikes, input's shape
sdsa       SDSA-1..4 of spikes ``q, [k,] v`` incl. its LIF      spikes ``(C, H, W)``
add        sum of its inputs (membrane shortcut)               graded, input's shape
mean       spatial mean                                        graded ``(C,)``
delay      its input ``steps`` timesteps later                 input's shape
=========  ==================================================  ===========================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Mapping, Tuple

import numpy as np

OPS = ("input", "conv", "dense", "lif", "sdsa", "add", "mean", "delay")

# Timesteps a node adds on Lava's fine-grained graph: synaptic ops deliver one step later, as
# Lava's Dense and Loihi do (DESIGN.md §4); neurons, sums and pooling act within the step.
LATENCY = {"input": 0, "conv": 1, "dense": 1, "sdsa": 1, "lif": 0, "add": 0, "mean": 0}

ARITY = {"input": (0, 0), "conv": (1, 1), "dense": (1, 1), "lif": (1, 1), "sdsa": (2, 3),
         "add": (2, 8), "mean": (1, 1), "delay": (1, 1)}


class GraphError(ValueError):
    """An export graph that breaks the contract (names the node and the field)."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: Tuple[str, ...]
    shape: Tuple[int, ...]
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    attrs: Mapping[str, object] = field(default_factory=dict)

    def latency(self) -> int:
        return int(self.attrs["steps"]) if self.op == "delay" else LATENCY[self.op]


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order; ``output`` names the logits node (a ``dense``)."""

    nodes: Tuple[Node, ...]
    output: str
    timesteps: int
    static_input: bool
    model_config: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        validate(self)

    @property
    def by_name(self) -> Dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @property
    def input(self) -> Node:
        return self.nodes[0]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

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
    if graph.timesteps < 1:
        raise GraphError(f"graph: timesteps must be >= 1, got {graph.timesteps}")
    seen: Dict[str, Node] = {}
    for node in graph.nodes:
        where = f"node {node.name!r} ({node.op})"
        if node.op not in OPS:
            raise GraphError(f"{where}: unknown op; known ops are {OPS}")
        if node.name in seen:
            raise GraphError(f"{where}: duplicate node name")
        lo, hi = ARITY[node.op]
        if not lo <= len(node.inputs) <= hi:
            raise GraphError(f"{where}: takes {lo}..{hi} inputs, got {len(node.inputs)}")
        for name in node.inputs:
            if name not in seen:
                raise GraphError(f"{where}: input {name!r} is not an earlier node")
        if any(int(s) < 1 for s in node.shape):
            raise GraphError(f"{where}: shape must be positive, got {node.shape}")
        for key, value in node.params.items():
            if not np.all(np.isfinite(value)):
                raise GraphError(f"{where}: parameter {key!r} holds NaN or inf")
        _check_shapes(node, [seen[i] for i in node.inputs])
        seen[node.name] = node
    if graph.output not in seen or seen[graph.output].op != "dense":
        raise GraphError(f"graph: output {graph.output!r} must name a dense node")


def conv_output_hw(hw: Tuple[int, int], kernel: Tuple[int, int], stride: int, padding: int) -> Tuple[int, int]:
    return tuple((n + 2 * padding - k) // stride + 1 for n, k in zip(hw, kernel))


def _check_shapes(node: Node, inputs) -> None:
    where = f"node {node.name!r} ({node.op})"
    shape = tuple(node.shape)
    if node.op == "conv":
        w = node.params["weight"]
        c, h, wd = inputs[0].shape
        groups = int(node.attrs["groups"])
        if w.ndim != 4 or c % groups or w.shape[1] * groups != c or w.shape[0] % groups:
            raise GraphError(f"{where}: weight {w.shape} does not fit input channels {c} with groups={groups}")
        out_hw = conv_output_hw((h, wd), w.shape[2:], int(node.attrs["stride"]), int(node.attrs["padding"]))
        expected = (w.shape[0], *out_hw)
    elif node.op == "dense":
        w = node.params["weight"]
        if w.ndim != 2 or w.shape[1] != int(np.prod(inputs[0].shape)):
            raise GraphError(f"{where}: weight {w.shape} does not fit input {inputs[0].shape}")
        expected = (w.shape[0],)
    elif node.op == "mean":
        expected = (inputs[0].shape[0],)
    elif node.op == "input":
        expected = shape
    else:
        expected = tuple(inputs[0].shape)
        if any(tuple(i.shape) != expected for i in inputs):
            raise GraphError(f"{where}: inputs have different shapes {[i.shape for i in inputs]}")
    if "bias" in node.params and node.params["bias"].shape != (expected[0],):
        raise GraphError(f"{where}: bias shape {node.params['bias'].shape} != ({expected[0]},)")
    if shape != expected:
        raise GraphError(f"{where}: shape {shape} != {expected} implied by its inputs and weights")
