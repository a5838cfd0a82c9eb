"""lava-spikeformer: Meta-SpikeFormer (Spike-Driven Transformer V2) trained with lava-dl, run on Lava.

The package root is lazy (PEP 562): ``import lava_spikeformer.graph`` (the torch-free network
contract) or ``lava_spikeformer.lava`` does not load torch; ``create_model`` and friends import
the training stack on first use.
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "ABLATIONS": "config", "ModelConfig": "config", "StageConfig": "config", "build_config": "config",
    "list_models": "config", "register_model": "config",
    "MetaSpikeFormer": "nn", "count_parameters": "nn",
    "load_model": "training.checkpoint",
}


def create_model(name: str, *, ablations=(), **overrides):
    """``create_model('meta_spikeformer_c48', ablations=['sdsa1'], num_classes=10)``."""
    from .config import build_config
    from .nn import MetaSpikeFormer
    return MetaSpikeFormer(build_config(name, ablations, **overrides))


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["create_model", "__version__", *_LAZY]
