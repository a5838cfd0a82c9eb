"""lava-spikeformer: Meta-SpikeFormer (Spike-Driven Transformer V2) trained with lava-dl, run on Lava."""
from .config import ABLATIONS, ModelConfig, StageConfig, build_config, list_models, register_model
from .nn import MetaSpikeFormer, count_parameters

__version__ = "0.1.0"


def create_model(name: str, *, ablations=(), **overrides) -> MetaSpikeFormer:
    """``create_model('meta_spikeformer_c48', ablations=['sdsa1'], num_classes=10)``."""
    return MetaSpikeFormer(build_config(name, ablations, **overrides))


__all__ = ["create_model", "list_models", "register_model", "build_config", "ModelConfig", "StageConfig",
           "MetaSpikeFormer", "ABLATIONS", "count_parameters", "__version__"]
