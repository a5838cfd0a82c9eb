"""Loihi 2 fit report of an export graph: what each layer costs on neuro-cores and which limits it breaks.

Mapping counted: the fine-grained Lava graph of ``lava/processes/network.py`` (``granularity='fine'``), one
population of compartments per graph node plus the delay lines the loader puts on skip paths
(one per delayed (source, lag)). Each population holds its output:

* ``conv``/``dense``: dendritic accumulators that receive the weighted synapses and send the sum on
  as a graded message; ``lif``/``sdsa``: spiking neurons; ``add``/``mean``/``delay``: graded
  relays fed by 1:1 (``add``, ``delay``, ``lif``) or pooling (``mean``) connections; ``input``:
  the frame, as netx's input layer (a neuron population that takes cores too).
* A delay line is one relay population whose 1:1 output synapses carry the delay (Loihi 2
  synaptic delays, at most 62 steps in netx).
* A compiler that lands each synapse layer directly on its consumer (as netx does for Dense→LIF)
  saves the ``conv``/``dense`` compartments and the 1:1 synapses behind them: this report is the
  cost of the graph as Lava runs it, an upper bound for that fused mapping.

Counts per row (all per timestep, per sample):

* ``neurons``: compartments (the node's output size; a delay line: its source's size).
* ``synapses``: connections into the population, expanded — for ``conv`` every (output neuron,
  input neuron) pair joined by a nonzero 8-bit mantissa, padding taps excluded:
  ``sum_o sum_(c,kh,kw: m != 0) rows(kh) * cols(kw)`` with ``rows(kh)`` the output rows whose tap
  ``kh`` lands inside the input; ``dense``: nonzero mantissas; 1:1 and pooling: one per input
  neuron. ``unique_weights``: nonzero mantissas in the weight tensor (what a shared-weight
  convolution encoding stores). ``sdsa``: none — it multiplies signals (``products``).
* ``fan_in`` / ``fan_out``: the largest number of connections into / out of one neuron (for
  ``sdsa``: the input values one output depends on / one input reaches).
* ``weight_bits``: signed bits of the largest mantissa, with the per-output-channel exponents of
  ``export.fixed.quantize_weight``.
* ``state_bits`` / ``message_bits``: signed bits of a worst-case bound, by interval arithmetic in
  ``graph.fixed``'s integer units (2**-6) from ``|input| <= input_abs_max``: the LIF membrane is
  bounded by ``|x| * 4096 / dv`` (leak ``dv``); spikes are 1-bit messages.
* ``cores``: the largest of three per-core bounds — neurons / 4096, stored synapses / (12000
  SynMem words x 4 synapses per word), source neurons / 16384 input axons — and at least one core
  per population (in lava-dl's netx printouts a 1-neuron layer has a core of its own). A ``conv``
  stores its kernels, not its connections (``unique_weights``, split over cores by output
  channel), as the Loihi 2 convolution layers of those printouts do (PilotNet: 81-2880 SynMem
  words per conv core); every other connection is stored. ``cores_expanded`` stores every conv
  connection too: the bound for a mapping without shared kernels.

Limits checked (``Violation.kind``): ``fan_in`` above the input axons of a core; ``message_bits``,
``state_bits`` above 24; ``synaptic_delay`` above 62; ``threshold_bits`` above 17;
``per_channel_exponent`` (Lava's Dense/Sparse have one ``weight_exp``: such a layer deploys as one
process per exponent group); ``two_signal_product`` (SDSA); ``chip_cores`` above 120 cores. Biases
and the mean's ``1/(H*W)`` are 8-bit synaptic weights by the definition of the integer network
(``graph/fixed.py``), so they break no limit. The per-core and per-chip numbers are those of DESIGN.md §8;
``LIMITS`` marks which are estimates (read off compiler printouts and secondary sources, not an
Intel datasheet).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..fileio import atomic_write
from ..graph import Graph, Node, fixed


class Limit(NamedTuple):
    value: int
    source: str
    estimate: bool


LIMITS: Dict[str, Limit] = {
    "neurons_per_core": Limit(4096, "CUBA neurons per core, lava-dl netx tutorial compiler printouts", True),
    "axons_per_core": Limit(16384, "input axons per core (~16k), netx tutorial printouts", True),
    "synmem_words_per_core": Limit(12000, "SynMem register budget in lava-dl's netx tutorials", True),
    "synapses_per_word": Limit(4, "8-bit synapses per SynMem word (PilotNet: 50x10 -> 150 words)", True),
    "cores_per_chip": Limit(120, "cores lava-nc maps per chip (NUM_VIRTUAL_CORES_L3; 128 physical)", False),
    "state_bits": Limit(24, "u, v registers of Lava's bit-accurate LIF", False),
    "message_bits": Limit(24, "graded spike payload in Lava's models", False),
    "synaptic_delay": Limit(62, "largest synaptic delay netx writes", False),
    "threshold_bits": Limit(17, "vth of Lava's bit-accurate LIF", False),
}


def synapses_per_core() -> int:
    return LIMITS["synmem_words_per_core"].value * LIMITS["synapses_per_word"].value


@dataclass
class LayerFit:
    name: str
    op: str
    inputs: Tuple[str, ...]
    neurons: int
    synapses: int
    unique_weights: int
    fan_in: int
    fan_out: int
    weight_bits: int                    # 0: no weights
    weight_exponents: List[int]         # distinct per-output-channel exponents
    state_bits: int
    message_bits: int
    products: int                       # products of two time-varying signals per step (sdsa)
    delay_steps: int                    # delay lines only
    cores: int
    binding: str                        # which per-core bound sets ``cores``
    cores_expanded: int                 # every conv connection stored, not its kernels


@dataclass
class Violation:
    layer: str
    kind: str
    value: int
    limit: Optional[int]                # None: a capability Loihi 2 lacks rather than a number
    estimate: bool                      # the limit is an estimate
    message: str


@dataclass
class LoihiReport:
    layers: List[LayerFit]
    violations: List[Violation]
    timesteps: int
    input_abs_max: float
    totals: Dict[str, int] = field(init=False)

    def __post_init__(self):
        per_chip = LIMITS["cores_per_chip"].value
        cores = sum(l.cores for l in self.layers)
        cores_expanded = sum(l.cores_expanded for l in self.layers)
        self.totals = {
            "neurons": sum(l.neurons for l in self.layers),
            "synapses": sum(l.synapses for l in self.layers),
            "unique_weights": sum(l.unique_weights for l in self.layers),
            "products": sum(l.products for l in self.layers),
            "cores": cores,
            "chips": max(1, math.ceil(cores / per_chip)),
            "cores_expanded": cores_expanded,
            "chips_expanded": max(1, math.ceil(cores_expanded / per_chip)),
        }

    @property
    def by_name(self) -> Dict[str, LayerFit]:
        return {l.name: l for l in self.layers}

    def to_dict(self) -> dict:
        return {"timesteps": self.timesteps, "input_abs_max": self.input_abs_max, "totals": self.totals,
                "limits": {k: l._asdict() for k, l in LIMITS.items()},
                "layers": [asdict(l) for l in self.layers], "violations": [asdict(v) for v in self.violations]}

    def save_json(self, path) -> None:
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))

    def table(self) -> str:
        lines = [f"{'layer':44s} {'op':5s} {'neurons':>8s} {'synapses':>10s} {'uniq w':>7s} {'fan-in':>7s} "
                 f"{'fan-out':>7s} {'weight':>10s} {'state':>5s} {'msg':>3s} {'cores':>5s} {'expanded':>8s}  set by"]
        for l in self.layers:
            exps = l.weight_exponents
            weight = f"{l.weight_bits}b e{min(exps)}..{max(exps)}" if exps else "-"
            lines.append(f"{l.name:44s} {l.op:5s} {l.neurons:8,d} {l.synapses:10,d} {l.unique_weights:7,d} "
                         f"{l.fan_in:7,d} {l.fan_out:7,d} {weight:>10s} {l.state_bits:5d} {l.message_bits:3d} "
                         f"{l.cores:5d} {l.cores_expanded:8d}  {l.binding}")
        t = self.totals
        lines.append(f"{'total':44s} {'':5s} {t['neurons']:8,d} {t['synapses']:10,d} {t['unique_weights']:7,d} "
                     f"{'':7s} {'':7s} {'':10s} {'':5s} {'':3s} {t['cores']:5d} {t['cores_expanded']:8d}  "
                     f"-> {t['chips']} chip(s) ({t['chips_expanded']} expanded), estimate")
        lines.append(f"{len(self.violations)} Loihi 2 limit(s) broken "
                     f"(bit widths: worst case for |input| <= {self.input_abs_max:g}):")
        lines += [f"  {v.layer}: [{v.kind}] {v.message}" for v in self.violations]
        lines.append("limits used (* estimate): " + ", ".join(
            f"{k}={l.value}{'*' if l.estimate else ''}" for k, l in LIMITS.items()))
        return "\n".join(lines)

    def plot(self, path) -> None:
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is

        fig = Figure(figsize=(max(8, 0.2 * len(self.layers)), 7))
        ax_c, ax_n = fig.subplots(2, 1, sharex=True)
        x = range(len(self.layers))
        broken = {v.layer for v in self.violations}
        ax_c.bar(x, [l.cores for l in self.layers],
                 color=["tab:red" if l.name in broken else "tab:blue" for l in self.layers])
        ax_c.set(ylabel="cores (estimate)", title=f"Loihi 2 fit: {self.totals['cores']} cores, "
                 f"{self.totals['chips']} chip(s) (red: layer breaks a limit)")
        ax_n.bar(x, [l.neurons for l in self.layers], color="tab:green")
        ax_n.set(ylabel="neurons", yscale="log")
        ax_n.set_xticks(list(x))
        ax_n.set_xticklabels([l.name for l in self.layers], rotation=90, fontsize=6)
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))

    def save(self, out_dir) -> List[Path]:
        """``loihi.txt`` (the table), ``loihi.json``, ``loihi.png`` in ``out_dir``."""
        out = Path(out_dir)
        paths = [out / "loihi.txt", out / "loihi.json", out / "loihi.png"]
        atomic_write(paths[0], lambda tmp: Path(tmp).write_text(self.table() + "\n"))
        self.save_json(paths[1])
        self.plot(paths[2])
        return paths


# ---------------------------------------------------------------------------- counting
def signed_bits(bound: int) -> int:
    """Bits of a two's-complement integer holding every value in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def deployed_nodes(graph: Graph) -> List[Node]:
    """The graph's nodes with a ``delay`` node on every input that arrives before the node's
    latest one (as ``lava/processes/network.py`` aligns them), one per (source, lag)."""
    arrival = graph.arrival()
    shapes = {n.name: tuple(n.shape) for n in graph.nodes}
    nodes, delays = [], {}
    for node in graph.nodes:
        start = max((arrival[i] for i in node.inputs), default=0)
        inputs = []
        for source in node.inputs:
            lag = start - arrival[source]
            if lag:
                if (source, lag) not in delays:
                    delays[source, lag] = Node(f"{source}.delay{lag}", "delay", (source,), shapes[source],
                                               attrs={"steps": lag})
                    nodes.append(delays[source, lag])
                source = delays[source, lag].name
            inputs.append(source)
        nodes.append(replace(node, inputs=tuple(inputs)))
    return nodes


def _tap_maps(n_in: int, n_out: int, k: int, stride: int, padding: int):
    """For one spatial axis: ``inside[o, t]`` 1 where tap t of output o lands in the input;
    ``reach[i, t]`` how many outputs reach input i through tap t."""
    inside = np.zeros((n_out, k), dtype=np.int64)
    reach = np.zeros((n_in, k), dtype=np.int64)
    for o in range(n_out):
        for t in range(k):
            i = o * stride - padding + t
            if 0 <= i < n_in:
                inside[o, t] = 1
                reach[i, t] += 1
    return inside, reach


def _conv_connections(node: Node, in_shape, mask: np.ndarray):
    """``(fan_in[O, Ho, Wo], fan_out[C, H, W])`` of a conv's nonzero-weight connections."""
    c, h, w = in_shape
    out_ch, c_group, kh, kw = mask.shape
    groups, stride, padding = int(node.attrs["groups"]), int(node.attrs["stride"]), int(node.attrs["padding"])
    inside_h, reach_h = _tap_maps(h, node.shape[1], kh, stride, padding)
    inside_w, reach_w = _tap_maps(w, node.shape[2], kw, stride, padding)
    fan_in = np.einsum("otu,ht,wu->ohw", mask.sum(1), inside_h, inside_w)
    per_input = mask.reshape(groups, out_ch // groups, c_group, kh, kw).sum(1).reshape(c, kh, kw)
    fan_out = np.einsum("ctu,it,ju->cij", per_input, reach_h, reach_w)
    return fan_in, fan_out


def _sdsa_shape(node: Node):
    """``(fan_in, fan_out per input, spike x spike products, spike x count products, count bound)``;
    N tokens, D channels, Dh = D / heads channels per head."""
    d, n = node.shape[0], int(np.prod(node.shape[1:]))
    variant, dh = int(node.attrs["variant"]), node.shape[0] // int(node.attrs["heads"])
    if variant == 1:        # Q ⊙ LIF(Σ_n K⊙V): K⊙V and the gate are ANDs of spikes
        return 1 + 2 * n, (1, n, n), 2 * d * n, 0, n
    if variant == 2:        # LIF(Σ_n Q) ⊙ V
        return n + 1, (n, 1), d * n, 0, n
    # Q (Kᵀ V) per head: Kᵀ V sums N ANDs into Dh x Dh counts; Q then gates counts
    return dh + dh * n + n, (dh, dh * n, n), d * dh * n, n * d * dh, dh * n


def loihi_report(graph: Graph, *, input_abs_max: Optional[float] = None) -> LoihiReport:
    """Count ``graph`` on Loihi 2 (see the module docstring); ``input_abs_max`` bounds |input|
    (default: normalized Fashion-MNIST) for the worst-case bit widths."""
    if input_abs_max is None:
        input_abs_max = graph.input_spec.abs_max()
    if not input_abs_max > 0 or not math.isfinite(input_abs_max):
        raise ValueError(f"input_abs_max must be a positive number, got {input_abs_max!r}")
    counter = _Counter(graph, input_abs_max)
    rows = [counter.count(node) for node in counter.nodes]
    layers = [_place(node, row, counter.fan_out[node.name]) for node, row in zip(counter.nodes, rows)]
    report = LoihiReport(layers, counter.violations, graph.timesteps, float(input_abs_max))
    chips, per_chip = report.totals["chips"], LIMITS["cores_per_chip"].value
    if chips > 1:
        report.violations.append(Violation(
            "(total)", "chip_cores", report.totals["cores"], per_chip, True,
            f"{report.totals['cores']} cores (estimate) > {per_chip} per chip: needs {chips} chips"))
    return report


def _place(node: Node, row: dict, fan_out: np.ndarray) -> LayerFit:
    """Cores of one population: the largest per-core bound, at least one."""
    axons = row.pop("axons")
    stored = row["unique_weights"] if node.op == "conv" else row["synapses"]
    bounds = {"neurons": math.ceil(row["neurons"] / LIMITS["neurons_per_core"].value),
              "synapses": math.ceil(stored / synapses_per_core()),
              "axons": math.ceil(axons / LIMITS["axons_per_core"].value)}
    binding = max(bounds, key=bounds.get)
    expanded = max(1, bounds[binding], math.ceil(row["synapses"] / synapses_per_core()))
    return LayerFit(node.name, node.op, tuple(node.inputs), fan_out=int(fan_out.max()), cores=max(1, bounds[binding]),
                    binding=binding, cores_expanded=expanded, **row)


class _Counter:
    """Walks the deployed nodes in order, carrying each one's message bound and fan-out."""

    def __init__(self, graph: Graph, input_abs_max: float):
        self.graph, self.input_abs_max = graph, input_abs_max
        self.nodes = deployed_nodes(graph)
        self.by_name = {n.name: n for n in self.nodes}
        self.fan_out = {n.name: np.zeros(n.shape, dtype=np.int64) for n in self.nodes}
        self.bound: Dict[str, int] = {}         # largest |message| in fixed.py's integer units (spikes: 1)
        self.spiking: Dict[str, bool] = {}
        self.violations: List[Violation] = []
        self.by_role = {"input": self._input, "synapse": self._synapse, "attention": self._sdsa,
                        "neuron": self._relay, "sum": self._relay, "delay": self._relay, "pool": self._relay}
        self.emits_spikes = graph.emits_spikes()

    def broken(self, layer: str, kind: str, value: int, message: str, limit_key: Optional[str] = None) -> None:
        limit = LIMITS[limit_key] if limit_key else None
        self.violations.append(Violation(layer, kind, int(value), limit.value if limit else None,
                                         limit.estimate if limit else False, message))

    def count(self, node: Node) -> dict:
        """The row of ``node`` without its cores; checks the limits that depend on it alone."""
        sources = [self.by_name[i] for i in node.inputs]
        role = node.spec.role
        self.spiking[node.name] = (self.spiking[node.inputs[0]] if role == "delay"
                                   else self.emits_spikes.get(node.name, node.spec.output == "spikes"))
        row = dict(neurons=int(np.prod(node.shape)), synapses=0, unique_weights=0, fan_in=0, weight_bits=0,
                   weight_exponents=[], products=0, delay_steps=0,
                   axons=sum(int(np.prod(s.shape)) for s in {s.name: s for s in sources}.values()))
        state = self.by_role[role](node, sources, row)       # membrane bound of lif/sdsa, else None
        bound = self.bound[node.name]
        row["message_bits"] = 1 if self.spiking[node.name] else signed_bits(bound)
        row["state_bits"] = signed_bits(bound if state is None else state)
        if row["message_bits"] > LIMITS["message_bits"].value:
            self.broken(node.name, "message_bits", row["message_bits"],
                        f"graded messages need {row['message_bits']} bits (|value| <= {bound:,d} x 2**-6); "
                        f"graded spikes carry {LIMITS['message_bits'].value}", "message_bits")
        if state is not None and row["state_bits"] > LIMITS["state_bits"].value:   # relays: see message_bits
            self.broken(node.name, "state_bits", row["state_bits"],
                        f"state needs {row['state_bits']} bits; Loihi's u/v registers hold "
                        f"{LIMITS['state_bits'].value}", "state_bits")
        if row["fan_in"] > LIMITS["axons_per_core"].value:
            self.broken(node.name, "fan_in", row["fan_in"],
                        f"a neuron has {row['fan_in']:,d} inputs; a core receives at most "
                        f"{LIMITS['axons_per_core'].value:,d} input axons (estimate), and all of a neuron's "
                        f"synapses live in its core", "axons_per_core")
        return row

    def _input(self, node: Node, sources, row: dict) -> None:
        self.bound[node.name] = int(math.ceil(self.input_abs_max * fixed.ONE))

    def _synapse(self, node: Node, sources, row: dict) -> None:
        src = sources[0]
        ints = fixed.node_integers(node)
        mantissa, exponent = ints["weight_mant"], ints["weight_exp"]
        mask = (mantissa != 0).astype(np.int64)
        if mantissa.ndim == 4:                     # a convolution
            fan_in, fan_out = _conv_connections(node, src.shape, mask)
        else:
            fan_in, fan_out = mask.sum(1), mask.sum(0).reshape(src.shape)
        self.fan_out[src.name] += fan_out
        used = mask.reshape(len(mask), -1).any(1)
        row.update(synapses=int(fan_in.sum()), unique_weights=int(mask.sum()), fan_in=int(fan_in.max()),
                   weight_bits=signed_bits(np.abs(mantissa).max()),
                   weight_exponents=sorted({int(e) for e in exponent[used]}))
        self.bound[node.name] = _synapse_bound(node, mantissa, exponent, self.bound[src.name], self.spiking[src.name])
        _check_synapse(node, row["weight_exponents"], self.broken)

    def _sdsa(self, node: Node, sources, row: dict) -> int:
        fan_in, fan_outs, and_products, count_products, counts = _sdsa_shape(node)
        for src, reach in zip(sources, fan_outs):
            self.fan_out[src.name] += reach
        scale = (int(np.abs(np.round(node.params["scale"] * fixed.ONE)).max())
                 if int(node.attrs["variant"]) >= 3 else fixed.ONE)
        row.update(fan_in=fan_in, products=and_products + count_products)
        self.bound[node.name] = 1
        self.broken(node.name, "two_signal_product", row["products"],
                    f"SDSA-{node.attrs['variant']} multiplies time-varying signals: {and_products:,d} spike x spike "
                    f"products per step (coincidence neurons could compute them: that many extra neurons, not "
                    f"counted here) and {count_products:,d} spike x count products, which no Loihi 2 synapse or "
                    f"standard neuron computes (needs a product neuron such as Lava's ProdNeuron, or an embedded "
                    f"core)")
        return _membrane_bound(node, counts * scale, self.graph.timesteps, self.broken)

    def _relay(self, node: Node, sources, row: dict) -> Optional[int]:
        """Neurons, sums, delays, pooling: 1:1 connections from each input, or pooling over positions."""
        role = node.spec.role
        for src in sources:
            self.fan_out[src.name] += 1
        row.update(synapses=sum(int(np.prod(s.shape)) for s in sources),
                   fan_in=int(np.prod(sources[0].shape[1:])) if role == "pool" else len(sources))
        if role == "delay":
            row["delay_steps"] = steps = int(node.attrs["steps"])
            if steps > LIMITS["synaptic_delay"].value:
                self.broken(node.name, "synaptic_delay", steps,
                            f"delay of {steps} steps; synaptic delays stop at {LIMITS['synaptic_delay'].value}",
                            "synaptic_delay")
        if role == "neuron":
            self.bound[node.name] = 1
            return _membrane_bound(node, self.bound[sources[0].name], self.graph.timesteps, self.broken)
        self.bound[node.name] = sum(self.bound[s.name] for s in sources)
        return None


def _synapse_bound(node: Node, mantissa, exponent, in_bound: int, spike_input: bool) -> int:
    """Largest |output| of ``fixed.FixedSynapse``: ``ceil(sum|m| * |x| * 2**-shift) + |bias|``
    (Python integers: no overflow however large the input bound)."""
    shift = exponent - fixed.FRAC_BITS if spike_input else exponent
    acc = [int(a) * in_bound for a in np.abs(mantissa).reshape(len(mantissa), -1).sum(1)]
    out = [-(-a >> int(s)) if s > 0 else a << int(-s) for a, s in zip(acc, shift)]
    bias = fixed.units(fixed.node_integers(node), "bias")
    if bias is not None:
        out = [o + abs(int(b)) for o, b in zip(out, bias)]
    return max(out)


def _check_synapse(node: Node, distinct: List[int], broken) -> None:
    """One weight exponent per process (Lava's Dense/Sparse). Biases are not checked: the integer network
    holds them as 8-bit synaptic weights of an always-on line (``bias_mant << bias_exp``)."""
    if len(distinct) > 1:
        lo, hi = distinct[0], distinct[-1]
        broken(node.name, "per_channel_exponent", len(distinct),
               f"{len(distinct)} weight exponents ({lo}..{hi}) across output channels; Lava's Dense/Conv take "
               f"one weight_exp per process: split it into {len(distinct)} processes or requantize "
               f"(the smallest channels lose up to {hi - lo} bits)")


def _membrane_bound(node: Node, drive: int, timesteps: int, broken) -> int:
    """Largest |v| of ``fixed.lif_step_fixed`` (units of 2**-12) under |x| <= ``drive`` (units of 1/64):
    ``64 * drive * 4096 / dv``; also checks the threshold mantissa's width."""
    tau, threshold = float(node.attrs["tau"]), float(node.attrs["threshold"])
    leak = fixed.dv(tau)
    drive = (drive << fixed.FRAC_BITS) + fixed.LIF_BIAS
    vth = fixed.v_threshold(threshold, tau)
    if vth.bit_length() > LIMITS["threshold_bits"].value:
        broken(node.name, "threshold_bits", vth.bit_length(),
               f"threshold mantissa {vth:,d} needs {vth.bit_length()} bits; vth has "
               f"{LIMITS['threshold_bits'].value}", "threshold_bits")
    # no leak (tau > 8192): the membrane integrates every input of a sample's T steps
    return -(-drive * fixed.DECAY_ONE // leak) if leak > 0 else drive * timesteps
