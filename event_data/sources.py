"""Raw event data sets by name, for streaming into a running network (numpy + tonic only)."""
from __future__ import annotations

from typing import Callable, Dict

from .fmnist_dvs import FashionMNISTDVS
from .hardvs import HARDVS, fit_factor

#: data set name -> (root, split, model input (H, W)) -> (raw event dataset, ``event_transform`` options):
#: what the Lava ``EventSource`` streams, framed exactly as ``lava_spikeformer.data.event_frames`` frames it for PyTorch.
STREAM_SOURCES: Dict[str, Callable] = {
    "fmnist-dvs": lambda root, split, size: (FashionMNISTDVS(split, data_dir=root), {"size": size}),
    "hardvs": lambda root, split, size: (HARDVS(root, split, release="events"),
                                         {"size": size, "downsample": fit_factor(HARDVS.sensor_size[1],
                                                                                 HARDVS.sensor_size[0], size)}),
}
