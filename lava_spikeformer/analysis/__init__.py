from .energy import E_AC_PJ, E_MAC_PJ, EnergyReport, LayerEnergy, energy_report

__all__ = ["E_AC_PJ", "E_MAC_PJ", "EnergyReport", "LayerEnergy", "energy_report"]
