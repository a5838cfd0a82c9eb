"""``EventSource``: ports and Vars only (models in ``models.py``)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
from lava.magma.core.process.ports.ports import OutPort

from event_data.events import require_events
from lava_spikeformer.lava.processes.process import _Process


class EventSource(_Process):
    """Sends a batch of event streams into a network, one time bin per step, as lava-peripherals'
    DVS processes do (one OutPort ``(B, P, H, W)``, events binned per step).

    ``streams``: one tonic event array per batch element, raw; ``transform`` (event -> event,
    e.g. ``event_transform(...)[0]``) runs inside the process before binning; ``sensor_size``
    (W, H, P) is the transform's output size. Step k sends the event counts of bin k of
    ``n_time_bins`` (tonic's ``ToFrame(n_time_bins)`` slicing), zeros after the last bin.
    """

    def __init__(self, *, streams: Sequence[np.ndarray], sensor_size: Tuple[int, int, int], n_time_bins: int,
                 transform: Optional[Callable] = None, name: Optional[str] = None):
        streams = tuple(streams)
        if not streams:
            raise ValueError("EventSource needs at least one event stream")
        for i, events in enumerate(streams):
            require_events(events, f"streams[{i}]")           # EventDataError is a ValueError
        sensor_size = tuple(int(s) for s in sensor_size)
        if len(sensor_size) != 3 or min(sensor_size) < 1:
            raise ValueError(f"sensor_size must be (W, H, P) positive ints, got {sensor_size}")
        if int(n_time_bins) != n_time_bins or n_time_bins < 1:
            raise ValueError(f"n_time_bins must be an int >= 1, got {n_time_bins!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, got {type(transform).__name__}")
        super().__init__(streams=streams, sensor_size=sensor_size, n_time_bins=int(n_time_bins),
                         transform=transform, name=name)
        width, height, polarities = sensor_size
        self.s_out = OutPort(shape=(len(streams), polarities, height, width))
