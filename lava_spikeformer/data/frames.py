"""Event frames held in memory for training: ``uint8 [N, T, P, H, W]`` counts and labels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch


@dataclass
class FrameSet:
    """Event-count frames (clipped at 255) and labels; ``batch`` gives the model's ``[T, B, P, H, W]``."""

    frames: torch.Tensor
    labels: torch.Tensor
    classes: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: Optional[int]) -> "FrameSet":
        return self if n is None or n >= len(self) else FrameSet(self.frames[:n], self.labels[:n], self.classes)

    def batch(self, index, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Model input for ``index``; with a ``generator``, a random horizontal flip per sample."""
        frames = self.frames[index].float()
        if generator is not None:
            flip = torch.rand(len(frames), generator=generator) < 0.5
            frames[flip] = frames[flip].flip(-1)
        return frames.transpose(0, 1).contiguous()
