"""Event streams as tonic's structured arrays, and the one error type of the package."""
from __future__ import annotations

import tokenize
import zipfile
import zlib
from typing import Optional

import numpy as np
from PIL import Image

#: tonic's event dtype (``tonic.io.events_struct``, tested equal; written out because importing tonic
#: loads torch): x int16, y int16, t int64 (µs), p bool (True = ON).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


class EventDataError(ValueError):
    """An event file, list file or event array is missing, corrupt or not what was expected."""


#: What ``numpy.load`` raises on a damaged ``.npy``/``.npz``: besides OSError/ValueError, EOFError
#: (truncated), zip and zlib errors (a damaged archive) and ``tokenize.TokenError``, which numpy's
#: header parser lets through on a garbled header (found by flipping bytes of a written file).
NUMPY_FILE_ERRORS = (OSError, ValueError, EOFError, tokenize.TokenError, zipfile.BadZipFile, zlib.error)

#: What PIL raises on a damaged or hostile image: OSError/ValueError, SyntaxError (some broken
#: headers), zlib errors, and ``DecompressionBombError`` (not an OSError) for a header claiming more
#: than 2 x ``Image.MAX_IMAGE_PIXELS`` pixels.
IMAGE_FILE_ERRORS = (OSError, ValueError, SyntaxError, zlib.error, Image.DecompressionBombError)


def make_events(x, y, t, p) -> np.ndarray:
    """Structured array from column arrays; validates lengths (tonic's helper asserts silently)."""
    columns = [np.asarray(c) for c in (x, y, t, p)]
    if len({c.shape for c in columns}) != 1 or columns[0].ndim != 1:
        raise EventDataError(f"event columns x, y, t, p must be 1-D of equal length, got shapes "
                             f"{[c.shape for c in columns]}")
    for name, column in zip(("x", "y", "t"), columns):
        if column.size and column.dtype.kind not in "iu":     # int16/int64 casting would hide NaN or fractions
            raise EventDataError(f"event column {name!r} has dtype {column.dtype}, expected integer"
                                 f"{' microseconds' if name == 't' else ' pixels'}")
    events = np.empty(len(columns[0]), dtype=EVENT_DTYPE)
    for name, column in zip(EVENT_DTYPE.names, columns):
        events[name] = column
    return events


def require_events(events, what: str = "events", *, polarities: Optional[int] = None) -> np.ndarray:
    """``events`` if it is a valid tonic event array, else one ``EventDataError`` naming ``what`` and the
    field: tonic's fields; integer ``x``/``y``; integer microseconds ``t`` (a float column is refused,
    NaN/inf or not, as the HAR-DVS reader refuses it: tonic's binning would silently drop a NaN clip);
    ``p`` bool or integer within ``0..polarities-1`` (>= 0 when ``polarities`` is not given)."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None or \
            not set(EVENT_DTYPE.names) <= set(events.dtype.names):
        got = getattr(events, "dtype", type(events).__name__)
        raise EventDataError(f"{what} must be a tonic event array with fields {EVENT_DTYPE.names}, got {got}")
    if events.ndim != 1:
        raise EventDataError(f"{what} must be 1-D (one event per entry), got shape {events.shape}")
    for name in ("x", "y", "t", "p"):
        column = events[name]
        if column.dtype.kind not in ("biu" if name == "p" else "iu"):
            detail = ""
            if column.dtype.kind == "f" and column.size and not np.all(np.isfinite(column)):
                detail = f" (it holds NaN or inf at index {int(np.flatnonzero(~np.isfinite(column))[0])})"
            unit = " microseconds" if name == "t" else (" pixels" if name in "xy" else "")
            expected = "bool or integer" if name == "p" else "integer"
            raise EventDataError(f"{what}: field {name!r} has dtype {column.dtype}{detail}, expected {expected}{unit}")
    p = events["p"]
    if p.size and p.dtype.kind != "b":
        low, high = int(p.min()), int(p.max())
        top = None if polarities is None else int(polarities) - 1
        if low < 0 or (top is not None and high > top):
            bad = low if low < 0 else high
            allowed = f"0..{top}" if top is not None else ">= 0"
            raise EventDataError(f"{what}: field 'p' holds polarity {bad}, expected {allowed}"
                                 + (f" (the sensor has {polarities} polarities)" if top is not None else ""))
    elif p.size and polarities is not None and int(polarities) < 2 and p.any():
        raise EventDataError(f"{what}: field 'p' holds ON events, the sensor has {polarities} polarity")
    return events
