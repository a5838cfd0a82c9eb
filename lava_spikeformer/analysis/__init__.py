"""Reading models and runs: energy (App. B, of the exported graph and of the training graph), the Loihi 2
fit report (from a graph), evaluation results of Lava runs. Lazy, so the graph-only reports do not load torch."""
from importlib import import_module

_LAZY = {"E_AC_PJ": "energy", "E_MAC_PJ": "energy", "EnergyReport": "energy", "LayerEnergy": "energy",
         "energy_report": "energy", "graph_energy_report": "energy", "energy_views": "energy",
         "EnergyViews": "energy", "LoihiReport": "loihi", "loihi_report": "loihi",
         "LavaEvaluation": "evaluation"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
