"""The whole network from lava-nc's own stock processes: the ``loihi`` granularity.

Every graph op is lowered onto ``lava.proc`` processes only — ``Sparse``/``DelaySparse`` synapses,
``LIF`` neurons, ``GradedVec`` relays and ``ProdNeuron`` products — whose ``fixed_pt`` models are
lava-nc's bit-accurate Loihi arithmetic. The integer network of ``graph.fixed`` is defined as that
arithmetic, so the lowered network equals ``simulate(..., precision='fixed')`` bit for bit
(``tests/test_stock_lowering.py``). ``lava.proc.conv.Conv`` is not used: it stores ``groups`` as
int8, and its CPU ``fixed_pt`` model (lava-nc 0.10) ignores ``weight_exp`` and convolves in float32
through torch, so it does not compute the chip's arithmetic; a convolution here is a sparse matrix.

Two stages: ``lower`` plans the network per sample in numpy/scipy (``Plan``: neuron populations and
synapses, each charged to a graph node, with the step at which each signal carries timestep 0);
``build_stock`` instantiates it. Stock processes have no batch axis, and a chip none either: samples
follow each other in time, pipelined — sample b's timestep t enters at step ``b*T + t`` — and every
stateful neuron is lava's ``LIFReset``, which zeroes its state every ``T`` steps at the step its own
sample boundary passes (the way lava-dl's netx streams samples through a network on Loihi). A batch
costs the memory of one sample and ``B*T + L`` steps. ``cost`` counts the plan per graph node for the
Loihi fit report.

Conventions:

* A neuron vector holds a sample's node value flattened C-major (``c, y, x``); samples follow each
  other. A synapse matrix holds int8 mantissas ``m`` with one exponent ``e`` per process and
  computes ``floor(m @ x * 2**e)`` (``synapse_kwargs``); per-output-channel exponents become one
  process per exponent group, all feeding the same neurons.
* Stateless populations need no reset: relays and products hold nothing, and a coincidence LIF
  (du = dv = 4095) forgets its membrane within the step.
* Latency: a synapse delivers one step after its input (``1 + delay`` for a ``DelaySparse``), a
  neuron in the same step. A graded value is a sum of synaptic terms, wired into whichever neurons
  consume it; each term is delayed so that every neuron sums operands of the same timestep. A
  graded value with several consumers is materialized once in a relay (``GradedVec``, vth=0: on
  Loihi a synapse feeds one neuron population).
* Biases arrive through synapses from a data-valid line (one neuron, fed by the input boundary and
  on while timesteps are valid), delayed to the step each layer's first data arrives: the lowered
  network equals the latency-free reference shifted by each node's ``arrival``. The LIF's own
  ``bias_mant = fixed.LIF_BIAS`` (1) may act from step 0: it decays away before data arrives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.proc.graded.process import GradedVec
from lava.proc.lif.process import LIF, LIFReset
from lava.proc.prodneuron.process import ProdNeuron
from lava.proc.sparse.process import DelaySparse, Sparse
from lava.utils.weightutils import SignMode

from lava_spikeformer.graph import Graph, fixed

GRANULARITY = "loihi"
GRADED_BITS = 24      # Loihi 2's graded-spike payload; lava's CPU models only test num_message_bits > 0
MAX_DELAY = 62        # per DelaySparse; longer delays chain through relays (lava hangs on delays > 63)
#: Processes at the network's boundary that are not lava.proc stock processes' compute: the frame and
#: data-valid sources, and the shared-memory recorders that read outputs.
BOUNDARY = ("lava.proc.io.source.PySendModelFixed", "lava_spikeformer.lava.processes.models.PyRecorderModelFixed")


# ---------------------------------------------------------------------------- weights for lava-nc
def synapse_kwargs(m: sp.spmatrix, e: int) -> dict:
    """``Sparse`` kwargs computing ``floor(m @ x * 2**e)`` exactly for int8 mantissas ``m``.

    lava-nc's bit-accurate models clip weights to 8 bits and, in MIXED sign mode, zero the LSB (an
    all-negative matrix is clipped to -255 instead): storing ``2m`` with ``weight_exp = e - 1`` in
    MIXED mode keeps every int8 mantissa exact, as ``(sum 2m x) >> (1 - e) == floor(sum m x * 2**e)``.
    """
    m = sp.csr_matrix(m, dtype=np.int64)
    if m.nnz and (m.data.min() < -128 or m.data.max() > 127):
        raise ValueError(f"synapse mantissas must be int8, got [{m.data.min()}, {m.data.max()}]")
    return dict(weights=(2 * m).astype(np.int32), weight_exp=int(e) - 1, sign_mode=SignMode.MIXED)


def conv_matrix(w: np.ndarray, in_shape: Sequence[int], stride: int, padding: int, groups: int) -> sp.csr_matrix:
    """torch's conv2d (weight ``[Co, Ci/groups, kh, kw]``, cross-correlation) as a sparse
    ``(Co*Ho*Wo, C*H*W)`` matrix on C-major flattened maps; zero weights are left out.

    Built in CSR order, ``[Co, Ho*Wo, Ci/groups, kh*kw]``, from the small table of which kernel taps
    fall inside the map at each output position: small28's 25 convs hold 89 M entries, and a
    6-D index grid over all of them took 3x as long."""
    co_n, cig, kh, kw = w.shape
    c, h, wd = in_shape
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    oy, ox, dy, dx = np.meshgrid(*map(np.arange, (ho, wo, kh, kw)), indexing="ij")
    iy, ix = oy * stride - padding + dy, ox * stride - padding + dx
    inside = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)).reshape(ho * wo, kh * kw)
    in_pos = (iy * wd + ix).reshape(ho * wo, kh * kw)
    ci = np.arange(co_n)[:, None] // (co_n // groups) * cig + np.arange(cig)              # [Co, Ci/groups]
    weight = w.reshape(co_n, 1, cig, kh * kw)
    keep = inside[None, :, None, :] & (weight != 0)
    indices = np.broadcast_to(ci[:, None, :, None] * (h * wd) + in_pos[None, :, None, :], keep.shape)[keep]
    indptr = np.concatenate([[0], np.cumsum(keep.reshape(co_n * ho * wo, -1).sum(1))])
    return sp.csr_matrix((np.broadcast_to(weight, keep.shape)[keep], indices, indptr), shape=(co_n * ho * wo, c * h * wd))


def gather(index: np.ndarray, n_src: int, value=1) -> sp.csr_matrix:
    """``(len(index), n_src)``: row r reads source ``index[r]`` (copy / fan-out), times ``value``."""
    index = np.asarray(index).ravel()
    values = np.broadcast_to(np.asarray(value, np.int64), index.shape)
    return sp.csr_matrix((values, (np.arange(index.size), index)), shape=(index.size, n_src))


def split_rows(matrix: sp.csr_matrix, label: np.ndarray) -> Dict[int, sp.csr_matrix]:
    """``{l: matrix with only the rows labelled l}`` (same shape): one process per weight exponent."""
    matrix, label = sp.csr_matrix(matrix), np.asarray(label)
    counts = np.diff(matrix.indptr)
    parts = {}
    for value in np.unique(label):
        rows = label == value
        entries = np.repeat(rows, counts)
        indptr = np.concatenate([[0], np.cumsum(np.where(rows, counts, 0))])
        parts[int(value)] = sp.csr_matrix((matrix.data[entries], matrix.indices[entries], indptr), shape=matrix.shape)
    return parts


# ---------------------------------------------------------------------------- the plan
@dataclass
class Neurons:
    """One neuron process: ``kind`` 'lif' (LIF), 'relay' (GradedVec, vth=0) or 'prod' (ProdNeuron,
    vth=0), of ``size``; ``arrival``: for a stateful LIF, the step at which it integrates timestep 0
    (its state is reset there, and every T steps after)."""
    node: str
    kind: str
    size: int
    params: dict = field(default_factory=dict)
    arrival: Optional[int] = None


@dataclass
class Synapses:
    """One ``Sparse`` (``delay`` 0) or ``DelaySparse``: ``floor(matrix @ src * 2**exp)`` per sample into
    ``dst``'s ``port``; ``graded``: the source carries graded values (else binary spikes)."""
    node: str
    src: int
    dst: int
    port: str
    matrix: sp.csr_matrix
    exp: int
    graded: bool
    delay: int


@dataclass(frozen=True)
class Signal:
    """A neuron population's output: timestep 0 leaves it at step ``arrival``."""
    unit: int
    arrival: int
    spikes: bool
    size: int


@dataclass(frozen=True)
class Term:
    """``floor(matrix @ src * 2**exp)``: one synaptic contribution to a graded value, charged to
    graph ``node`` wherever it is wired."""
    src: Signal
    matrix: sp.csr_matrix
    exp: int
    node: str


@dataclass(frozen=True)
class Sum:
    """A graded value of graph ``node`` not held by any neuron: the sum of its terms, delivered
    wherever it is consumed."""
    terms: Tuple[Term, ...]
    node: str

    @property
    def arrival(self) -> int:
        return max(t.src.arrival for t in self.terms) + 1


Value = Union[Signal, Sum]


@dataclass
class Plan:
    """The lowered network per sample; ``signals``: the value of every graph node (``Signal`` or
    ``Sum``); ``taps``: a neuron output per probed node; ``input``/``valid``: the relays the boundary feeds."""
    neurons: List[Neurons]
    synapses: List[Synapses]
    signals: Dict[str, Value]
    taps: Dict[str, Signal]
    output: Signal
    input: int
    valid: int

    @property
    def latency(self) -> int:
        return self.output.arrival


class _Lowering:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.neurons: List[Neurons] = []
        self.synapses: List[Synapses] = []
        self.node = graph.input.name
        self._delayed: Dict[Tuple[Signal, int], Signal] = {}

    # -- primitives
    def population(self, kind: str, size: int, **params) -> int:
        self.neurons.append(Neurons(self.node, kind, int(size), params))
        return len(self.neurons) - 1

    def lif(self, size: int, threshold: float, tau: float, arrival: int) -> int:
        """A graph LIF integrating timestep 0 at step ``arrival``: lava's LIF with current = this
        step's input (du=4095) and the ``>=`` bias."""
        dv = fixed.dv(tau)
        if dv < 1:
            raise ValueError(f"node {self.node!r}: tau={tau} gives dv=0; the LIF bias would never decay")
        unit = self.population("lif", size, du=4095, dv=dv, vth=fixed.v_threshold(threshold, tau),
                               bias_mant=fixed.LIF_BIAS, bias_exp=0)
        self.neurons[unit].arrival = int(arrival)
        return unit

    def coincidence(self, size: int) -> int:
        """Memoryless AND of two binary inputs of weight 1: ``64 * (a + b) > 64`` iff both
        (du=4095 clears u; dv=4095 leaves ``v >> 12`` = 0 of any v < 4096)."""
        return self.population("lif", size, du=4095, dv=4095, vth=1)

    def connect(self, src: Signal, matrix, exp: int, dst: int, port: str, at: int, node: str = "") -> None:
        """Synapses (charged to ``node``, default the current one) from ``src`` into ``dst.port``
        delivering timestep 0 at step ``at``."""
        matrix = sp.csr_matrix(matrix, dtype=np.int64)
        matrix.eliminate_zeros()
        if not matrix.nnz:
            return
        if at <= src.arrival:
            raise AssertionError(f"node {self.node!r}: a synapse cannot deliver at step {at} "
                                 f"a signal that arrives at {src.arrival}")
        while at - src.arrival - 1 > MAX_DELAY:
            src = self.delayed(src, src.arrival + MAX_DELAY + 1)
        self.synapses.append(Synapses(node or self.node, src.unit, dst, port, matrix, int(exp), not src.spikes,
                                      at - src.arrival - 1))

    def delayed(self, src: Signal, arrival: int) -> Signal:
        """``src`` re-emitted by a relay at ``arrival`` (one per (signal, step), shared by its users)."""
        key = (src, arrival)
        if key not in self._delayed:
            relay = self.population("relay", src.size)
            self.connect(src, sp.identity(src.size, np.int64), 0, relay, "a_in", arrival)
            self._delayed[key] = Signal(relay, arrival, src.spikes, src.size)
        return self._delayed[key]

    def terms(self, value: Value) -> Tuple[Term, ...]:
        if isinstance(value, Sum):
            return value.terms
        return (Term(value, sp.identity(value.size, np.int64, format="csr"), 0, self.node),)

    def feed(self, value: Value, dst: int, port: str, at: Optional[int] = None) -> int:
        """Wires ``value``'s terms into ``dst.port``, at step ``at`` (default: as early as possible)."""
        terms = self.terms(value)
        at = max(t.src.arrival for t in terms) + 1 if at is None else at
        for t in terms:
            self.connect(t.src, t.matrix, t.exp, dst, port, at, t.node)
        return at

    def signal(self, value: Value) -> Signal:
        """``value`` held by neurons: a ``Sum`` is materialized in a relay (no latency)."""
        if isinstance(value, Signal):
            return value
        relay = self.population("relay", value.terms[0].matrix.shape[0])
        self.neurons[relay].node = value.node
        return Signal(relay, self.feed(value, relay, "a_in"), False, self.neurons[relay].size)


# ---------------------------------------------------------------------------- ops
def _synapse(lo: _Lowering, node, x: Value, spike_input: bool, valid: Signal) -> Sum:
    """conv / dense: one term per weight-exponent group, plus the bias from the data-valid line."""
    x = lo.signal(x)
    ints = fixed.node_integers(node)
    mantissa, exponent = ints["weight_mant"], ints["weight_exp"]
    shift = exponent - fixed.FRAC_BITS if spike_input else exponent
    if node.op == "conv":
        a = node.attrs
        in_shape = lo.graph.by_name[node.inputs[0]].shape
        matrix = conv_matrix(mantissa, in_shape, int(a["stride"]), int(a["padding"]), int(a["groups"]))
    else:
        matrix = sp.csr_matrix(mantissa.reshape(len(mantissa), -1))
    per_channel = matrix.shape[0] // len(mantissa)
    terms = [Term(x, part, -s, node.name) for s, part in split_rows(matrix, np.repeat(shift, per_channel)).items()]
    if "bias_mant" in ints:
        bias, k = ints["bias_mant"], ints["bias_exp"]
        column = sp.csr_matrix(np.repeat(bias, per_channel).reshape(-1, 1))
        terms += [Term(valid, part, kk, node.name)
                  for kk, part in split_rows(column, np.repeat(k, per_channel)).items() if part.nnz]
    return Sum(tuple(terms), node.name)


def _mean(lo: _Lowering, node, x: Value) -> Sum:
    """``floor(sum * m * 2**-k)`` per channel: one pooling synapse of weight ``m``."""
    c, h, w = lo.graph.by_name[node.inputs[0]].shape
    m, k = fixed.mean_reciprocal(h * w)
    pool = sp.kron(sp.identity(c, dtype=np.int64), np.full((1, h * w), m, np.int64)).tocsr()
    return Sum((Term(lo.signal(x), pool, -k, node.name),), node.name)


def _sdsa3(lo: _Lowering, node, q: Signal, k: Signal, v: Signal) -> Signal:
    """SDSA-3/4, per head h, token n, channels i, j (d = C/heads), from binary spikes:
    AND(k[n,i], v[n,j]) -> Sparse sum over n -> relay M[h,i,j] -> fan-out -> ProdNeuron q[n,i]*M[h,i,j]
    -> Sparse sum over i with the head's scale (one process per scale exponent) -> attention LIF.
    Neurons 2*H*N*d^2 + H*d^2 (+ the C*N attention LIF), synapses 6*H*N*d^2; latency 4."""
    c, h_, w_ = node.shape
    heads, n_tok = int(node.attrs["heads"]), h_ * w_
    d = c // heads
    h, n, i, j = (a.ravel() for a in np.meshgrid(*map(np.arange, (heads, n_tok, d, d)), indexing="ij"))
    units, n_in, n_m = h.size, c * n_tok, heads * d * d
    qk_idx, v_idx, m_idx = (h * d + i) * n_tok + n, (h * d + j) * n_tok + n, (h * d + i) * d + j
    both = lo.coincidence(units)
    at = max(k.arrival, v.arrival) + 1
    lo.connect(k, gather(qk_idx, n_in), 0, both, "a_in", at)
    lo.connect(v, gather(v_idx, n_in), 0, both, "a_in", at)
    m = lo.population("relay", n_m)
    lo.connect(Signal(both, at, True, units), gather(m_idx, n_m).T, 0, m, "a_in", at + 1)
    prod = lo.population("prod", units, vth=0)
    at_prod = max(at + 2, q.arrival + 1)
    lo.connect(Signal(m, at + 1, False, n_m), gather(m_idx, n_m), 0, prod, "a_in2", at_prod)
    lo.connect(q, gather(qk_idx, n_in), 0, prod, "a_in1", at_prod)
    att = lo.lif(n_in, node.attrs["threshold"], node.attrs["tau"], at_prod + 1)
    ints = fixed.node_integers(node)
    scale, exp = ints["scale_mant"], ints["scale_exp"]
    products = Signal(prod, at_prod, False, units)
    for e in np.unique(exp):
        weight = np.where(exp[h] == e, scale[h], 0)
        lo.connect(products, sp.csr_matrix((weight, ((h * d + j) * n_tok + n, np.arange(units))), (n_in, units)),
                   int(e), att, "a_in", at_prod + 1)
    return Signal(att, at_prod + 1, True, n_in)


def _hadamard(lo: _Lowering, node, counted: Sequence[Signal], gated: Signal) -> Signal:
    """SDSA-1 (``counted`` = k, v; ``gated`` = q) and SDSA-2 (``counted`` = q; ``gated`` = v):
    the channel LIF integrates 64 * sum over tokens of ``counted`` (AND of k and v for SDSA-1), and
    the output is ``gated`` AND the channel's spike. Neurons (N*C if SDSA-1) + C + N*C, synapses
    (2*N*C if SDSA-1) + N*C (sum) + 2*N*C (gate, fan-out); latency 3 (SDSA-1) / 2 (SDSA-2)."""
    c, h_, w_ = node.shape
    size = c * h_ * w_
    eye = sp.identity(size, np.int64, format="csr")
    if len(counted) == 2:
        both = lo.coincidence(size)
        at = max(s.arrival for s in counted) + 1
        for s in counted:
            lo.connect(s, eye, 0, both, "a_in", at)
        counted = Signal(both, at, True, size)
    else:
        counted = counted[0]
    channel = np.arange(size) // (h_ * w_)
    gate = lo.lif(c, node.attrs["threshold"], node.attrs["tau"], counted.arrival + 1)
    lo.connect(counted, gather(channel, c).T, fixed.FRAC_BITS, gate, "a_in", counted.arrival + 1)
    out = lo.coincidence(size)
    at = max(counted.arrival + 2, gated.arrival + 1)
    lo.connect(Signal(gate, counted.arrival + 1, True, c), gather(channel, c), 0, out, "a_in", at)
    lo.connect(gated, eye, 0, out, "a_in", at)
    return Signal(out, at, True, size)


def lower(graph: Graph, probes: Sequence[str] = ()) -> Plan:
    """The stock-process network of ``graph`` per sample, with a neuron output for each probe."""
    unknown = set(probes) - set(graph.by_name)
    if unknown:
        raise ValueError(f"probes: no node named {sorted(unknown)}")
    lo = _Lowering(graph)
    size = int(np.prod(graph.input.shape))
    inp = lo.population("relay", size)
    valid_unit = lo.population("relay", 1)
    valid = Signal(valid_unit, 0, True, 1)
    users: Dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            users[name] = users.get(name, 0) + 1
    spike_inputs = graph.spike_inputs()
    values: Dict[str, Value] = {graph.input.name: Signal(inp, 0, False, size)}
    for node in graph.nodes[1:]:
        lo.node = node.name
        ins = [values[i] for i in node.inputs]
        if node.op in ("conv", "dense"):
            value = _synapse(lo, node, ins[0], spike_inputs[node.name], valid)
        elif node.op == "lif":
            at = max(t.src.arrival for t in lo.terms(ins[0])) + 1
            unit = lo.lif(int(np.prod(node.shape)), node.attrs["threshold"], node.attrs["tau"], at)
            value = Signal(unit, lo.feed(ins[0], unit, "a_in", at), True, lo.neurons[unit].size)
        elif node.op == "sdsa":
            variant, spikes = int(node.attrs["variant"]), [lo.signal(x) for x in ins]
            if variant >= 3:
                value = _sdsa3(lo, node, *spikes)
            elif variant == 2:
                value = _hadamard(lo, node, spikes[:1], spikes[1])           # SN(sum_n q) AND v
            else:
                value = _hadamard(lo, node, spikes[1:], spikes[0])           # q AND SN(sum_n k AND v)
        elif node.op == "add":
            value = Sum(tuple(t for x in ins for t in lo.terms(x)), node.name)
        elif node.op == "mean":
            value = _mean(lo, node, ins[0])
        elif node.op == "delay":
            value = ins[0]
        else:
            raise ValueError(f"node {node.name!r}: op {node.op!r} has no stock lowering")
        if isinstance(value, Sum) and (users.get(node.name, 0) > 1 or node.name == graph.output):
            value = lo.signal(value)
        values[node.name] = value
    taps = {}
    for name in probes:
        lo.node = f"<probe {name}>"
        taps[name] = lo.signal(values[name])        # a Sum is tapped by its own copy of the synapses
    return Plan(lo.neurons, lo.synapses, values, taps, values[graph.output], inp, valid_unit)


_PROCESS = {"lif": "LIF", "relay": "GradedVec", "prod": "ProdNeuron"}


def cost(graph: Graph, plan: Optional[Plan] = None) -> Dict[str, dict]:
    """Per graph node, per sample: stock ``processes`` by lava.proc class, ``neurons``, ``synapses``
    (non-zero weights), ``graded_synapse_processes`` (num_message_bits 24; the rest carry spikes),
    ``max_delay`` and the ``latency`` it adds (steps from its latest input to its own output); SDSA
    nodes also give ``extra_neurons``/``extra_synapses``, what the lowering adds to the attention's
    own C*N neurons. The input node carries the input and data-valid relays."""
    plan = plan or lower(graph)
    out = {n.name: dict(processes={}, neurons=0, synapses=0, graded_synapse_processes=0, max_delay=0, latency=0)
           for n in graph.nodes}

    def count(entry, kind):
        entry["processes"][kind] = entry["processes"].get(kind, 0) + 1

    for unit in plan.neurons:
        count(out[unit.node], _PROCESS[unit.kind])
        out[unit.node]["neurons"] += unit.size
    for syn in plan.synapses:
        entry = out[syn.node]
        count(entry, "DelaySparse" if syn.delay else "Sparse")
        entry["synapses"] += syn.matrix.nnz
        entry["graded_synapse_processes"] += int(syn.graded)
        entry["max_delay"] = max(entry["max_delay"], syn.delay)
    for node in graph.nodes[1:]:
        entry = out[node.name]
        entry["latency"] = plan.signals[node.name].arrival - max(plan.signals[i].arrival for i in node.inputs)
        if node.op == "sdsa":
            entry["extra_neurons"] = entry["neurons"] - int(np.prod(node.shape))
            entry["extra_synapses"] = entry["synapses"]
    return out


# ---------------------------------------------------------------------------- Lava processes
@dataclass
class StockNetwork:
    """A ``Plan`` built for samples of ``timesteps`` steps streamed one after another. Feed ``inp``
    (the input size, graded frames in units of 1/64: sample b's timestep t at step ``b*T + t``) and
    ``valid`` (``(1,)``: 1 while the input carries timesteps); ``out`` and ``probes`` are flat ports
    (a node's size) whose sample b, timestep t leaves at step ``b*T + t + arrival[node]``."""
    plan: Plan
    timesteps: int
    processes: List[AbstractProcess]
    inp: InPort
    valid: InPort
    out: OutPort
    probes: Dict[str, OutPort]
    arrival: Dict[str, int]

    @property
    def latency(self) -> int:
        """L: the logits of timestep t leave ``out`` at step t + L."""
        return self.plan.latency


def _neuron_process(unit: Neurons, timesteps: int) -> AbstractProcess:
    shape = (unit.size,)
    if unit.kind == "lif" and unit.arrival is not None:
        # lava counts time_step from 1: the sample boundary passes this population at time_step arrival + 1 (mod T)
        return LIFReset(shape=shape, reset_interval=timesteps, reset_offset=(unit.arrival + 1) % timesteps,
                        **unit.params)
    if unit.kind == "lif":
        return LIF(shape=shape, **unit.params)
    if unit.kind == "prod":
        return ProdNeuron(shape=shape, **unit.params)
    return GradedVec(shape=shape, vth=0)          # lava's default vth=1 would drop +-1


def _synapse_process(matrix: sp.csr_matrix, exp: int, graded: bool, delay: int) -> AbstractProcess:
    kwargs = synapse_kwargs(matrix, exp)
    kwargs["num_message_bits"] = GRADED_BITS if graded else 0
    if not delay:
        return Sparse(**kwargs)
    w = kwargs["weights"]
    # DelaySparse wants int64 delays with the weights' sparsity (it rejects int32)
    return DelaySparse(delays=sp.csr_matrix((np.full(w.nnz, delay, np.int64), w.indices, w.indptr), w.shape),
                       **kwargs)


def build_stock(graph: Graph, timesteps: Optional[int] = None, probes: Sequence[str] = ()) -> StockNetwork:
    """``graph`` as stock lava.proc processes streaming samples of ``timesteps`` (default the
    graph's T) steps one after another (see module doc)."""
    timesteps = graph.timesteps if timesteps is None else timesteps
    if int(timesteps) != timesteps or timesteps < 1:
        raise ValueError(f"timesteps must be an int >= 1, got {timesteps!r}")
    plan = lower(graph, probes)
    neurons = [_neuron_process(unit, int(timesteps)) for unit in plan.neurons]
    synapses = []
    for syn in plan.synapses:
        proc = _synapse_process(syn.matrix, syn.exp, syn.graded, syn.delay)
        neurons[syn.src].s_out.connect(proc.s_in)
        proc.a_out.connect(getattr(neurons[syn.dst], syn.port))
        synapses.append(proc)
    return StockNetwork(plan, int(timesteps), neurons + synapses, neurons[plan.input].a_in, neurons[plan.valid].a_in,
                        neurons[plan.output.unit].s_out, {name: neurons[s.unit].s_out for name, s in plan.taps.items()},
                        {graph.output: plan.latency, **{name: s.arrival for name, s in plan.taps.items()}})
