"""On-disk cache of event frames: emulating/reading and binning 70k clips once, not every epoch.

A cache file is keyed by the data set's ``cache_key()`` and the transform's repr (tonic and our
transforms are dataclasses, so the repr names every parameter); it is written atomically and
memory-mapped on load.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from event_data.events import NUMPY_FILE_ERRORS, EventDataError

from ..fileio import atomic_write
from .frames import FrameSet


def default_cache_dir() -> Path:
    """``$LAVA_SPIKEFORMER_CACHE``, else ``$XDG_CACHE_HOME/lava-spikeformer/frames`` (``~/.cache``)."""
    if os.environ.get("LAVA_SPIKEFORMER_CACHE"):
        return Path(os.environ["LAVA_SPIKEFORMER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lava-spikeformer" / "frames"


def _samples(dataset, indices: Sequence[int]):
    if hasattr(dataset, "iter_samples"):
        return dataset.iter_samples(indices)
    return (dataset[i] for i in indices)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)
    atomic_write(path, write)


def cached_frames(dataset, *, limit: Optional[int] = None, cache_dir: Optional[os.PathLike] = None,
                  progress: bool = True) -> FrameSet:
    """``FrameSet`` of ``dataset`` (whose ``transform`` yields ``(T, P, H, W)`` frames), cached on disk."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    key = hashlib.sha1(f"{dataset.cache_key()}|{dataset.transform!r}|{n}".encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    frames_path, labels_path = root / f"{key}.frames.npy", root / f"{key}.labels.npy"
    if not (frames_path.exists() and labels_path.exists()):
        frames, labels = None, np.empty(n, dtype=np.int64)
        samples = tqdm(_samples(dataset, range(n)), total=n, desc=f"event frames ({n})", disable=not progress)
        for i, (frame, label) in enumerate(samples):
            frame = np.asarray(frame)
            if frames is None:
                frames = np.empty((n, *frame.shape), dtype=np.uint8)
            elif frame.shape != frames.shape[1:]:
                raise EventDataError(f"sample {i}: frames of shape {frame.shape}, expected {frames.shape[1:]} "
                                     f"like the first sample")
            frames[i] = np.clip(frame, 0, 255)
            labels[i] = label
        _save_atomic(frames_path, frames)
        _save_atomic(labels_path, labels)
    try:
        frames = np.load(frames_path)
        labels = np.load(labels_path)
    except NUMPY_FILE_ERRORS as exc:
        raise EventDataError(f"{frames_path}: unreadable frame cache ({exc}); delete it to rebuild") from exc
    if len(frames) != n or len(labels) != n:
        raise EventDataError(f"{frames_path}: holds {len(frames)} samples, expected {n}; delete it to rebuild")
    return FrameSet(torch.from_numpy(frames), torch.from_numpy(labels),
                    tuple(getattr(dataset, "classes", ())))
