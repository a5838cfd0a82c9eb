"""Event -> frame pipelines on tonic's transforms, with defined behaviour where tonic has none.

tonic's ``ToFrame(n_time_bins=...)`` assumes sorted timestamps (it bins ``t[0]..t[-1]``), returns
``(T, P, W, H)`` -- transposed -- for an empty stream, yields all-zero frames when the stream
spans fewer microseconds than bins, and ``np.add.at`` raises on coordinates outside the sensor.
The guards below make each of those cases defined: streams are sorted, events outside the sensor
dropped, an empty stream gives zero frames of the normal shape, and a stream shorter than the bin
count lands in the first frame.

tonic is imported where it is used: its package ``__init__`` imports torch (``tonic/collation.py``),
and importing ``event_data`` must not load the training stack.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from .events import require_events

SensorSize = Tuple[int, int, int]  # tonic's (W, H, P)


def sort_by_time(events: np.ndarray) -> np.ndarray:
    if len(events) < 2 or np.all(events["t"][1:] >= events["t"][:-1]):
        return events
    return events[np.argsort(events["t"], kind="stable")]


def drop_outside(events: np.ndarray, sensor_size: SensorSize) -> np.ndarray:
    width, height, _ = sensor_size
    inside = (events["x"] >= 0) & (events["x"] < width) & (events["y"] >= 0) & (events["y"] < height)
    return events if inside.all() else events[inside]


def _too_short(events: np.ndarray, n_time_bins: int) -> bool:
    return len(events) == 0 or events["t"][-1] - events["t"][0] < n_time_bins


def to_frames(events: np.ndarray, sensor_size: SensorSize, n_time_bins: int) -> np.ndarray:
    """Sorted, in-range events -> ``int16 (n_time_bins, P, H, W)`` event counts (tonic's ToFrame)."""
    if _too_short(events, n_time_bins):
        return np.stack([frame_of(part, sensor_size) for part in time_bins(events, n_time_bins)])
    import tonic.transforms as tt
    return tt.ToFrame(sensor_size=sensor_size, n_time_bins=n_time_bins)(events).astype(np.int16)


def time_bins(events: np.ndarray, n_time_bins: int) -> list:
    """The events of each of ``n_time_bins`` bins, as tonic's ``ToFrame(n_time_bins=...)`` slices them
    (its ``SliceByTimeBins``); an empty or too-short stream puts everything in the first bin. A
    streaming source emits ``frame_of`` one bin per step and so reproduces ``to_frames`` exactly."""
    if _too_short(events, n_time_bins):
        return [events] + [events[:0]] * (n_time_bins - 1)
    from tonic.slicers import SliceByTimeBins
    return [events[start:stop] for start, stop in
            SliceByTimeBins(bin_count=n_time_bins).get_slice_metadata(events, None)]


def frame_of(events: np.ndarray, sensor_size: SensorSize) -> np.ndarray:
    """Event counts ``int16 (P, H, W)`` of in-range events."""
    width, height, polarities = sensor_size
    frame = np.zeros((polarities, height, width), dtype=np.int16)
    np.add.at(frame, (events["p"].astype(int), events["y"], events["x"]), 1)
    return frame


@dataclass(frozen=True)
class Pipeline:
    """tonic's ``Compose``, but running every step: tonic's stops at an empty stream and returns it
    unframed, so an empty clip (or one cropped to nothing) would reach the model as events."""
    transforms: Tuple[Callable, ...]

    def __call__(self, events):
        for transform in self.transforms:
            events = transform(events)
        return events


@dataclass(frozen=True)
class SortByTime:
    """Stable sort by timestamp (tonic's slicers assume sorted ``t``)."""

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return sort_by_time(events)


@dataclass(frozen=True)
class DropOutsideSensor:
    """Drop events with x/y outside ``sensor_size`` (W, H, P) instead of failing in ``np.add.at``."""
    sensor_size: SensorSize

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return drop_outside(events, self.sensor_size)


@dataclass(frozen=True)
class ToFrames:
    """``ToFrame(n_time_bins=T)`` with the normal ``(T, P, H, W)`` shape on empty or too-short streams."""
    sensor_size: SensorSize
    n_time_bins: int = 8

    def __post_init__(self):
        if self.n_time_bins < 1:
            raise ValueError(f"n_time_bins must be >= 1, got {self.n_time_bins}")

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_frames(events, self.sensor_size, self.n_time_bins)


@dataclass(frozen=True)
class CheckEvents:
    """Reject what is not a valid tonic event array of a sensor with ``polarities`` polarities (wrong
    fields, float/NaN timestamps, polarity out of range) with one clear error: ``require_events``."""
    polarities: Optional[int] = None

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return require_events(events, polarities=self.polarities)


def frame_transform(sensor_size: SensorSize, *, n_time_bins: int = 8, size: Optional[Tuple[int, int]] = None,
                    downsample: float = 1.0, denoise_us: Optional[float] = None) -> Pipeline:
    """Events of a ``sensor_size`` sensor -> ``(n_time_bins, P, H, W)`` frames for the model.

    Steps: check dtype, sort, drop out-of-sensor events, optional tonic ``Denoise``, optional
    tonic ``Downsample`` by ``downsample``, tonic ``CenterCrop`` to ``size`` (H, W), ``ToFrames``.
    All but the last step are ``event_transform``'s: the streaming source applies those and bins
    per step.
    """
    events_only, output_size = event_transform(sensor_size, size=size, downsample=downsample, denoise_us=denoise_us)
    return Pipeline(events_only.transforms + (ToFrames(output_size, n_time_bins),))


def event_transform(sensor_size: SensorSize, *, size: Optional[Tuple[int, int]] = None, downsample: float = 1.0,
                    denoise_us: Optional[float] = None) -> Tuple[Pipeline, SensorSize]:
    """The event-to-event part of ``frame_transform`` and the sensor size of its output."""
    import tonic.transforms as tt
    steps = [CheckEvents(sensor_size[2]), SortByTime(), DropOutsideSensor(sensor_size)]
    if denoise_us:
        steps.append(tt.Denoise(filter_time=denoise_us))
    width, height, polarities = sensor_size
    if downsample != 1.0:
        steps.append(tt.Downsample(spatial_factor=downsample))
        width, height = int(width * downsample), int(height * downsample)
        steps.append(DropOutsideSensor((width, height, polarities)))
    if size is not None and (size[1], size[0]) != (width, height):
        steps.append(tt.CenterCrop(sensor_size=(width, height, polarities), size=(size[1], size[0])))
        steps.append(DropOutsideSensor((size[1], size[0], polarities)))
        width, height = size[1], size[0]
    return Pipeline(tuple(steps)), (width, height, polarities)
