"""An epoch's batches for any data set with ``labels`` and ``batch(index, generator)``.

The in-memory sets (Fashion-MNIST, event frames) build a batch in microseconds, so they run in
this process. Folder data sets decode and augment image files, which is worth worker processes:
``workers > 0`` runs the same ``batch`` calls in a ``DataLoader``'s workers. Random augmentation
draws from one seed per batch taken from the trainer's generator in advance, so a batch is the
same whichever process builds it, and a resumed run (generator state in the checkpoint) redraws
the same augmentations.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import torch

_SEED_BOUND = 2 ** 62


class _EpochBatches(torch.utils.data.Dataset):
    """Batch ``i`` of an epoch as one data set item (a DataLoader with ``batch_size=None``)."""

    def __init__(self, data, batches: List[torch.Tensor], seeds: Optional[Sequence[int]]):
        self.data, self.batches, self.seeds = data, batches, seeds

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        index = self.batches[i]
        generator = None if self.seeds is None else torch.Generator().manual_seed(self.seeds[i])
        return self.data.batch(index, generator), self.data.labels[index]


def epoch_batches(data, order: torch.Tensor, batch_size: int, generator: Optional[torch.Generator], *,
                  workers: int = 0, pin_memory: bool = False, seed_column: int = 0,
                  seed_columns: int = 1) -> Iterable[Tuple[torch.Tensor, torch.Tensor]]:
    """``(input, labels)`` for consecutive ``batch_size`` slices of ``order``.

    ``generator`` (None: no augmentation) gives each batch its augmentation seed; distributed
    runs draw ``seed_columns`` (= world size) seeds per batch and each rank takes its own column,
    so all ranks advance the generator alike but augment differently.
    """
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
    batches = list(order.split(batch_size))
    seeds = None
    if generator is not None:
        drawn = torch.randint(_SEED_BOUND, (len(batches), seed_columns), generator=generator)
        seeds = drawn[:, seed_column].tolist()
    items = _EpochBatches(data, batches, seeds)
    if workers == 0:
        return (items[i] for i in range(len(items)))
    return torch.utils.data.DataLoader(items, batch_size=None, shuffle=False, num_workers=workers,
                                       pin_memory=pin_memory)
