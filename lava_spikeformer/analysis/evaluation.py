"""The result of evaluating an export on Lava: accuracy (also per Lava step), throughput, firing
rates; ``table()``, ``plot()``, ``save()`` like ``EnergyReport``. Numbers only: no torch, no Lava."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..fileio import atomic_write


@dataclass
class LavaEvaluation:
    model: str
    data: str
    tag: str
    granularity: str
    images: int
    accuracy: float                         # decision after the last timestep (PyTorch's prediction rule)
    accuracy_per_step: List[float]          # decision accuracy at every Lava step (0 before the latency)
    steps_per_second_incl_startup: float
    latency_steps: int
    timesteps: int
    firing_rates: Dict[str, float] = field(default_factory=dict)     # fine granularity: per neuron layer
    #: fine granularity: per spiking layer, spikes [T, neurons] of sample 0 (up to 40 neurons that fire)
    raster: Optional[Dict[str, np.ndarray]] = field(default=None, repr=False)
    #: the Lava step at which each raster layer's timestep 0 arrives (``graph.arrival()``)
    raster_arrival: Dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def mean_firing_rate(self) -> Optional[float]:
        return float(np.mean(list(self.firing_rates.values()))) if self.firing_rates else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("raster")
        d.pop("raster_arrival")
        d["mean_firing_rate"] = self.mean_firing_rate
        return d

    def table(self) -> str:
        lines = [f"{self.model} on Lava ({self.tag}, {self.granularity}), {self.data}: {self.images} samples",
                 f"  accuracy            {100 * self.accuracy:.2f} %",
                 f"  latency             {self.latency_steps} steps (T={self.timesteps})",
                 f"  steps/s (+startup)  {self.steps_per_second_incl_startup:.1f}"]
        if self.firing_rates:
            lines.append(f"  mean firing rate    {self.mean_firing_rate:.4f} over {len(self.firing_rates)} layers")
        return "\n".join(lines)

    def plot(self, out_dir) -> List[Path]:
        """``lava_decisions.png`` (accuracy per step) and, with firing rates, ``lava_rates.png`` and
        ``lava_raster.png``."""
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "lava_decisions.png"]
        fig = Figure(figsize=(7, 3.5))
        ax = fig.subplots()
        ax.plot(100 * np.asarray(self.accuracy_per_step), "o-", ms=3)
        ax.axvline(self.latency_steps, color="gray", ls=":", label=f"latency L={self.latency_steps}")
        ax.set(xlabel="Lava step", ylabel="decision accuracy %", title=f"{self.data}: class decision per step")
        ax.legend()
        fig.tight_layout()
        fig.savefig(paths[0], dpi=100)
        if self.firing_rates:
            paths.append(out / "lava_rates.png")
            fig = Figure(figsize=(10, 4))
            ax = fig.subplots()
            ax.bar(range(len(self.firing_rates)), list(self.firing_rates.values()))
            ax.set_xticks(range(len(self.firing_rates)), list(self.firing_rates), rotation=90, fontsize=6)
            ax.set(ylabel="firing rate", title="Lava: firing rate per neuron layer")
            fig.tight_layout()
            fig.savefig(paths[-1], dpi=100)
        if self.raster:
            paths.append(out / "lava_raster.png")
            self.raster_figure().savefig(paths[-1], dpi=100)
        return paths

    def raster_figure(self):
        """The spikes of sample 0 in every probed layer against the Lava step: timestep t of a layer
        sits at step ``arrival + t``, so the raster is a time course -- the T timesteps of each layer
        side by side, the layers one synapse step apart along the pipeline (also for T = 1) -- with
        the logits leaving from step L."""
        from matplotlib.figure import Figure
        layers = list(self.raster)
        steps = self.latency_steps + self.timesteps
        fig = Figure(figsize=(10, 1.2 + 0.16 * len(layers)))
        ax = fig.subplots()
        for row, name in enumerate(layers):
            spikes = np.asarray(self.raster[name])
            t, neuron = np.nonzero(spikes)
            width = max(spikes.shape[1], 1)
            ax.scatter(self.raster_arrival.get(name, 0) + t, row + neuron / width, s=3, marker="|",
                       color=f"C{row % 10}")
        ax.axvline(self.latency_steps, color="gray", ls=":", label=f"logits leave from step L={self.latency_steps}")
        ax.set_yticks([row + 0.5 for row in range(len(layers))],
                      [f"{name} ({self.raster_arrival.get(name, 0)})" for name in layers], fontsize=5)
        ax.set(xlabel="Lava step", xlim=(-0.5, steps - 0.5), ylim=(0, len(layers)),
               title=f"Lava spike raster, sample 0 of {self.data} (T={self.timesteps}): up to 40 firing neurons "
                     f"per layer (arrival step)")
        ax.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        return fig

    def save(self, out_dir) -> List[Path]:
        """``lava_eval.json`` and the plots."""
        path = Path(out_dir) / "lava_eval.json"
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))
        return [path, *self.plot(out_dir)]
