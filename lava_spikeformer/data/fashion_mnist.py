"""Fashion-MNIST as torch tensors for training (files read by ``idx``)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch

from .idx import CLASSES, MEAN, STD, fashion_mnist_arrays


@dataclass
class ImageSet:
    """Images ``uint8 [N, 1, 28, 28]`` and labels ``int64 [N]``, kept whole in memory (47 MB)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: Tuple[str, ...] = CLASSES
    erase_prob: float = 0.0          # with augmentation: random erasing probability (``random_erase``)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: Optional[int]) -> "ImageSet":
        return self if n is None or n >= len(self) else replace(self, images=self.images[:n], labels=self.labels[:n])

    def batch(self, index, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalized model input for ``index``; with a ``generator``, random shift/flip (``augment``)
        and, if ``erase_prob`` > 0, random erasing (``random_erase``)."""
        images = self.images[index]
        if generator is not None:
            images = augment(images, generator)
            if self.erase_prob > 0:
                images = random_erase(images, generator, self.erase_prob)
        return normalize(images)


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


def random_erase(images_u8: torch.Tensor, generator: torch.Generator, prob: float,
                 area: Tuple[float, float] = (0.02, 1 / 3), log_aspect: Tuple[float, float] = (math.log(0.3),
                                                                                            math.log(1 / 0.3))):
    """Random erasing (Zhong et al. 2020; timm's ``RandomErasing`` ranges): with probability ``prob``
    per image, one rectangle of ``area`` fraction and aspect ratio in 0.3..3.3 is set to 0 (the
    background of Fashion-MNIST). Our own because timm's draws from Python's global ``random``: a
    resumed run would not repeat its augmentation, ours draws from the run's generator."""
    out = images_u8.clone()
    n, _, h, w = out.shape
    chosen = torch.rand(n, generator=generator) < prob
    draws = torch.rand(n, 4, generator=generator)
    for i in torch.nonzero(chosen).flatten().tolist():
        target = (area[0] + (area[1] - area[0]) * draws[i, 0].item()) * h * w
        aspect = math.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * draws[i, 1].item())
        eh = min(h, max(1, int(round(math.sqrt(target * aspect)))))
        ew = min(w, max(1, int(round(math.sqrt(target / aspect)))))
        top = int(draws[i, 2].item() * (h - eh + 1))
        left = int(draws[i, 3].item() * (w - ew + 1))
        out[i, :, top:top + eh, left:left + ew] = 0
    return out
