"""Which Lava Process runs each graph op (fine granularity): the Lava half of the op registry.

A binding builds the Process of one node and names its ports; ``network.py`` wires them by these
names only. ``tests/test_op_registry.py`` checks that every op of ``graph.ops.OPS`` but ``input``
has one. Adding an op: its ``OpSpec`` in ``graph/ops.py``, its Process (+ models) in
``processes/``, and one ``bind`` here.

Absolute imports only: Lava's compiler executes the network module that imports this one.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List

from lava.magma.core.process.process import AbstractProcess

from lava_spikeformer.graph import Node, fixed
from lava_spikeformer.graph.ops import OPS
from lava_spikeformer.lava.processes.process import SDSA, Conv, DelayLine, Dense, GradedAdd, LIF, SpatialMean


@dataclass(frozen=True)
class BuildContext:
    """What a binding needs beyond the node: the batch-first input shape and its place in the pipeline."""

    shape_in: tuple
    valid_from: int
    active_steps: int
    spike_input: bool


@dataclass(frozen=True)
class LavaBinding:
    build: Callable[[Node, BuildContext], AbstractProcess]
    in_ports: Callable[[AbstractProcess, Node], List]      # one port per node input, in order
    out_port: str


BINDINGS: Dict[str, LavaBinding] = {}


def bind(op: str, build, out_port: str, in_ports=None) -> None:
    if op not in OPS:
        raise ValueError(f"cannot bind unknown op {op!r}; register its OpSpec first")
    BINDINGS[op] = LavaBinding(build, in_ports or (lambda proc, node: [proc.a_in] * len(node.inputs)), out_port)


def _window(ctx: BuildContext) -> dict:
    return dict(valid_from=ctx.valid_from, active_steps=ctx.active_steps, spike_input=ctx.spike_input)


bind("conv", lambda n, ctx: Conv(shape_in=ctx.shape_in, weight=n.params["weight"], bias=n.params.get("bias"),
                                 stride=n.attrs["stride"], padding=n.attrs["padding"], groups=n.attrs["groups"],
                                 integers=fixed.node_integers(n), name=n.name, **_window(ctx)), "a_out")
bind("dense", lambda n, ctx: Dense(shape_in=ctx.shape_in, weight=n.params["weight"], bias=n.params.get("bias"),
                                   integers=fixed.node_integers(n), name=n.name, **_window(ctx)), "a_out")
bind("lif", lambda n, ctx: LIF(shape=ctx.shape_in, threshold=n.attrs["threshold"], tau=n.attrs["tau"], name=n.name),
     "s_out")
bind("sdsa", lambda n, ctx: SDSA(shape=ctx.shape_in, variant=n.attrs["variant"], heads=n.attrs["heads"],
                                 scale=n.params.get("scale"), threshold=n.attrs["threshold"], tau=n.attrs["tau"],
                                 integers=fixed.node_integers(n), name=n.name),
     "s_out", lambda proc, n: [proc.q_in, proc.v_in] if n.attrs["variant"] == 2 else [proc.q_in, proc.k_in, proc.v_in])
bind("add", lambda n, ctx: GradedAdd(shape=ctx.shape_in, name=n.name), "a_out")
bind("mean", lambda n, ctx: SpatialMean(shape_in=ctx.shape_in, name=n.name), "a_out")
bind("delay", lambda n, ctx: DelayLine(shape=ctx.shape_in, steps=n.attrs["steps"], name=n.name), "a_out")


def binding_of(node: Node) -> LavaBinding:
    if node.op not in BINDINGS:
        raise ValueError(f"node {node.name!r}: no Lava process is bound to op {node.op!r}")
    return BINDINGS[node.op]
