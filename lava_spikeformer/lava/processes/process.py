"""Lava Processes of Meta-SpikeFormer: ports and Vars only (models live in ``models.py``).

Shapes carry a leading batch axis: one process graph runs a batch of samples in lock step.
``valid_from`` is the first timestep at which a process's input carries data (its place in the
pipeline); before it the process emits zeros and keeps its state, so biases do not act before the
first input reaches them (netx's sequential round-trip differs in its first steps for that reason).
``active_steps`` (0: unlimited) ends that window after as many steps, when the input is known to
last T steps: later outputs are never read, so a batch run skips their computation.
``spike_input`` tells a synapse's fixed-point model that its input is 0/1 spikes rather than graded
values in units of 1/64 (``graph.fixed``). Synapses and SDSA hold their parameters twice: the floats
(``floating_pt``) and the integers a chip holds (``weight_mant``/``weight_exp``, ``bias_mant``/
``bias_exp``, ``scale_mant``/``scale_exp``: ``fixed_pt``), given as read from an export
(``fixed.node_integers``) or, when not given, quantized from the floats.

Which Process runs which graph op is declared in ``lava/bindings.py``.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Tuple

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from event_data.events import require_events
from lava_spikeformer.graph import fixed


def _shape(name: str, shape) -> Tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {shape}")
    return shape


def _nonneg(name: str, value) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _positive(name: str, value) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _integer_vars(proc: AbstractProcess, floats: dict, integers: Optional[Mapping]) -> None:
    """One Var per integer field of ``floats``' parameters: ``integers`` where given, else quantized."""
    for field, value in fixed.chip_integers(floats, integers or {}).items():
        setattr(proc, field, Var(shape=value.shape, init=value))


class _Process(AbstractProcess):
    """Validates before ``AbstractProcess.__init__``; Lava's destructor assumes that ran, so a rejected
    constructor call would print an AttributeError at garbage collection."""

    def __del__(self):
        if hasattr(self, "_runtime"):
            super().__del__()


def conv_out_shape(shape_in, weight_shape, stride: int, padding: int) -> Tuple[int, ...]:
    batch, _, h, w = shape_in
    out_ch, _, kh, kw = weight_shape
    return batch, out_ch, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1


class Conv(_Process):
    """Graded 2-D convolution synapse (any ``groups``); delivers its result one step later."""

    def __init__(self, *, shape_in: Sequence[int], weight: np.ndarray, bias: Optional[np.ndarray] = None,
                 stride: int = 1, padding: int = 0, groups: int = 1, valid_from: int = 0,
                 active_steps: int = 0, spike_input: bool = False, integers: Optional[Mapping] = None,
                 name: Optional[str] = None):
        shape_in = _shape("shape_in", shape_in)
        weight = np.asarray(weight)
        if len(shape_in) != 4 or weight.ndim != 4:
            raise ValueError(f"Conv needs shape_in (B, C, H, W) and weight (O, C/groups, kh, kw), "
                             f"got {shape_in} and {weight.shape}")
        if groups < 1 or shape_in[1] % groups or weight.shape[1] * groups != shape_in[1] or weight.shape[0] % groups:
            raise ValueError(f"Conv: weight {weight.shape} does not fit {shape_in[1]} input channels "
                             f"with groups={groups}")
        if int(stride) < 1:
            raise ValueError(f"Conv: stride must be >= 1, got {stride}")
        shape_out = conv_out_shape(shape_in, weight.shape, int(stride), _nonneg("padding", padding))
        bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"Conv: bias shape {bias.shape} != ({weight.shape[0]},)")
        super().__init__(shape_in=shape_in, shape_out=shape_out, stride=int(stride), padding=int(padding),
                         groups=int(groups), valid_from=_nonneg("valid_from", valid_from),
                         active_steps=_nonneg("active_steps", active_steps), spike_input=bool(spike_input), name=name)
        self.a_in = InPort(shape=shape_in)
        self.a_out = OutPort(shape=shape_out)
        self.weight = Var(shape=weight.shape, init=weight)
        self.bias = Var(shape=bias.shape, init=bias)
        _integer_vars(self, {"weight": weight, "bias": bias}, integers)


class Dense(_Process):
    """Graded fully connected synapse on flattened input; delivers its result one step later."""

    def __init__(self, *, shape_in: Sequence[int], weight: np.ndarray, bias: Optional[np.ndarray] = None,
                 valid_from: int = 0, active_steps: int = 0, spike_input: bool = False,
                 integers: Optional[Mapping] = None, name: Optional[str] = None):
        shape_in = _shape("shape_in", shape_in)
        weight = np.asarray(weight)
        if weight.ndim != 2 or weight.shape[1] != int(np.prod(shape_in[1:])):
            raise ValueError(f"Dense: weight {weight.shape} does not fit input {shape_in} (batch first)")
        bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"Dense: bias shape {bias.shape} != ({weight.shape[0]},)")
        shape_out = (shape_in[0], weight.shape[0])
        super().__init__(shape_in=shape_in, shape_out=shape_out, valid_from=_nonneg("valid_from", valid_from),
                         active_steps=_nonneg("active_steps", active_steps), spike_input=bool(spike_input),
                         name=name)
        self.a_in = InPort(shape=shape_in)
        self.a_out = OutPort(shape=shape_out)
        self.weight = Var(shape=weight.shape, init=weight)
        self.bias = Var(shape=bias.shape, init=bias)
        _integer_vars(self, {"weight": weight, "bias": bias}, integers)


class LIF(_Process):
    """The paper's LIF (``h = v + (x - v) / tau``, spike iff ``h >= threshold``, hard reset).
    ``h`` is the membrane before reset: the graded value a membrane shortcut would carry."""

    def __init__(self, *, shape: Sequence[int], threshold: float = 1.0, tau: float = 2.0,
                 name: Optional[str] = None):
        shape = _shape("shape", shape)
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.h = Var(shape=shape, init=0)
        self.threshold = Var(shape=(1,), init=_positive("threshold", threshold))
        self.tau = Var(shape=(1,), init=_positive("tau", tau))


class SDSA(_Process):
    """Spike-Driven Self-Attention 1-4 on spike inputs ``q_in, k_in, v_in`` (``k_in`` unused by
    SDSA-2), with its attention LIF; delivers its spikes one step later."""

    def __init__(self, *, shape: Sequence[int], variant: int = 3, heads: int = 8,
                 scale: Optional[np.ndarray] = None, threshold: float = 0.5, tau: float = 2.0,
                 integers: Optional[Mapping] = None, name: Optional[str] = None):
        shape = _shape("shape", shape)
        if len(shape) != 4:
            raise ValueError(f"SDSA needs shape (B, C, H, W), got {shape}")
        if variant not in (1, 2, 3, 4):
            raise ValueError(f"SDSA variant must be 1, 2, 3 or 4, got {variant!r}")
        if int(heads) < 1 or shape[1] % int(heads):
            raise ValueError(f"SDSA: heads={heads} must divide the {shape[1]} channels")
        scale = np.full(int(heads), 0.125) if scale is None else np.asarray(scale, dtype=float).reshape(-1)
        if scale.shape != (int(heads),):
            raise ValueError(f"SDSA: scale must hold one value per head ({heads}), got shape {scale.shape}")
        super().__init__(shape=shape, variant=int(variant), heads=int(heads), name=name)
        self.q_in = InPort(shape=shape)
        self.k_in = InPort(shape=shape)
        self.v_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        reduced = shape if variant in (3, 4) else shape[:2] + (1,)
        self.h = Var(shape=reduced, init=0)
        self.scale = Var(shape=scale.shape, init=scale)
        _integer_vars(self, {"scale": scale}, integers)
        self.threshold = Var(shape=(1,), init=_positive("threshold", threshold))
        self.tau = Var(shape=(1,), init=_positive("tau", tau))


class GradedAdd(_Process):
    """Membrane shortcut: passes on the sum of everything connected to ``a_in`` (Lava sums the
    messages of several OutPorts into one InPort), graded, within the step."""

    def __init__(self, *, shape: Sequence[int], name: Optional[str] = None):
        shape = _shape("shape", shape)
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)


class DelayLine(_Process):
    """Delays a graded or spike stream by ``steps`` timesteps (aligns skip paths)."""

    def __init__(self, *, shape: Sequence[int], steps: int, name: Optional[str] = None):
        shape = _shape("shape", shape)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"DelayLine: steps must be an int >= 1, got {steps!r}")
        super().__init__(shape=shape, steps=int(steps), name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)
        self.buffer = Var(shape=(int(steps),) + shape, init=0)


class SpatialMean(_Process):
    """Mean over the spatial axes ``(B, C, H, W) -> (B, C)``: the head's pooling."""

    def __init__(self, *, shape_in: Sequence[int], name: Optional[str] = None):
        shape_in = _shape("shape_in", shape_in)
        if len(shape_in) != 4:
            raise ValueError(f"SpatialMean needs shape_in (B, C, H, W), got {shape_in}")
        super().__init__(shape_in=shape_in, name=name)
        self.a_in = InPort(shape=shape_in)
        self.a_out = OutPort(shape=shape_in[:2])


class FusedBlock(_Process):
    """A whole block (a sub-graph of export nodes) in one process: the fast granularity. Runs the
    nodes within the step and delays the result by ``delay`` steps, the latency the same nodes have
    as separate processes, so both granularities emit identical streams."""

    def __init__(self, *, nodes: Sequence, shape_in: Sequence[int], shape_out: Sequence[int], delay: int,
                 valid_from: int = 0, active_steps: int = 0, spike_inputs: Optional[dict] = None,
                 name: Optional[str] = None):
        if not nodes:
            raise ValueError("FusedBlock needs at least one node")
        shape_in, shape_out = _shape("shape_in", shape_in), _shape("shape_out", shape_out)
        super().__init__(nodes=tuple(nodes), shape_in=shape_in, shape_out=shape_out,
                         delay=_nonneg("delay", delay), valid_from=_nonneg("valid_from", valid_from),
                         active_steps=_nonneg("active_steps", active_steps), spike_inputs=dict(spike_inputs or {}),
                         name=name)
        self.a_in = InPort(shape=shape_in)
        self.a_out = OutPort(shape=shape_out)


class ClassDecision(_Process):
    """Class decision per step: the argmax of the logits summed since step ``valid_from`` (the
    pipeline latency, when the first timestep's logits arrive); -1 before that. At step
    ``valid_from + T - 1`` it equals the PyTorch prediction (argmax of the mean over T)."""

    def __init__(self, *, shape: Sequence[int], valid_from: int = 0, name: Optional[str] = None):
        shape = _shape("shape", shape)
        if len(shape) != 2:
            raise ValueError(f"ClassDecision needs shape (B, classes), got {shape}")
        super().__init__(shape=shape, valid_from=_nonneg("valid_from", valid_from), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape[:1])
        self.votes = Var(shape=shape, init=0)


class Recorder(_Process):
    """Records its input at every step into a shared-memory buffer ``(steps, *shape)`` (float64)
    that the host reads directly. Lava's own sink (``io.sink.RingBuffer``) returns its data through
    ``Var.get()``, which Lava 0.10 relays one element per message: minutes for a probe of a batch."""

    def __init__(self, *, shape: Sequence[int], steps: int, buffer_name: str, name: Optional[str] = None):
        shape = _shape("shape", shape)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"Recorder: steps must be an int >= 1, got {steps!r}")
        if not isinstance(buffer_name, str) or not buffer_name:
            raise ValueError(f"Recorder: buffer_name must name a SharedMemory block, got {buffer_name!r}")
        super().__init__(shape=shape, steps=int(steps), buffer_name=buffer_name, name=name)
        self.a_in = InPort(shape=shape)


class EventSource(_Process):
    """Sends a batch of event streams into a network, one time bin per step, as lava-peripherals'
    DVS processes do (one OutPort ``(B, P, H, W)``, events binned per step).

    ``streams``: one tonic event array per batch element, raw; ``transform`` (event -> event,
    e.g. ``event_transform(...)[0]``) runs inside the process before binning; ``sensor_size``
    (W, H, P) is the transform's output size. Step k sends the event counts of bin k of
    ``n_time_bins`` (tonic's ``ToFrame(n_time_bins)`` slicing), zeros after the last bin.
    """

    def __init__(self, *, streams: Sequence[np.ndarray], sensor_size: Tuple[int, int, int], n_time_bins: int,
                 transform: Optional[Callable] = None, name: Optional[str] = None):
        streams = tuple(streams)
        if not streams:
            raise ValueError("EventSource needs at least one event stream")
        sensor_size = tuple(int(s) for s in sensor_size)
        if len(sensor_size) != 3 or min(sensor_size) < 1:
            raise ValueError(f"sensor_size must be (W, H, P) positive ints, got {sensor_size}")
        for i, events in enumerate(streams):                   # EventDataError is a ValueError
            require_events(events, f"streams[{i}]", polarities=sensor_size[2])
        if int(n_time_bins) != n_time_bins or n_time_bins < 1:
            raise ValueError(f"n_time_bins must be an int >= 1, got {n_time_bins!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, got {type(transform).__name__}")
        super().__init__(streams=streams, sensor_size=sensor_size, n_time_bins=int(n_time_bins),
                         transform=transform, name=name)
        width, height, polarities = sensor_size
        self.s_out = OutPort(shape=(len(streams), polarities, height, width))
