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
    raster: Optional[np.ndarray] = field(default=None, repr=False)   # [T, neurons] of sample 0, last layer
    raster_layer: str = ""

    @property
    def mean_firing_rate(self) -> Optional[float]:
        return float(np.mean(list(self.firing_rates.values()))) if self.firing_rates else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("raster")
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
        if self.raster is not None:
            paths.append(out / "lava_raster.png")
            t, n = np.nonzero(self.raster)
            fig = Figure(figsize=(8, 3))
            ax = fig.subplots()
            ax.scatter(t, n, s=4, marker="|")
            ax.set(xlabel="timestep", ylabel="neuron", title=f"Lava spike raster: {self.raster_layer} (sample 0)")
            fig.tight_layout()
            fig.savefig(paths[-1], dpi=100)
        return paths

    def save(self, out_dir) -> List[Path]:
        """``lava_eval.json`` and the plots."""
        path = Path(out_dir) / "lava_eval.json"
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))
        return [path, *self.plot(out_dir)]
