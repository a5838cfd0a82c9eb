"""Raw event data sets by name, for streaming into a running network, and the transform options that
fit a sensor's events to a model's input (numpy + tonic only)."""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

from lava_spikeformer.graph.input import KNOWN_DATASETS

from .fmnist_dvs import FashionMNISTDVS
from .hardvs import HARDVS, fit_factor

#: data set name -> model input (H, W) -> the ``event_transform`` options its training frames were made
#: with (``lava_spikeformer.data.event_frames``), for events of the data set's own sensor
STREAM_OPTIONS: Dict[str, Callable[[Tuple[int, int]], dict]] = {
    "fmnist-dvs": lambda size: {"size": size},
    "hardvs": lambda size: {"size": size, "downsample": fit_factor(HARDVS.sensor_size[1], HARDVS.sensor_size[0],
                                                                   size)},
}

#: data set name -> (root, split, model input (H, W)) -> (raw event dataset, ``event_transform`` options):
#: what the Lava ``EventSource`` streams, framed exactly as ``lava_spikeformer.data.event_frames`` frames it for PyTorch.
STREAM_SOURCES: Dict[str, Callable] = {
    "fmnist-dvs": lambda root, split, size: (FashionMNISTDVS(split, data_dir=root), STREAM_OPTIONS["fmnist-dvs"](size)),
    "hardvs": lambda root, split, size: (HARDVS(root, split, release="events"), STREAM_OPTIONS["hardvs"](size)),
}


def stream_options(sensor_size: Sequence[int], size: Tuple[int, int], dataset: str = "") -> dict:
    """``event_transform`` options that bring events of a ``sensor_size`` (W, H, P) sensor to a model
    input of ``size`` (H, W). Events from the sensor of the ``dataset`` the model was made for get that
    data set's own options (what the model saw in training); any other sensor gets HAR-DVS's rule:
    tonic ``Downsample`` by ``fit_factor`` (the short side covers the input; never enlarged), then
    tonic ``CenterCrop`` to ``size``."""
    width, height = int(sensor_size[0]), int(sensor_size[1])
    size = (int(size[0]), int(size[1]))
    known = KNOWN_DATASETS.get(dataset, {}).get("sensor")
    if dataset in STREAM_OPTIONS and known is not None and tuple(known[:2]) == (width, height):
        return STREAM_OPTIONS[dataset](size)
    factor = fit_factor(height, width, size)
    return {"size": size, **({"downsample": factor} if factor != 1.0 else {})}
