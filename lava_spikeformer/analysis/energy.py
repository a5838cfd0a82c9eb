"""Firing rates and the energy estimate of the paper's App. B, measured on data, in two views.

    E = E_MAC * FL(first conv)  +  sum_l E_AC * T * R_l * FL_l  (+ SDSA operator terms, Table 6)

* ``FL_l``: multiply-accumulates of synapse layer ``l`` for one image and one timestep
  (conv: ``C_out * H_out * W_out * C_in / groups * k_h * k_w``; dense: ``in * out``).
* ``R_l``: firing rate of the layer's *input* tensor (fraction of non-zero entries over T, batch,
  channels, pixels).
* The first conv sees the real-valued image, repeated over T (direct encoding): computed once,
  counted once as MACs. A later layer whose input is not binary (SEW shortcut's integer counts,
  a SepConv's depthwise output, event-frame counts) is counted as ``E_MAC * T * R * FL``: those
  additions carry multi-bit operands (a graded message is sent only where it is non-zero).
* SDSA operator (Table 6), with N tokens, D channels and ``R_hat`` the summed rates of the spike
  matrices involved (Q, K, V; SDSA-2: Q, V): SDSA-1/2 ``E_AC * T * R_hat * N * D``,
  SDSA-3/4 ``E_AC * T * R_hat * N * D^2``. Q/K/V/output projections are ordinary synapse layers.
* BatchNorm is folded into the synapses and the membrane adds, the spatial mean of the head and
  the neurons' own updates are not counted (as in the paper).

Two views of the same network, the same rules:

* **deployed** (``graph_energy_report``, the default of ``lava-spikeformer energy``): the exported
  graph (``nn.fold.to_graph``), i.e. what runs on Lava. Rates are measured by running the graph in
  the reference simulator (``graph.simulate``, float64 by default) on the data; whether a
  synapse's input is spikes (AC) or graded (MAC) is the graph's own ``Graph.spike_inputs()``.
* **paper** (``energy_report``): the PyTorch training graph, rates from forward hooks on every
  slayer ``Conv``/``Dense`` and SDSA; binary or graded is decided from the values seen. This is the
  convention the paper's App. B applies to its training-time network.

Which layers differ, and why:

* **RepConv** (the SDSA Q/K/V and output projections of the reference layout). In training it is
  ``conv1x1 -> BN (padded with its own zero-input value) -> depthwise 3x3 -> conv1x1 -> BN``: the
  paper view counts the conv1x1 on spikes (AC, ``C*C*HW``) and then the depthwise and pointwise
  convs as MACs at rate ~1.0, because their inputs are BatchNorm outputs (graded and almost never
  zero, the padding included). These MACs are most of small28's paper-view energy (each pointwise
  conv ~3.7 uJ of 38 uJ). The export folds the whole chain into one 3x3 conv on the spikes
  (``nn.fold.fold_repconv``): the deployed view counts ``C*C'*9*HW`` ACs at the input's spike rate
  and no MAC at all. 9x the synaptic operations of the conv1x1, but additions on sparse spikes.
* **KD head**: training has two classifier heads, both counted; the export averages them into one
  dense layer.
* Everything else is the same layer in both views (a SepConv's pointwise conv after its depthwise
  conv stays a MAC on graded input in both: the export keeps them as two convs). Its rates differ
  only where float32 PyTorch and the float64 simulator disagree on a spike near threshold.
* Layer names: module paths in the paper view (``stages.2.1.attn.branch.q.body.conv1x1``), node
  names in the deployed view (``s2.b1.attn.branch.q``); both carry the graph's block
  (``s2.b1.attn``) so ``EnergyViews.by_block()`` puts them side by side.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
import re
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..fileio import atomic_write

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


@dataclass
class LayerEnergy:
    name: str
    kind: str                 # 'conv' | 'dense' | 'sdsa-op'
    flops: int                # MACs per image per timestep
    input_rate: float         # R: fraction of non-zero input entries
    binary_input: bool
    op: str                   # 'MAC' | 'AC'
    energy_pj: float
    block: str = ""           # the export graph's block (``s2.b1.attn``, ``s1.down``, ``head``): the
                              # unit both views share


@dataclass
class EnergyReport:
    timesteps: int
    images: int
    layers: List[LayerEnergy] = field(default_factory=list)
    view: str = "paper"       # 'paper': the PyTorch training graph; 'deployed': the exported graph

    @property
    def total_mj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers) * 1e-9

    @property
    def mean_spike_rate(self) -> float:
        """FLOP-unweighted mean input rate over the spike-driven (binary-input) synapse layers."""
        rates = [l.input_rate for l in self.layers if l.kind != "sdsa-op" and l.binary_input]
        return sum(rates) / len(rates) if rates else 0.0

    def energy_by_op(self) -> Dict[str, float]:
        """``{'AC': pJ, 'MAC': pJ}`` per image."""
        totals = {"AC": 0.0, "MAC": 0.0}
        for layer in self.layers:
            totals[layer.op] += layer.energy_pj
        return totals

    def to_dict(self) -> dict:
        return {"view": self.view, "timesteps": self.timesteps, "images": self.images, "total_mj": self.total_mj,
                "mean_spike_rate": self.mean_spike_rate, "energy_pj_by_op": self.energy_by_op(),
                "layers": [asdict(l) for l in self.layers]}

    def save_json(self, path) -> None:
        """Atomically: an interrupted write leaves the previous file, never half of one."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def table(self) -> str:
        lines = [f"{'layer':44s} {'op':3s} {'MACs/step':>12s} {'rate':>7s} {'energy uJ':>10s}"]
        for l in self.layers:
            lines.append(f"{l.name:44s} {l.op:3s} {l.flops:12,d} {l.input_rate:7.4f} {l.energy_pj * 1e-6:10.3f}")
        what = "exported graph" if self.view == "deployed" else "training graph, paper convention"
        lines.append(f"total {self.total_mj:.4f} mJ per image ({what}; T={self.timesteps}, measured on {self.images} "
                     f"images, mean input spike rate {self.mean_spike_rate:.4f})")
        return "\n".join(lines)

    def plot(self, path) -> None:
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is

        fig = Figure(figsize=(max(8, 0.25 * len(self.layers)), 7))
        ax_e, ax_r = fig.subplots(2, 1, sharex=True)
        x = range(len(self.layers))
        ax_e.bar(x, [l.energy_pj * 1e-6 for l in self.layers],
                 color=["tab:red" if l.op == "MAC" else "tab:blue" for l in self.layers])
        what = "exported graph" if self.view == "deployed" else "training graph (paper)"
        ax_e.set(ylabel="energy per image (uJ)",
                 title=f"App. B energy, {what}: {self.total_mj:.4f} mJ (red: MAC, blue: AC)")
        ax_r.bar(x, [l.input_rate for l in self.layers], color="tab:green")
        ax_r.set(ylabel="input firing rate")
        ax_r.set_xticks(list(x))
        ax_r.set_xticklabels([l.name for l in self.layers], rotation=90, fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=100)


_UNIT = re.compile(r"(?:^|\.)stages\.(\d+)\.(\d+)\.(\w+)\.")


def block_of_module(name: str) -> str:
    """The export graph's block of a synapse's module path (``nn.fold``'s naming): ``stages.S.B.encode.*``
    -> ``sS.down``, ``stages.S.B.UNIT.*`` -> ``sS.bB.UNIT``, ``head*`` -> ``head``; '' otherwise."""
    match = _UNIT.search(name)
    if match:
        stage, block, unit = match.groups()
        return f"s{stage}.down" if unit == "encode" else f"s{stage}.b{block}.{unit}"
    return "head" if name.split(".")[0] in ("head", "head_kd") else ""


class _Recorder:
    """Forward hooks that accumulate non-zero counts, sizes and FLOPs per synapse / SDSA."""

    def __init__(self, model):
        from ..nn.attention import SDSA
        from ..nn.synapse import Conv, Dense

        self.stats: Dict[str, dict] = {}
        self.order: List[str] = []
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, (Conv, Dense)):
                self.handles.append(module.register_forward_hook(self._synapse_hook(name)))
            elif isinstance(module, SDSA):
                self.handles.append(module.register_forward_hook(self._sdsa_hook(name, module)))

    def _entry(self, name: str, **init) -> dict:
        if name not in self.stats:
            self.stats[name] = {"nonzero": 0, "numel": 0, "binary": True, **init}
            self.order.append(name)
        return self.stats[name]

    def _synapse_hook(self, name: str):
        from ..nn.synapse import Conv

        def hook(module, inputs, output):
            x = inputs[0]
            steps, batch = x.shape[:2]
            if isinstance(module, Conv):
                kind = "conv"
                flops = output[0, 0].numel() * module.weight[0].numel()
            else:
                kind = "dense"
                flops = module.weight.shape[0] * module.weight.shape[1]
            entry = self._entry(name, kind=kind, flops=int(flops), timesteps=int(steps))
            entry["nonzero"] += int((x != 0).sum())
            entry["numel"] += x.numel()
            entry["binary"] &= bool(((x == 0) | (x == 1)).all())
        return hook

    def _sdsa_hook(self, name: str, module):
        spikes = {}
        for key in ("q_lif", "k_lif", "v_lif"):
            lif = getattr(module, key, None)
            if lif is not None:
                self.handles.append(lif.register_forward_hook(
                    lambda m, i, o, key=key: spikes.__setitem__(key, (int((o != 0).sum()), o.numel()))))

        def hook(mod, inputs, output):
            steps, batch, channels, h, w = inputs[0].shape
            n_tokens = h * w
            flops = n_tokens * channels * (channels if mod.variant in (3, 4) else 1)
            entry = self._entry(f"{name}.operator" if name else "operator", kind="sdsa-op", flops=int(flops), timesteps=int(steps),
                                rates={})
            for key, (nonzero, numel) in spikes.items():
                acc = entry["rates"].setdefault(key, [0, 0])
                acc[0] += nonzero
                acc[1] += numel
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def energy_report(model, batches: Iterable, *, static_input: bool = True,
                  timesteps: Optional[int] = None) -> EnergyReport:
    """The paper view: run ``model`` (a torch module; eval mode, no grad) over ``batches`` and price every
    synapse layer of the training graph per App. B.

    ``static_input``: the first synapse sees an image repeated over T (counted once as MACs).
    """
    import torch

    recorder = _Recorder(model)
    was_training = model.training
    model.eval()
    images = 0
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                images += x.shape[-4] if x.dim() >= 4 else x.shape[0]
    finally:
        recorder.close()
        model.train(was_training)
    if images == 0:
        raise ValueError("energy_report needs at least one batch of inputs")
    report = EnergyReport(timesteps=timesteps or getattr(model, "timesteps", 1), images=images)
    for i, name in enumerate(recorder.order):
        s = recorder.stats[name]
        steps = s["timesteps"]
        if s["kind"] == "sdsa-op":
            rate = sum(nz / max(1, n) for nz, n in s["rates"].values())
            report.layers.append(LayerEnergy(name, "sdsa-op", s["flops"], rate, True, "AC",
                                             E_AC_PJ * steps * rate * s["flops"], block_of_module(name)))
            continue
        rate = s["nonzero"] / max(1, s["numel"])
        if i == 0 and static_input:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, s["binary"], "MAC", E_MAC_PJ * s["flops"])
        elif s["binary"]:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, True, "AC", E_AC_PJ * steps * rate * s["flops"])
        else:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, False, "MAC",
                                E_MAC_PJ * steps * rate * s["flops"])
        layer.block = block_of_module(name)
        report.layers.append(layer)
    return report


# ------------------------------------------------------------------------------ the deployed view
def _synapse_flops(node, input_shape) -> int:
    """MACs per sample and timestep of a ``conv``/``dense`` node (the same count as the hooks')."""
    weight = node.params["weight"]
    if node.op == "conv":
        return int(np.prod(node.shape[1:])) * int(node.shape[0]) * int(np.prod(weight.shape[1:]))
    return int(weight.shape[0]) * int(weight.shape[1])


def _simulated_steps(graph, x: np.ndarray, precision: str):
    """Every node's output, one timestep at a time: ``graph.simulate``'s loop (the same kernels), without
    keeping T steps of every probed node in memory (an event batch would hold gigabytes)."""
    from ..graph import fixed
    from ..graph.errors import GraphError
    from ..graph.simulate import frames_of, make_kernels

    if precision == "float" and not graph.float_params:
        raise GraphError("this export holds integers only: measure it with precision='fixed'")
    frames = frames_of(graph, x)
    if precision == "fixed":
        frames = fixed.quantize_input(frames)
    kernels = make_kernels(graph, precision)
    for t in range(len(frames)):
        values = {graph.input.name: frames[t]}
        for node in graph.nodes[1:]:
            values[node.name] = kernels[node.name].step([values[i] for i in node.inputs])
        yield values


def graph_energy_report(graph, batches: Iterable, *, precision: str = "float") -> EnergyReport:
    """The deployed view: run the export ``graph`` (``graph.Graph``) in the reference simulator over
    ``batches`` (images ``[B, C, H, W]`` for a static-input graph, event frames ``[T, B, C, H, W]``
    otherwise; numpy arrays or torch tensors) and price every synapse node and SDSA operator per App. B.

    A synapse whose input carries spikes (``Graph.spike_inputs()``) costs ``E_AC * T * R * FL``; one
    whose input is graded costs ``E_MAC * T * R * FL``, except a synapse on a static image, which is
    computed once (``E_MAC * FL``). ``precision='fixed'`` measures the rates on the integer network
    (``graph.fixed``, what Lava's ``fixed_pt`` runs) instead of float64.
    """
    spikes = graph.spike_inputs()
    by_name = graph.by_name
    priced = [n for n in graph.nodes[1:] if n.spec.role in ("synapse", "attention")]
    probes = sorted({i for n in priced for i in n.inputs})
    counts = {name: [0, 0] for name in probes}
    images = 0
    for x in batches:
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        for values in _simulated_steps(graph, x, precision):
            for name in probes:
                counts[name][0] += int(np.count_nonzero(values[name]))
                counts[name][1] += values[name].size
        images += x.shape[0] if graph.static_input else x.shape[1]
    if images == 0:
        raise ValueError("graph_energy_report needs at least one batch of inputs")

    def rate(name: str) -> float:
        nonzero, size = counts[name]
        return nonzero / max(1, size)

    steps = graph.timesteps
    report = EnergyReport(timesteps=steps, images=images, view="deployed")
    for node in priced:
        block = node.block or node.name
        if node.spec.role == "attention":
            channels, tokens = int(node.shape[0]), int(np.prod(node.shape[1:]))
            flops = tokens * channels * (channels if int(node.attrs["variant"]) in (3, 4) else 1)
            r_hat = sum(rate(i) for i in node.inputs)
            report.layers.append(LayerEnergy(node.name, "sdsa-op", flops, r_hat, True, "AC",
                                             E_AC_PJ * steps * r_hat * flops, block))
            continue
        source = node.inputs[0]
        flops = _synapse_flops(node, by_name[source].shape)
        r = rate(source)
        if spikes[node.name]:
            layer = LayerEnergy(node.name, node.op, flops, r, True, "AC", E_AC_PJ * steps * r * flops, block)
        elif source == graph.input.name and graph.static_input:
            layer = LayerEnergy(node.name, node.op, flops, r, False, "MAC", E_MAC_PJ * flops, block)
        else:
            layer = LayerEnergy(node.name, node.op, flops, r, False, "MAC", E_MAC_PJ * steps * r * flops, block)
        report.layers.append(layer)
    return report


@dataclass
class EnergyViews:
    """The deployed view (what runs on Lava) and the paper view (training graph) of one model."""

    deployed: EnergyReport
    paper: EnergyReport

    @property
    def total_mj(self) -> float:
        """The deployed network's energy: the figure this library reports."""
        return self.deployed.total_mj

    @property
    def mean_spike_rate(self) -> float:
        return self.deployed.mean_spike_rate

    def by_block(self) -> List[tuple]:
        """``[(block, paper pJ, deployed pJ)]`` in network order (blocks of either view)."""
        totals: Dict[str, List[float]] = {}
        for index, report in enumerate((self.paper, self.deployed)):
            for layer in report.layers:
                totals.setdefault(layer.block or layer.name, [0.0, 0.0])[index] += layer.energy_pj
        order = [l.block or l.name for l in self.deployed.layers]
        order += [b for b in totals if b not in order]
        return [(block, *totals[block]) for block in dict.fromkeys(order)]

    def to_dict(self) -> dict:
        """The deployed report's fields (as ``EnergyReport.to_dict``) with the paper view beside it."""
        return {**self.deployed.to_dict(), "paper_convention": self.paper.to_dict()}

    def save_json(self, path) -> None:
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def table(self) -> str:
        lines = [self.deployed.table(), "",
                 f"{'block':28s} {'paper uJ':>10s} {'deployed uJ':>12s}   (paper: training graph, App. B convention)"]
        for block, paper, deployed in self.by_block():
            lines.append(f"{block:28s} {paper * 1e-6:10.3f} {deployed * 1e-6:12.3f}")
        p_ops, d_ops = self.paper.energy_by_op(), self.deployed.energy_by_op()
        lines.append(f"{'total':28s} {self.paper.total_mj * 1e3:10.3f} {self.deployed.total_mj * 1e3:12.3f}   "
                     f"(MAC {p_ops['MAC'] * 1e-6:.2f} -> {d_ops['MAC'] * 1e-6:.2f} uJ, "
                     f"AC {p_ops['AC'] * 1e-6:.2f} -> {d_ops['AC'] * 1e-6:.2f} uJ)")
        lines.append(f"deployed graph {self.deployed.total_mj * 1e3:.2f} uJ per sample; paper convention (training "
                     f"graph) {self.paper.total_mj * 1e3:.2f} uJ")
        return "\n".join(lines)

    def plot(self, path) -> None:
        """Per-layer energy and input rate of the deployed graph, and both views per block."""
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is

        layers = self.deployed.layers
        blocks = self.by_block()
        fig = Figure(figsize=(max(9, 0.3 * max(len(layers), len(blocks))), 11), layout="constrained")
        ax_e, ax_r, ax_b = fig.subplots(3, 1, height_ratios=(1, 1.6, 1.5))
        x = range(len(layers))
        ax_e.bar(x, [l.energy_pj * 1e-6 for l in layers], color=["tab:red" if l.op == "MAC" else "tab:blue" for l in layers])
        ax_e.set(ylabel="energy per sample (uJ)",
                 title=f"deployed graph: {self.deployed.total_mj * 1e3:.2f} uJ (red: MAC, blue: AC); "
                       f"paper convention {self.paper.total_mj * 1e3:.2f} uJ")
        ax_e.sharex(ax_r)
        ax_e.tick_params(labelbottom=False)
        ax_r.bar(x, [l.input_rate for l in layers], color="tab:green")
        ax_r.set(ylabel="input firing rate")
        ax_r.set_xticks(list(x))
        ax_r.set_xticklabels([l.name for l in layers], rotation=90, fontsize=6)
        xb = np.arange(len(blocks))
        ax_b.bar(xb - 0.2, [b[1] * 1e-6 for b in blocks], 0.4, label="paper (training graph)", color="tab:gray")
        ax_b.bar(xb + 0.2, [b[2] * 1e-6 for b in blocks], 0.4, label="deployed (exported graph)", color="tab:blue")
        ax_b.set(ylabel="energy per sample (uJ)", title="per block")
        ax_b.set_xticks(list(xb))
        ax_b.set_xticklabels([b[0] for b in blocks], rotation=90, fontsize=7)
        ax_b.legend()
        fig.savefig(path, dpi=100)


def energy_views(model, batches: Sequence, *, precision: str = "float") -> EnergyViews:
    """Both views of a ``MetaSpikeFormer`` on the same ``batches`` (a sequence: it is read twice). A
    quantized model (``neuron_mode='fixed'``) is counted on its float twin (same weights; the quantized
    forward has no per-module spike hooks); ``precision='fixed'`` measures the deployed view's rates
    on the integer network."""
    from ..nn.fold import to_graph

    batches = list(batches)
    if model.cfg.neuron_mode == "fixed":
        from ..nn import MetaSpikeFormer
        twin = MetaSpikeFormer(model.cfg.replace(neuron_mode="float"))
        twin.load_state_dict(model.state_dict())
        model = twin
    was_training = model.training
    graph = to_graph(model.eval())
    model.train(was_training)
    paper = energy_report(model, batches, static_input=not model.cfg.event_input)
    deployed = graph_energy_report(graph, batches, precision=precision)
    return EnergyViews(deployed, paper)
