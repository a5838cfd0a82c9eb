"""Event streams as tonic's structured arrays, and the one error type of the package."""
from __future__ import annotations

import numpy as np

#: tonic's event dtype (``tonic.io.events_struct``, tested equal; written out because importing tonic
#: loads torch): x int16, y int16, t int64 (µs), p bool (True = ON).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


class EventDataError(ValueError):
    """An event file, list file or event array is missing, corrupt or not what was expected."""


def make_events(x, y, t, p) -> np.ndarray:
    """Structured array from column arrays; validates lengths (tonic's helper asserts silently)."""
    columns = [np.asarray(c) for c in (x, y, t, p)]
    if len({c.shape for c in columns}) != 1 or columns[0].ndim != 1:
        raise EventDataError(f"event columns x, y, t, p must be 1-D of equal length, got shapes "
                             f"{[c.shape for c in columns]}")
    events = np.empty(len(columns[0]), dtype=EVENT_DTYPE)
    for name, column in zip(EVENT_DTYPE.names, columns):
        events[name] = column
    return events


def require_events(events, what: str = "events") -> np.ndarray:
    """``events`` if it is a structured array with tonic's fields, else one ``EventDataError`` naming ``what``."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None or \
            not set(EVENT_DTYPE.names) <= set(events.dtype.names):
        got = getattr(events, "dtype", type(events).__name__)
        raise EventDataError(f"{what} must be a tonic event array with fields {EVENT_DTYPE.names}, got {got}")
    return events
