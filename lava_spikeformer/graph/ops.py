"""The op registry: everything the library knows about an op, declared once (NIR-style typed nodes).

An ``OpSpec`` says how many inputs an op takes, how many steps it adds on Lava's fine-grained
graph, which HDF5 fields it stores, how its output shape follows from its inputs and weights,
whether it emits spikes or graded values, and its float and integer numpy kernels. The graph
validation, the HDF5 reader and writer, the reference simulator, the Lava builders
(``lava/bindings.py`` registers one binding per op), the netx-plain writer and the Loihi report
all read this table; ``tests/test_op_registry.py`` checks that every op is complete everywhere.

Adding an op: one ``register_op(OpSpec(...))`` here (kernels in ``kernels.py``/``fixed.py``) plus
its Lava binding beside the Process classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from . import fixed, kernels
from .errors import GraphError

Shape = Tuple[int, ...]
#: ``(node, input shapes) -> output shape``; raises ``GraphError`` when weights and inputs do not fit
ShapeRule = Callable[[object, Sequence[Shape]], Shape]
#: ``(node, spike_input) -> Kernel``; ``spike_input``: the (first) input carries 0/1 spikes
KernelFactory = Callable[[object, bool], kernels.Kernel]


@dataclass(frozen=True)
class OpSpec:
    name: str
    arity: Tuple[int, int]                 # (fewest, most) inputs
    role: str                              # input | synapse | neuron | attention | sum | pool | delay
    output: str                            # 'spikes' or 'graded'
    shape: ShapeRule
    float_kernel: Optional[KernelFactory]
    fixed_kernel: Optional[KernelFactory]
    latency: int = 0                       # steps added on Lava's fine graph (``delay``: its ``steps``)
    params: Tuple[str, ...] = ()           # required float datasets
    optional_params: Tuple[str, ...] = ()
    int_attrs: Tuple[str, ...] = ()        # integer scalars
    neuron: bool = False                   # carries ``threshold``/``tau`` (HDF5 ``neuron/`` group)
    check: Optional[Callable[[object, Sequence[Shape]], None]] = None   # attribute rules beyond shapes
    netx_plain: Optional[str] = None       # why plain netx cannot express it (None: it can)

    def __post_init__(self):
        if self.output not in ("spikes", "graded"):
            raise ValueError(f"op {self.name!r}: output must be 'spikes' or 'graded', got {self.output!r}")

    def latency_of(self, node) -> int:
        return int(node.attrs["steps"]) if self.role == "delay" else self.latency


OPS: Dict[str, OpSpec] = {}


def register_op(spec: OpSpec) -> OpSpec:
    if spec.name in OPS:
        raise ValueError(f"op {spec.name!r} is registered already")
    if len(spec.name) > 10:
        raise ValueError(f"op {spec.name!r}: netx's HDF5 'type' holds at most 10 characters")
    OPS[spec.name] = spec
    return spec


def spec_of(op: str) -> OpSpec:
    if op not in OPS:
        raise GraphError(f"unknown op {op!r}; known ops are {tuple(OPS)}")
    return OPS[op]


def conv_output_hw(hw: Tuple[int, int], kernel: Tuple[int, int], stride: int, padding: int) -> Tuple[int, int]:
    return tuple((n + 2 * padding - k) // stride + 1 for n, k in zip(hw, kernel))


def _where(node) -> str:
    return f"node {node.name!r} ({node.op})"


# ---------------------------------------------------------------------------- shape rules
def _same_as_inputs(node, inputs: Sequence[Shape]) -> Shape:
    if any(tuple(s) != tuple(inputs[0]) for s in inputs):
        raise GraphError(f"{_where(node)}: inputs have different shapes {[tuple(s) for s in inputs]}")
    return tuple(inputs[0])


def _conv_shape(node, inputs: Sequence[Shape]) -> Shape:
    w = node.params["weight"]
    if len(inputs[0]) != 3:
        raise GraphError(f"{_where(node)}: input must be (C, H, W), got {tuple(inputs[0])}")
    c, h, wd = inputs[0]
    groups = int(node.attrs["groups"])
    if w.ndim != 4 or groups < 1 or c % groups or w.shape[1] * groups != c or w.shape[0] % groups:
        raise GraphError(f"{_where(node)}: weight {w.shape} does not fit input channels {c} with groups={groups}")
    if int(node.attrs["stride"]) < 1 or int(node.attrs["padding"]) < 0:
        raise GraphError(f"{_where(node)}: stride must be >= 1 and padding >= 0, got "
                         f"{node.attrs['stride']}, {node.attrs['padding']}")
    out_hw = conv_output_hw((h, wd), w.shape[2:], int(node.attrs["stride"]), int(node.attrs["padding"]))
    if min(out_hw) < 1:
        raise GraphError(f"{_where(node)}: kernel {w.shape[2:]} does not fit input {h}x{wd}")
    return (w.shape[0], *out_hw)


def _dense_shape(node, inputs: Sequence[Shape]) -> Shape:
    w = node.params["weight"]
    if w.ndim != 2 or w.shape[1] != int(np.prod(inputs[0])):
        raise GraphError(f"{_where(node)}: weight {w.shape} does not fit input {tuple(inputs[0])}")
    return (w.shape[0],)


def _mean_shape(node, inputs: Sequence[Shape]) -> Shape:
    if len(inputs[0]) != 3:
        raise GraphError(f"{_where(node)}: input must be (C, H, W), got {tuple(inputs[0])}")
    return (inputs[0][0],)


def _check_sdsa(node, inputs: Sequence[Shape]) -> None:
    variant, heads = int(node.attrs["variant"]), int(node.attrs["heads"])
    if variant not in (1, 2, 3, 4):
        raise GraphError(f"{_where(node)}: variant must be 1, 2, 3 or 4, got {variant}")
    expected = 2 if variant == 2 else 3
    if len(inputs) != expected:
        raise GraphError(f"{_where(node)}: SDSA-{variant} takes {expected} inputs (q, {'' if variant == 2 else 'k, '}v), "
                         f"got {len(inputs)}")
    if len(inputs[0]) != 3:
        raise GraphError(f"{_where(node)}: inputs must be (C, H, W), got {tuple(inputs[0])}")
    if heads < 1 or inputs[0][0] % heads:
        raise GraphError(f"{_where(node)}: heads={heads} must be >= 1 and divide the {inputs[0][0]} channels")
    if variant >= 3:
        scale = node.params.get("scale")
        if scale is None or np.shape(scale) != (heads,):
            raise GraphError(f"{_where(node)}: SDSA-{variant} needs 'scale' with one value per head ({heads}), "
                             f"got {None if scale is None else np.shape(scale)}")


def _check_delay(node, inputs: Sequence[Shape]) -> None:
    if int(node.attrs["steps"]) < 1:
        raise GraphError(f"{_where(node)}: steps must be >= 1, got {node.attrs['steps']}")


def _input_shape(node, inputs: Sequence[Shape]) -> Shape:
    return tuple(node.shape)


# ---------------------------------------------------------------------------- kernels
def _same(make):
    """A kernel that is exact on integers as it is on floats (sums, delays)."""
    return lambda node, spike_input: make(node)


register_op(OpSpec("input", (0, 0), "input", "graded", _input_shape, None, None))
register_op(OpSpec(
    "conv", (1, 1), "synapse", "graded", _conv_shape,
    float_kernel=_same(kernels.ConvKernel), fixed_kernel=fixed.FixedSynapse, latency=1,
    params=("weight",), optional_params=("bias",), int_attrs=("stride", "padding", "groups")))
register_op(OpSpec(
    "dense", (1, 1), "synapse", "graded", _dense_shape,
    float_kernel=_same(kernels.DenseKernel), fixed_kernel=fixed.FixedSynapse, latency=1,
    params=("weight",), optional_params=("bias",)))
register_op(OpSpec(
    "lif", (1, 1), "neuron", "spikes", _same_as_inputs,
    float_kernel=_same(kernels.LIFKernel),
    fixed_kernel=lambda node, spike_input: kernels.LIFKernel(node, fixed.lif_step_fixed), neuron=True))
register_op(OpSpec(
    "sdsa", (2, 3), "attention", "spikes", _same_as_inputs,
    float_kernel=_same(kernels.SDSAKernel),
    fixed_kernel=lambda node, spike_input: kernels.SDSAKernel(node, fixed.sdsa_drive_fixed, fixed.lif_step_fixed,
                                                               fixed.units(fixed.node_integers(node), "scale")),
    latency=1, optional_params=("scale",), int_attrs=("variant", "heads"), neuron=True, check=_check_sdsa,
    netx_plain="plain netx has no spike-driven self-attention"))
register_op(OpSpec(
    "add", (2, 8), "sum", "graded", _same_as_inputs,
    float_kernel=_same(kernels.AddKernel), fixed_kernel=_same(kernels.AddKernel),
    netx_plain="plain netx has no residual (membrane-shortcut) sum"))
register_op(OpSpec(
    "mean", (1, 1), "pool", "graded", _mean_shape,
    float_kernel=_same(kernels.MeanKernel),
    fixed_kernel=lambda node, spike_input: kernels.MeanKernel(node, fixed.spatial_mean_fixed)))
register_op(OpSpec(
    "delay", (1, 1), "delay", "graded", _same_as_inputs,
    float_kernel=_same(kernels.RelayKernel), fixed_kernel=_same(kernels.RelayKernel),
    int_attrs=("steps",), check=_check_delay, netx_plain="plain netx has no delay line"))


PRECISIONS = ("float", "fixed")


def make_kernel(node, precision: str = "float", spike_input: bool = False) -> kernels.Kernel:
    """The kernel of ``node`` in ``precision`` ('float': float64; 'fixed': the integer network of
    ``fixed.py``, where ``spike_input`` says whether the node's input carries 0/1 spikes)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    spec = spec_of(node.op)
    factory = spec.float_kernel if precision == "float" else spec.fixed_kernel
    if factory is None:
        raise GraphError(f"{_where(node)}: op has no {precision} kernel")
    return factory(node, spike_input)
