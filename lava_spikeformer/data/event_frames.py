"""``FrameSet``s of an event data set, framed for a model config and cached on disk."""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional

from event_data.fmnist_dvs import FashionMNISTDVS
from event_data.hardvs import NUM_CLASSES as HARDVS_CLASSES, hardvs_for_model
from event_data.transforms import frame_transform

from ..config import ModelConfig
from .frame_cache import cached_frames
from .frames import FrameSet


def _fmnist_dvs(cfg: ModelConfig, root, split: str):
    transform = frame_transform(FashionMNISTDVS.sensor_size, n_time_bins=cfg.timesteps,
                                size=(cfg.img_size, cfg.img_size))
    return FashionMNISTDVS(split, data_dir=root, transform=transform)


def _hardvs(cfg: ModelConfig, root, split: str):
    if cfg.num_classes != HARDVS_CLASSES:
        raise ValueError(f"{cfg.name} has {cfg.num_classes} classes; HAR-DVS has {HARDVS_CLASSES}")
    return hardvs_for_model(root, split, n_time_bins=cfg.timesteps, size=(cfg.img_size, cfg.img_size))


#: data set name -> (model config, root, split) -> tonic-style dataset whose transform yields frames
FRAME_DATASETS: Dict[str, Callable] = {"fmnist-dvs": _fmnist_dvs, "hardvs": _hardvs}


def frame_set(name: str, cfg: ModelConfig, split: str, *, root: Optional[os.PathLike] = None,
              limit: Optional[int] = None, cache_dir: Optional[os.PathLike] = None, progress: bool = True) -> FrameSet:
    """The first ``limit`` samples of ``split`` as frames for ``cfg`` (T bins, ``img_size`` crop), cached."""
    if name not in FRAME_DATASETS:
        raise ValueError(f"unknown event data set {name!r}; known: {sorted(FRAME_DATASETS)}")
    if not cfg.event_input or cfg.in_channels != 2:
        raise ValueError(f"{cfg.name} takes {cfg.in_channels}-channel images; event data needs an event_input "
                         f"model with 2 polarity channels (e.g. meta_spikeformer_hardvs_small)")
    return cached_frames(FRAME_DATASETS[name](cfg, root, split), limit=limit, cache_dir=cache_dir, progress=progress)
