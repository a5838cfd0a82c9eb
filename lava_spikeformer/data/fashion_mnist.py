"""Fashion-MNIST as torch tensors for training (files read by ``idx``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .idx import CLASSES, MEAN, STD, fashion_mnist_arrays


@dataclass
class ImageSet:
    """Images ``uint8 [N, 1, 28, 28]`` and labels ``int64 [N]``, kept whole in memory (47 MB)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: Tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: Optional[int]) -> "ImageSet":
        return self if n is None or n >= len(self) else ImageSet(self.images[:n], self.labels[:n], self.classes)

    def batch(self, index, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalized model input for ``index``; with a ``generator``, random shift/flip (``augment``)."""
        images = self.images[index]
        return normalize(augment(images, generator) if generator is not None else images)


def load_fashion_mnist(split: str, data_dir: Optional[os.PathLike] = None) -> ImageSet:
    images, labels = fashion_mnist_arrays(split, data_dir)
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels))


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255.0 - MEAN) / STD


def augment(images_u8: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to ``max_shift`` px (zero fill) and horizontal flip, per image."""
    n, _, h, w = images_u8.shape
    padded = torch.nn.functional.pad(images_u8, [max_shift] * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * max_shift)
    shifted = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    shifted = shifted.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    shifted[flip] = shifted[flip].flip(-1)
    return shifted
