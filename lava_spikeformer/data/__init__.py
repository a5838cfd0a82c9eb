"""Training data: a data set has ``labels``, ``subset(n)`` and ``batch(index, generator)`` -> model input.

Lazy (PEP 562): ``data.idx`` (numpy IDX reader) is used by the torch-free event emulation, so the
package itself must not import torch.
"""
from importlib import import_module

_LAZY = {"DataError": "idx", "ImageSet": "fashion_mnist", "augment": "fashion_mnist",
         "load_fashion_mnist": "fashion_mnist", "normalize": "fashion_mnist", "FrameSet": "frames"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
