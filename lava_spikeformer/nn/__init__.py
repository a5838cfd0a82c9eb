from .model import MetaSpikeFormer, count_parameters
from .neuron import LIF

__all__ = ["MetaSpikeFormer", "LIF", "count_parameters"]
