"""ProcessModels of the Meta-SpikeFormer Processes (Python/CPU, Loihi protocol), ``floating_pt``
and ``fixed_pt``.

Every model computes with the numpy kernels of ``lava_spikeformer.graph`` (``kernels`` for float,
``fixed`` for the integer network, both reached through the op registry) — the same code as the reference simulator — so a Lava run
differs from the reference only by message passing and pipeline latency. Synaptic models (Conv,
Dense, SDSA) deliver one step after their input arrives, as Lava's Dense does; neurons, sums and
pooling act within the step. Fixed-point models compute with the integer Vars of their Process
(weight/bias/scale mantissas and exponents, as the export stores them), through ``graph.fixed``;
their messages are integers (spikes 0/1, graded values in units of 1/64) computed in int64.

Absolute imports only: Lava's compiler executes this file as a top-level module.
"""
from multiprocessing import shared_memory

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from event_data.transforms import frame_of, sort_by_time, time_bins
from lava_spikeformer.graph import Node, fixed, kernels
from lava_spikeformer.graph.ops import make_kernel
from lava_spikeformer.lava.processes.process import (SDSA, ClassDecision, Conv, DelayLine, Dense, EventSource,
                                                     FusedBlock, GradedAdd, LIF, Recorder, SpatialMean)

FLOAT, INT = np.float64, np.int32          # message types; fixed point computes in int64


def _in(dtype):
    return LavaPyType(PyInPort.VEC_DENSE, dtype, precision=24 if dtype is INT else None)


def _out(dtype):
    return LavaPyType(PyOutPort.VEC_DENSE, dtype, precision=24 if dtype is INT else None)


class _Model(PyLoihiProcessModel):
    FIXED = False

    def step(self) -> None:
        raise NotImplementedError

    def run_spk(self) -> None:
        try:
            self.step()
        except Exception:
            # Lava 0.10's runtime waits for every process to finish the step; one blocked on a message
            # this process never sends would hang the run instead of reporting the error.
            for port in self.py_ports:
                if isinstance(port, PyOutPort):
                    port.send(np.zeros(port._shape, port._d_type))
            raise

    def recv(self, port) -> np.ndarray:
        x = port.recv()
        return x.astype(np.int64) if self.FIXED else x

    def active(self) -> bool:
        """Inside the window in which the input carries data (see ``valid_from``/``active_steps``)."""
        step, start = self.time_step - 1, self.proc_params.get("valid_from", 0)
        length = self.proc_params.get("active_steps", 0)
        return step >= start and (length == 0 or step < start + length)


# ---------------------------------------------------------------------------- synapses
class _SynapseModel(_Model):
    """Zero before ``valid_from``, then the kernel's output for the received input, one step later."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._zeros = np.zeros(proc_params["shape_out"], np.int64 if self.FIXED else FLOAT)
        self._pending = self._zeros
        self._kernel = None

    def node(self) -> Node:
        raise NotImplementedError

    def step(self) -> None:
        x = self.recv(self.a_in)
        if self._kernel is None:          # Vars hold their values only once the model runs
            self._kernel = make_kernel(self.node(), "fixed" if self.FIXED else "float",
                                       self.proc_params["spike_input"])
        ready = self._pending
        self._pending = self._kernel.step([x]) if self.active() else self._zeros
        self.a_out.send(ready)


class _SynapseIntegers:
    def integers(self) -> dict:
        """The chip's integers of this synapse (fixed_pt computes with these only)."""
        if not self.FIXED:
            return {}
        fields = ("weight_mant", "weight_exp", "bias_mant", "bias_exp")
        return {f: getattr(self, f) for f in fields}


class _ConvModel(_SynapseIntegers, _SynapseModel):
    def node(self):
        p = self.proc_params
        return Node("conv", "conv", ("x",), p["shape_out"][1:], {"weight": self.weight, "bias": self.bias},
                    {"stride": p["stride"], "padding": p["padding"], "groups": p["groups"]},
                    integers=self.integers())


class _DenseModel(_SynapseIntegers, _SynapseModel):
    def node(self):
        return Node("dense", "dense", ("x",), self.proc_params["shape_out"][1:],
                    {"weight": self.weight, "bias": self.bias}, integers=self.integers())


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyConvModelFloat(_ConvModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)
    weight: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    bias: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    weight_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvModelFixed(_ConvModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)
    weight: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    bias: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    weight_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDenseModelFloat(_DenseModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)
    weight: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    bias: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    weight_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDenseModelFixed(_DenseModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)
    weight: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    bias: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    weight_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---------------------------------------------------------------------------- neurons
class _LIFModel(_Model):
    def lif_step(self, x: np.ndarray):
        step_fn = fixed.lif_step_fixed if self.FIXED else kernels.lif_step
        spikes, self.h[:] = step_fn(x, self.h, self.threshold[0], self.tau[0])
        return spikes

    def step(self) -> None:
        spikes = self.lif_step(self.recv(self.a_in))
        self.s_out.send(spikes)


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLIFModelFloat(_LIFModel):
    a_in: PyInPort = _in(FLOAT)
    s_out: PyOutPort = _out(FLOAT)
    h: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    threshold: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    tau: np.ndarray = LavaPyType(np.ndarray, FLOAT)


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLIFModelFixed(_LIFModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    s_out: PyOutPort = _out(INT)
    h: np.ndarray = LavaPyType(np.ndarray, np.int64)
    threshold: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    tau: np.ndarray = LavaPyType(np.ndarray, FLOAT)


class _SDSAModel(_LIFModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._pending = np.zeros(proc_params["shape"], np.int64 if self.FIXED else FLOAT)

    def step(self) -> None:
        q, k, v = self.recv(self.q_in), self.recv(self.k_in), self.recv(self.v_in)
        variant, heads = self.proc_params["variant"], self.proc_params["heads"]
        if self.FIXED:
            drive = fixed.sdsa_drive_fixed(q, k, v, variant, heads, self.scale_mant << self.scale_exp)
        else:
            drive = kernels.sdsa_drive(q, k, v, variant, heads, self.scale)
        spikes = self.lif_step(drive)
        ready, self._pending = self._pending, kernels.sdsa_output(spikes, q, v, variant)
        self.s_out.send(ready)


@implements(proc=SDSA, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySDSAModelFloat(_SDSAModel):
    q_in: PyInPort = _in(FLOAT)
    k_in: PyInPort = _in(FLOAT)
    v_in: PyInPort = _in(FLOAT)
    s_out: PyOutPort = _out(FLOAT)
    h: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    scale: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    scale_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    scale_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    threshold: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    tau: np.ndarray = LavaPyType(np.ndarray, FLOAT)


@implements(proc=SDSA, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySDSAModelFixed(_SDSAModel):
    FIXED = True
    q_in: PyInPort = _in(INT)
    k_in: PyInPort = _in(INT)
    v_in: PyInPort = _in(INT)
    s_out: PyOutPort = _out(INT)
    h: np.ndarray = LavaPyType(np.ndarray, np.int64)
    scale: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    scale_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    scale_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    threshold: np.ndarray = LavaPyType(np.ndarray, FLOAT)
    tau: np.ndarray = LavaPyType(np.ndarray, FLOAT)


# ---------------------------------------------------------------------------- routing and pooling
class _GradedAddModel(_Model):
    def step(self) -> None:
        self.a_out.send(self.a_in.recv())


@implements(proc=GradedAdd, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGradedAddModelFloat(_GradedAddModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)


@implements(proc=GradedAdd, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGradedAddModelFixed(_GradedAddModel):
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)


class _DelayLineModel(_Model):
    def step(self) -> None:
        slot = (self.time_step - 1) % self.proc_params["steps"]
        out = self.buffer[slot].copy()
        self.buffer[slot] = self.a_in.recv()
        self.a_out.send(out)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayLineModelFloat(_DelayLineModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)
    buffer: np.ndarray = LavaPyType(np.ndarray, FLOAT)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineModelFixed(_DelayLineModel):
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int64)


class _SpatialMeanModel(_Model):
    def step(self) -> None:
        mean_fn = fixed.spatial_mean_fixed if self.FIXED else kernels.spatial_mean
        self.a_out.send(mean_fn(self.recv(self.a_in)))


@implements(proc=SpatialMean, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpatialMeanModelFloat(_SpatialMeanModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)


@implements(proc=SpatialMean, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpatialMeanModelFixed(_SpatialMeanModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)


# ---------------------------------------------------------------------------- fused blocks
class _FusedBlockModel(_Model):
    """Runs its nodes with the reference kernels within the step; a FIFO adds the block's latency."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._nodes = list(proc_params["nodes"])
        spikes = proc_params["spike_inputs"]
        precision = "fixed" if self.FIXED else "float"
        self._kernels = [make_kernel(n, precision, spikes.get(n.name, False)) for n in self._nodes]
        dtype = np.int64 if self.FIXED else FLOAT
        self._zeros = np.zeros(proc_params["shape_out"], dtype)
        self._fifo = [self._zeros] * proc_params["delay"]
        self._source = next(i for i in self._nodes[0].inputs)

    def step(self) -> None:
        x = self.recv(self.a_in)
        out = self._zeros
        if self.active():
            values = {self._source: x}
            for node, kernel in zip(self._nodes, self._kernels):
                values[node.name] = kernel.step([values[i] for i in node.inputs])
            out = values[self._nodes[-1].name]
        self._fifo.append(out)
        self.a_out.send(self._fifo.pop(0))


@implements(proc=FusedBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedBlockModelFloat(_FusedBlockModel):
    a_in: PyInPort = _in(FLOAT)
    a_out: PyOutPort = _out(FLOAT)


@implements(proc=FusedBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedBlockModelFixed(_FusedBlockModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    a_out: PyOutPort = _out(INT)


# ---------------------------------------------------------------------------- decisions
class _ClassDecisionModel(_Model):
    def step(self) -> None:
        logits = self.recv(self.a_in)
        if not self.active():
            self.s_out.send(np.full(self.s_out._shape, -1))
            return
        self.votes += logits
        self.s_out.send(self.votes.argmax(-1))


@implements(proc=ClassDecision, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyClassDecisionModelFloat(_ClassDecisionModel):
    a_in: PyInPort = _in(FLOAT)
    s_out: PyOutPort = _out(FLOAT)
    votes: np.ndarray = LavaPyType(np.ndarray, FLOAT)


@implements(proc=ClassDecision, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyClassDecisionModelFixed(_ClassDecisionModel):
    FIXED = True
    a_in: PyInPort = _in(INT)
    s_out: PyOutPort = _out(INT)
    votes: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---------------------------------------------------------------------------- recording
class _RecorderModel(_Model):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._shm = shared_memory.SharedMemory(name=proc_params["buffer_name"])
        self._buffer = np.ndarray((proc_params["steps"], *proc_params["shape"]), np.float64, buffer=self._shm.buf)

    def step(self) -> None:
        x = self.a_in.recv()
        step = self.time_step - 1
        if step < len(self._buffer):
            self._buffer[step] = x


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyRecorderModelFloat(_RecorderModel):
    a_in: PyInPort = _in(FLOAT)


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecorderModelFixed(_RecorderModel):
    a_in: PyInPort = _in(INT)


# ---------------------------------------------------------------------------- event input
class _EventSourceModel(_Model):
    """``floating_pt``: event counts; ``fixed_pt``: counts in the network's integer input units."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        transform = proc_params["transform"] or sort_by_time
        self._bins = [time_bins(transform(events), proc_params["n_time_bins"]) for events in proc_params["streams"]]

    def step(self) -> None:
        k = self.time_step - 1
        if k < self.proc_params["n_time_bins"]:
            frames = np.stack([frame_of(bins[k], self.proc_params["sensor_size"]) for bins in self._bins])
        else:
            frames = np.zeros(self.s_out._shape)
        self.s_out.send(fixed.quantize_input(frames) if self.FIXED else frames.astype(FLOAT))


@implements(proc=EventSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEventSourceModelFloat(_EventSourceModel):
    s_out: PyOutPort = _out(FLOAT)


@implements(proc=EventSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEventSourceModelFixed(_EventSourceModel):
    FIXED = True
    s_out: PyOutPort = _out(INT)
