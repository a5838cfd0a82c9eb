from .fashion_mnist import DataError, ImageSet, augment, load_fashion_mnist, normalize

__all__ = ["DataError", "ImageSet", "augment", "load_fashion_mnist", "normalize"]
