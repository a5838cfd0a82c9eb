"""Meta-SpikeFormer Lava Processes; their ProcessModels are in ``models.py`` beside them (Lava's
compiler imports every module in this folder, so nothing else lives here)."""
from .process import (SDSA, ClassDecision, Conv, DelayLine, Dense, EventSource, FusedBlock, GradedAdd, LIF,
                      Recorder, SpatialMean)

__all__ = ["Conv", "Dense", "LIF", "SDSA", "GradedAdd", "DelayLine", "SpatialMean", "FusedBlock", "Recorder",
           "ClassDecision", "EventSource"]
