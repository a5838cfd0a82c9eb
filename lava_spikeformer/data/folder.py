"""ImageNet-style folder data sets: ``ROOT/train/<class>/<image>`` and ``ROOT/val/<class>/<image>``.

Files are listed by ``torchvision.datasets.ImageFolder`` and transformed with timm's
``create_transform``: for training the reference's recipe (random resized crop, flip,
RandAugment ``rand-m9-mstd0.5-inc1``, random erasing 0.25, bicubic; ``recipe.PAPER_AUGMENTATION``),
for evaluation resize to ``img_size / 0.875`` and center crop; ImageNet mean/std. A ``FolderSet``
has the same interface as the in-memory sets (``labels``, ``subset``, ``batch``), so ``train``
runs it unchanged; its images are decoded when a batch is built (``data.loader`` can do that in
worker processes).
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from event_data.events import IMAGE_FILE_ERRORS

from .idx import DataError

SPLITS = ("train", "val")


class FolderSet:
    """One split of an image folder tree; ``batch`` gives normalized ``[B, 3, img_size, img_size]``."""

    def __init__(self, folder, *, img_size: int, indices: Optional[torch.Tensor] = None):
        from timm.data import create_transform

        from ..training.recipe import PAPER_AUGMENTATION
        self.folder = folder
        self.img_size = img_size
        self.indices = torch.arange(len(folder.samples)) if indices is None else indices
        self.labels = torch.as_tensor(folder.targets, dtype=torch.int64)[self.indices]
        self.classes: Tuple[str, ...] = tuple(folder.classes)
        self.train_transform = create_transform(img_size, is_training=True, **PAPER_AUGMENTATION)
        self.eval_transform = create_transform(img_size, is_training=False, interpolation="bicubic")

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, n: Optional[int]) -> "FolderSet":
        """``n`` images spread evenly over the (class-sorted) list, so every class is represented."""
        if n is None or n >= len(self):
            return self
        picks = torch.linspace(0, len(self) - 1, n).round().long()
        return FolderSet(self.folder, img_size=self.img_size, indices=self.indices[picks])

    def batch(self, index, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalized images for ``index`` (tensor of positions or a slice); with a ``generator``,
        the training augmentation, its randomness drawn from that generator."""
        paths = [self.folder.samples[i][0] for i in self.indices[index].tolist()]
        if generator is None:
            return torch.stack([self.eval_transform(self._load(p)) for p in paths])
        seed = int(torch.randint(2 ** 31, (1,), generator=generator))
        # torchvision's crops draw from torch's global RNG, timm's RandAugment from `random` and numpy:
        # seed all three for this batch and restore them afterwards.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed)
                return torch.stack([self.train_transform(self._load(p)) for p in paths])
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    def _load(self, path: str):
        try:
            return self.folder.loader(path)
        except IMAGE_FILE_ERRORS as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from exc


def load_image_folder(root: os.PathLike, split: str, *, img_size: int) -> FolderSet:
    """``ROOT/<split>`` as a ``FolderSet``; a missing or empty tree raises ``DataError`` naming it."""
    from torchvision.datasets import ImageFolder

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / split
    if not path.is_dir():
        raise DataError(f"image folder {path} not found: expected ROOT/train/<class>/<image> and "
                        f"ROOT/val/<class>/<image> (ImageNet layout)")
    try:
        folder = ImageFolder(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"image folder {path}: {exc} (expected {path}/<class>/<image files>)") from exc
    return FolderSet(folder, img_size=img_size)


def load_image_folders(root: os.PathLike, *, img_size: int, num_classes: int) -> Tuple[FolderSet, FolderSet]:
    """Train and val splits; checks that they name the same classes and that the model has room for them."""
    train_set = load_image_folder(root, "train", img_size=img_size)
    val_set = load_image_folder(root, "val", img_size=img_size)
    if train_set.classes != val_set.classes:
        only = sorted(set(train_set.classes) ^ set(val_set.classes))
        raise DataError(f"image folder {root}: train/ and val/ must hold the same class folders; "
                        f"in only one of them: {only}")
    if len(train_set.classes) > num_classes:
        raise DataError(f"image folder {root} has {len(train_set.classes)} classes but the model has "
                        f"{num_classes} outputs")
    return train_set, val_set
