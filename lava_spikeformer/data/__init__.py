"""Training data: a data set has ``labels``, ``subset(n)`` and ``batch(index, generator)`` -> model input."""
from .fashion_mnist import DataError, ImageSet, augment, load_fashion_mnist, normalize
from .frames import FrameSet

__all__ = ["DataError", "FrameSet", "ImageSet", "augment", "load_fashion_mnist", "normalize"]
