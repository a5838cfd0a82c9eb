"""Firing rates and the energy estimate of the paper's App. B, measured on data.

    E = E_MAC * FL(first conv)  +  sum_l E_AC * T * R_l * FL_l  (+ SDSA operator terms, Table 6)

* ``FL_l``: multiply-accumulates of synapse layer ``l`` for one image and one timestep
  (conv: ``C_out * H_out * W_out * C_in / groups * k_h * k_w``; dense: ``in * out``).
* ``R_l``: firing rate of the layer's *input* tensor (fraction of non-zero entries over T, batch,
  channels, pixels), measured with forward hooks.
* The first conv sees the real-valued image, repeated over T (direct encoding): computed once,
  counted once as MACs. A later layer whose input is not binary (SEW shortcut's integer counts)
  is counted as ``E_MAC * T * R * FL``: those additions carry multi-bit operands.
* SDSA operator (Table 6), with N tokens, D channels and ``R_hat`` the summed rates of the spike
  matrices involved (Q, K, V; SDSA-2: Q, V): SDSA-1/2 ``E_AC * T * R_hat * N * D``,
  SDSA-3/4 ``E_AC * T * R_hat * N * D^2``. Q/K/V/output projections are ordinary synapse layers.
* BatchNorm is folded into the synapses at export and the membrane adds are not counted (as in
  the paper).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import torch

from ..fileio import atomic_write
from ..nn.attention import SDSA
from ..nn.synapse import Conv, Dense

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


@dataclass
class EnergyReport:
    timesteps: int
    images: int
    layers: List[LayerEnergy] = field(default_factory=list)

    @property
    def total_mj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers) * 1e-9

    @property
    def mean_spike_rate(self) -> float:
        """FLOP-unweighted mean input rate over the spike-driven (binary-input) synapse layers."""
        rates = [l.input_rate for l in self.layers if l.kind != "sdsa-op" and l.binary_input]
        return sum(rates) / len(rates) if rates else 0.0

    def to_dict(self) -> dict:
        return {"timesteps": self.timesteps, "images": self.images, "total_mj": self.total_mj,
                "mean_spike_rate": self.mean_spike_rate, "layers": [asdict(l) for l in self.layers]}

    def save_json(self, path) -> None:
        """Atomically: an interrupted write leaves the previous file, never half of one."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def table(self) -> str:
        lines = [f"{'layer':44s} {'op':3s} {'MACs/step':>12s} {'rate':>7s} {'energy uJ':>10s}"]
        for l in self.layers:
            lines.append(f"{l.name:44s} {l.op:3s} {l.flops:12,d} {l.input_rate:7.4f} {l.energy_pj * 1e-6:10.3f}")
        lines.append(f"total {self.total_mj:.4f} mJ per image (T={self.timesteps}, measured on {self.images} images, "
                     f"mean input spike rate {self.mean_spike_rate:.4f})")
        return "\n".join(lines)

    def plot(self, path) -> None:
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is

        fig = Figure(figsize=(max(8, 0.25 * len(self.layers)), 7))
        ax_e, ax_r = fig.subplots(2, 1, sharex=True)
        x = range(len(self.layers))
        ax_e.bar(x, [l.energy_pj * 1e-6 for l in self.layers],
                 color=["tab:red" if l.op == "MAC" else "tab:blue" for l in self.layers])
        ax_e.set(ylabel="energy per image (uJ)", title=f"App. B energy: {self.total_mj:.4f} mJ (red: MAC, blue: AC)")
        ax_r.bar(x, [l.input_rate for l in self.layers], color="tab:green")
        ax_r.set(ylabel="input firing rate")
        ax_r.set_xticks(list(x))
        ax_r.set_xticklabels([l.name for l in self.layers], rotation=90, fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=100)


class _Recorder:
    """Forward hooks that accumulate non-zero counts, sizes and FLOPs per synapse / SDSA."""

    def __init__(self, model: torch.nn.Module):
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

    def _sdsa_hook(self, name: str, module: SDSA):
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


def energy_report(model: torch.nn.Module, batches: Iterable[torch.Tensor], *, static_input: bool = True,
                  timesteps: Optional[int] = None) -> EnergyReport:
    """Run ``model`` (eval mode, no grad) over ``batches`` and price every layer per App. B.

    ``static_input``: the first synapse sees an image repeated over T (counted once as MACs).
    """
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
                                             E_AC_PJ * steps * rate * s["flops"]))
            continue
        rate = s["nonzero"] / max(1, s["numel"])
        if i == 0 and static_input:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, s["binary"], "MAC", E_MAC_PJ * s["flops"])
        elif s["binary"]:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, True, "AC", E_AC_PJ * steps * rate * s["flops"])
        else:
            layer = LayerEnergy(name, s["kind"], s["flops"], rate, False, "MAC",
                                E_MAC_PJ * steps * rate * s["flops"])
        report.layers.append(layer)
    return report
