"""Event recordings from files, read and written: DV/DAVIS ``.aedat4``, N-MNIST/ATIS ``.bin``, HAR-DVS
``.npz`` and ``.npy`` tonic event arrays. numpy and the readers' own packages only (tonic and ``aedat``
are imported where used: tonic's package imports torch).

=========  ====================================  =================================  ============================
suffix     format                                read with                          sensor size
=========  ====================================  =================================  ============================
.aedat4    AEDAT 4.0 (iniVation DV, DAVIS,       ``aedat.Decoder`` (the decoder      stored: ``sizeX``/``sizeY`` of
           DVXplorer)                            ``tonic.io.read_aedat4`` uses)     the first event stream
.bin       N-MNIST / N-Caltech101 (ATIS,         ``tonic.io.read_mnist_file``       not stored: ``sensor_size``
           Orchard et al. 2015)                                                     (N-MNIST: 34 x 34)
.npz       HAR-DVS events release (keys t, x,    ``hardvs.read_event_npz``          DAVIS346, 346 x 260, unless
           y, p)                                                                    ``sensor_size`` says otherwise
.npy       tonic structured array (x, y, t, p)   ``numpy.load`` (no pickles)        not stored: ``sensor_size``
=========  ====================================  =================================  ============================

Every recording has 2 polarities (OFF = 0, ON = 1). ``read_recording`` returns the events as stored
(tonic's dtype; not sorted) with the sensor size, after one check: polarities in range and every
event on the sensor -- an event outside it means the sensor size is wrong, and is refused naming the
file, rather than silently dropped by the frame pipeline. Any other defect (missing file, unknown
suffix, truncated or corrupt content) is one ``EventDataError`` naming the file.

AEDAT 4.0 layout (iniVation's "AEDAT 4.0" documentation; the flatbuffer schemas as the ``aedat``
decoder ships them): ``#!AER-DAT4.0\\r\\n``, a little-endian ``uint32`` length and that many bytes of
``IOHeader`` flatbuffer (``compression``, ``file_data_position`` = -1 when there is no data table,
``description``: the XML that names each stream, ``typeIdentifier`` ``EVTS`` and ``info/sizeX``,
``info/sizeY`` for events); then packets, each ``int32`` stream id, ``int32`` size and a
size-prefixed ``EventPacket`` flatbuffer (identifier ``EVTS``) holding a vector of 16-byte
``Event`` structs ``{t: int64 µs, x: int16, y: int16, on: bool}``. ``write_aedat4`` writes exactly
that, uncompressed; ``read_aedat4`` bounds-checks the header itself before the decoder sees it (the
decoder reads the header flatbuffer unchecked).

N-MNIST ``.bin``: 5 bytes per event, ``x`` (8 bit), ``y`` (8 bit), ``p`` (bit 7) and a 23-bit
timestamp in µs; ``y == 240`` marks a timestamp overflow (the reader adds 2**13 µs, as Orchard's
reference code does). ``write_atis_bin`` writes timestamps below 2**23 µs (8.4 s) and no overflow
markers.
"""
from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .events import EVENT_DTYPE, NUMPY_FILE_ERRORS, EventDataError, make_events, require_events

SensorSize = Tuple[int, int, int]               # tonic's (W, H, P)
POLARITIES = 2
AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
AEDAT4_COMPRESSION = ("NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH")
ATIS_TIME_BITS = 23
ATIS_OVERFLOW_Y = 240
DAVIS346 = (346, 260, POLARITIES)
_EVENT_STRUCT = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                          "offsets": [0, 8, 10, 12], "itemsize": 16})


@dataclass(frozen=True)
class Recording:
    """One recording: its events as stored (tonic dtype), the sensor ``(W, H, P)`` and the format."""
    path: Path
    events: np.ndarray
    sensor_size: SensorSize
    format: str

    @property
    def duration_us(self) -> int:
        return int(self.events["t"].max() - self.events["t"].min()) if len(self.events) else 0


@dataclass(frozen=True)
class RecordingFormat:
    name: str
    read: Callable[[Path], Tuple[np.ndarray, Optional[SensorSize]]]   # -> (events, sensor stored in the file)
    write: Callable[[Path, np.ndarray, SensorSize], Path]
    default_sensor: Optional[SensorSize] = None       # what the format implies when the file does not say
    hint: str = ""


def sensor_of(size: Sequence[int]) -> SensorSize:
    """``(W, H)`` or ``(W, H, P)`` -> ``(W, H, 2)``; refuses anything else."""
    values = tuple(size)
    if len(values) not in (2, 3) or any(int(v) != v or v < 1 for v in values) or \
            (len(values) == 3 and values[2] != POLARITIES):
        raise EventDataError(f"sensor size must be (W, H) or (W, H, {POLARITIES}) positive ints, got {values}")
    return int(values[0]), int(values[1]), POLARITIES


def check_on_sensor(events: np.ndarray, sensor_size: SensorSize, what: str) -> np.ndarray:
    """``events`` if every event lies on the ``sensor_size`` sensor with a valid polarity, else one
    ``EventDataError`` naming ``what``, the first offending event and how many there are."""
    events = require_events(events, what, polarities=sensor_size[2])
    width, height = sensor_size[:2]
    x, y = events["x"], events["y"]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise EventDataError(f"{what}: {int(outside.sum())} of {len(events)} events lie outside the {width}x{height} "
                             f"sensor, e.g. event {first} at x={int(x[first])}, y={int(y[first])} (the recording "
                             f"spans x {int(x.min())}..{int(x.max())}, y {int(y.min())}..{int(y.max())}: wrong sensor "
                             f"size?)")
    return events


# ---------------------------------------------------------------------------- AEDAT 4.0
def _flatbuffer_table(buffer: bytes, table: int, fields: int, what: str) -> Tuple[int, ...]:
    """Absolute positions of the first ``fields`` fields of the table at ``table`` (0 = absent),
    every offset bounds-checked."""
    def need(condition, detail):
        if not condition:
            raise EventDataError(f"{what}: corrupt AEDAT 4 header ({detail})")
    need(0 <= table and table + 4 <= len(buffer) and table % 4 == 0, f"table at {table}")
    vtable = table - struct.unpack_from("<i", buffer, table)[0]
    need(0 <= vtable and vtable + 4 <= len(buffer) and vtable % 2 == 0, f"vtable at {vtable}")
    vtable_size, table_size = struct.unpack_from("<HH", buffer, vtable)
    need(vtable_size >= 4 and vtable_size % 2 == 0 and vtable + vtable_size <= len(buffer)
         and table + table_size <= len(buffer), "vtable size")
    offsets = [struct.unpack_from("<H", buffer, vtable + 4 + 2 * i)[0] if 4 + 2 * i < vtable_size else 0
               for i in range(fields)]
    need(all(o < table_size for o in offsets), "field offset")
    return tuple(table + o if o else 0 for o in offsets)


def aedat4_streams(path: os.PathLike) -> Dict[int, dict]:
    """``{stream id: {"type": "EVTS"|"FRME"|..., "width": W, "height": H}}`` from an AEDAT 4.0 header,
    after checking magic number, length, the ``IOHeader`` flatbuffer and its XML (the checks the
    ``aedat`` decoder does not make before reading the header)."""
    path = Path(path)
    what = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(AEDAT4_MAGIC) + 4)
        if not head.startswith(AEDAT4_MAGIC):
            version = head[:12].decode("latin-1") if head.startswith(b"#!AER-DAT") else None
            raise EventDataError(f"{what}: not an AEDAT 4.0 file (" + (f"it is {version}; only 4.0 is read"
                                 if version else f"it starts with {head[:14]!r}, expected {AEDAT4_MAGIC!r}") + ")")
        if len(head) < len(AEDAT4_MAGIC) + 4:
            raise EventDataError(f"{what}: truncated AEDAT 4 file (no header length)")
        (length,) = struct.unpack_from("<I", head, len(AEDAT4_MAGIC))
        if len(head) + length > size or length < 8:
            raise EventDataError(f"{what}: truncated or corrupt AEDAT 4 file (header of {length} bytes, file of "
                                 f"{size})")
        buffer = f.read(length)
    root = struct.unpack_from("<I", buffer, 0)[0]
    compression, _, description = _flatbuffer_table(buffer, root, 3, what)
    codec = struct.unpack_from("<i", buffer, compression)[0] if compression else 0
    if not 0 <= codec < len(AEDAT4_COMPRESSION):
        raise EventDataError(f"{what}: corrupt AEDAT 4 header (compression {codec})")
    if not description:
        raise EventDataError(f"{what}: corrupt AEDAT 4 header (no stream description)")
    start = description + struct.unpack_from("<I", buffer, description)[0]
    if start + 4 > len(buffer) or start + 4 + struct.unpack_from("<I", buffer, start)[0] > len(buffer):
        raise EventDataError(f"{what}: corrupt AEDAT 4 header (description outside the header)")
    text = buffer[start + 4:start + 4 + struct.unpack_from("<I", buffer, start)[0]]
    try:
        dv = ET.fromstring(text.decode("utf-8"))
    except (UnicodeDecodeError, ET.ParseError) as exc:
        raise EventDataError(f"{what}: corrupt AEDAT 4 header (stream description: {exc})") from None
    outputs = next((node for node in dv if node.tag == "node" and node.get("name") == "outInfo"), None)
    if dv.tag != "dv" or outputs is None:
        raise EventDataError(f"{what}: AEDAT 4 header describes no streams (no <dv><node name='outInfo'>)")
    streams = {}
    for node in outputs:
        if node.tag != "node":
            continue
        attrs = {a.get("key"): (a.text or "") for a in node if a.tag == "attr"}
        info = next((n for n in node if n.tag == "node" and n.get("name") == "info"), None)
        sizes = {a.get("key"): (a.text or "") for a in info if a.tag == "attr"} if info is not None else {}
        try:
            stream_id = int(node.get("name", ""))
            width, height = (int(sizes["sizeX"]), int(sizes["sizeY"])) if attrs.get("typeIdentifier") in (
                "EVTS", "FRME") else (0, 0)
        except (KeyError, ValueError):
            raise EventDataError(f"{what}: AEDAT 4 stream {node.get('name')!r} has no valid id, sizeX or "
                                 f"sizeY") from None
        streams[stream_id] = {"type": attrs.get("typeIdentifier", ""), "width": width, "height": height}
    return streams


def read_aedat4(path: os.PathLike) -> Tuple[np.ndarray, SensorSize]:
    """Polarity events of the first event stream of an AEDAT 4.0 file and its sensor size."""
    path = Path(path)
    streams = aedat4_streams(path)
    events_ids = sorted(i for i, s in streams.items() if s["type"] == "EVTS")
    if not events_ids:
        raise EventDataError(f"{path}: no event stream (EVTS) in this AEDAT 4 file, only "
                             f"{', '.join(s['type'] for s in streams.values()) or 'none'}")
    stream = events_ids[0]
    width, height = streams[stream]["width"], streams[stream]["height"]
    if not 0 < width <= 32767 or not 0 < height <= 32767:
        raise EventDataError(f"{path}: AEDAT 4 event stream {stream} has sensor size {width}x{height}")
    try:
        import aedat
    except ImportError:
        raise EventDataError(f"{path}: reading .aedat4 files needs the 'aedat' package (pip install aedat)") from None
    try:
        chunks = [packet["events"] for packet in aedat.Decoder(path) if packet["stream_id"] == stream]
    except (RuntimeError, OSError, ValueError) as exc:
        raise EventDataError(f"{path}: truncated or corrupt AEDAT 4 file ({exc})") from exc
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE), (width, height, POLARITIES)
    raw = np.concatenate(chunks)
    if raw["t"].size and raw["t"].max() > np.iinfo(np.int64).max:
        raise EventDataError(f"{path}: AEDAT 4 timestamps overflow int64 microseconds")
    events = make_events(raw["x"].astype(np.int64), raw["y"].astype(np.int64), raw["t"].astype(np.int64),
                         raw["on"].astype(bool))
    return events, (width, height, POLARITIES)


def _aedat4_description(width: int, height: int) -> bytes:
    base = "/mainloop/Recorder/outInfo/"
    attrs = (("compression", "string", "NONE"), ("originalModuleName", "string", "lava-spikeformer"),
             ("originalOutputName", "string", "events"),
             ("typeDescription", "string", "Array of events (polarity ON/OFF)."),
             ("typeIdentifier", "string", "EVTS"))
    stream = "".join(f'<attr key="{k}" type="{t}">{v}</attr>' for k, t, v in attrs)
    info = (f'<node name="info" path="{base}0/info/"><attr key="sizeX" type="int">{width}</attr>'
            f'<attr key="sizeY" type="int">{height}</attr>'
            f'<attr key="source" type="string">lava-spikeformer</attr></node>')
    return (f'<dv version="2.0"><node name="outInfo" path="{base}"><node name="0" path="{base}0/">{stream}{info}'
            f'</node></node></dv>').encode()


def _aedat4_header(description: bytes) -> bytes:
    """``IOHeader {compression: NONE, file_data_position: -1, description}`` as a flatbuffer."""
    vtable = struct.pack("<HHHHH", 10, 20, 4, 8, 16)                         # sizes, then 3 field offsets
    table = struct.pack("<iiqI", 24 - 8, 0, -1, 44 - 40)                    # at 24: soffset to the vtable at 8
    string = struct.pack("<I", len(description)) + description + b"\0"
    buffer = struct.pack("<I", 24) + b"IOHE" + vtable + b"\0" * 6 + table + string
    return buffer + b"\0" * (-len(buffer) % 8)


def _aedat4_packet(events: np.ndarray) -> bytes:
    """A size-prefixed ``EventPacket`` flatbuffer (identifier ``EVTS``) of 16-byte ``Event`` structs."""
    elements = np.zeros(len(events), dtype=_EVENT_STRUCT)
    elements["t"], elements["x"], elements["y"], elements["on"] = events["t"], events["x"], events["y"], events["p"]
    body = (struct.pack("<I", 16) + b"EVTS"                                   # root table at 4 + 16 = 20
            + struct.pack("<HHH", 6, 8, 4) + b"\0\0"                          # vtable at 12: one field at +4
            + struct.pack("<iI", 20 - 12, 28 - 24)                            # table at 20; vector at 28
            + struct.pack("<I", len(events)) + elements.tobytes())            # elements 8-aligned at 32
    return struct.pack("<I", len(body)) + body


def write_aedat4(path: os.PathLike, events: np.ndarray, sensor_size: Sequence[int], *,
                 packet_events: int = 4096) -> Path:
    """Events (tonic dtype) as an uncompressed AEDAT 4.0 file with one event stream of a
    ``sensor_size`` sensor, ``packet_events`` events per packet, in the order given."""
    path, sensor = Path(path), sensor_of(sensor_size)
    events = check_on_sensor(events, sensor, f"events for {path}")
    if int(packet_events) != packet_events or packet_events < 1:
        raise ValueError(f"packet_events must be an int >= 1, got {packet_events!r}")
    header = _aedat4_header(_aedat4_description(*sensor[:2]))
    with open(path, "wb") as f:
        f.write(AEDAT4_MAGIC + struct.pack("<I", len(header)) + header)
        for start in range(0, len(events), packet_events):
            packet = _aedat4_packet(events[start:start + packet_events])
            f.write(struct.pack("<iI", 0, len(packet)) + packet)
    return path


# ---------------------------------------------------------------------------- N-MNIST / ATIS .bin
def read_atis_bin(path: os.PathLike) -> Tuple[np.ndarray, None]:
    """Events of an N-MNIST/N-Caltech101 ``.bin`` file (``tonic.io.read_mnist_file``); the format
    does not store the sensor size."""
    path = Path(path)
    size = path.stat().st_size
    if size % 5:
        raise EventDataError(f"{path}: not an N-MNIST/ATIS .bin file ({size} bytes is not a multiple of the "
                             f"5-byte event)")
    from tonic.io import read_mnist_file
    events = read_mnist_file(str(path), dtype=EVENT_DTYPE)
    return np.ascontiguousarray(events), None


def write_atis_bin(path: os.PathLike, events: np.ndarray, sensor_size: Sequence[int]) -> Path:
    """Events as an N-MNIST ``.bin`` file (5 bytes per event, timestamps below 2**23 µs)."""
    path, sensor = Path(path), sensor_of(sensor_size)
    events = check_on_sensor(events, sensor, f"events for {path}")
    if sensor[0] > 256 or sensor[1] > ATIS_OVERFLOW_Y:
        raise EventDataError(f"{path}: the .bin format holds x < 256 and y < {ATIS_OVERFLOW_Y} (y = 240 marks a "
                             f"timestamp overflow); the sensor is {sensor[0]}x{sensor[1]}")
    t = events["t"].astype(np.int64)
    if len(t) and (t.min() < 0 or t.max() >= 2 ** ATIS_TIME_BITS):
        raise EventDataError(f"{path}: the .bin format holds timestamps 0 <= t < 2**{ATIS_TIME_BITS} µs, the events "
                             f"span {int(t.min())}..{int(t.max())}")
    raw = np.empty((len(events), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = events["x"], events["y"]
    raw[:, 2] = (events["p"].astype(np.uint8) << 7) | (t >> 16)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    path.write_bytes(raw.tobytes())
    return path


# ---------------------------------------------------------------------------- HAR-DVS .npz, tonic .npy
def _read_npz(path: Path) -> Tuple[np.ndarray, None]:
    from .hardvs import read_event_npz
    return read_event_npz(path), None


def _write_npz(path: Path, events: np.ndarray, sensor_size: Sequence[int]) -> Path:
    from .fixtures import write_event_npz
    return write_event_npz(path, check_on_sensor(events, sensor_of(sensor_size), f"events for {path}"))


def read_event_npy(path: os.PathLike) -> Tuple[np.ndarray, None]:
    """A structured event array saved with ``numpy.save`` (fields x, y, t, p; no pickles)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except NUMPY_FILE_ERRORS as exc:
        raise EventDataError(f"{path}: unreadable .npy file ({exc})") from exc
    events = require_events(array, f"{path}: the array")
    return make_events(events["x"], events["y"], events["t"], events["p"]), None


def write_event_npy(path: os.PathLike, events: np.ndarray, sensor_size: Sequence[int]) -> Path:
    path = Path(path)
    with open(path, "wb") as f:                       # np.save(str) would append .npy to any other suffix
        np.save(f, check_on_sensor(events, sensor_of(sensor_size), f"events for {path}"), allow_pickle=False)
    return path


FORMATS: Dict[str, RecordingFormat] = {
    ".aedat4": RecordingFormat("AEDAT 4.0 (DV/DAVIS)", read_aedat4, write_aedat4),
    ".bin": RecordingFormat("N-MNIST/ATIS .bin", read_atis_bin, write_atis_bin, hint=" (N-MNIST: 34 34)"),
    ".npz": RecordingFormat("HAR-DVS .npz", _read_npz, _write_npz, default_sensor=DAVIS346),
    ".npy": RecordingFormat("tonic event array .npy", read_event_npy, write_event_npy),
}


def _format_of(path: Path) -> RecordingFormat:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{s} ({f.name})" for s, f in FORMATS.items())
        raise EventDataError(f"{path}: unknown recording type {suffix or '(no suffix)'!r}; readable: {known}")
    return FORMATS[suffix]


def read_recording(path: os.PathLike, sensor_size: Optional[Sequence[int]] = None) -> Recording:
    """The events and sensor of one recording file (the format from its suffix, see the module
    docstring). ``sensor_size`` ``(W, H)``: required where the format does not store it, checked
    against the file where it does. Events must lie on the sensor."""
    path = Path(path)
    fmt = _format_of(path)
    given = sensor_of(sensor_size) if sensor_size is not None else None
    if not path.exists():
        raise EventDataError(f"{path}: recording not found")
    if not path.is_file():
        raise EventDataError(f"{path}: not a file")
    try:
        events, stored = fmt.read(path)
    except EventDataError:
        raise
    except (OSError, ValueError) as exc:
        raise EventDataError(f"{path}: unreadable {fmt.name} file ({exc})") from exc
    if stored is not None and given is not None and stored[:2] != given[:2]:
        raise EventDataError(f"{path}: the file records a {stored[0]}x{stored[1]} sensor, but the sensor size given "
                             f"is {given[0]}x{given[1]}")
    sensor = given or stored or fmt.default_sensor
    if sensor is None:
        raise EventDataError(f"{path}: {fmt.name} files do not record the sensor size; give it as W H "
                             f"(--sensor W H{fmt.hint})")
    if not len(events):
        raise EventDataError(f"{path}: the recording holds no events")
    return Recording(path, check_on_sensor(events, sensor, str(path)), sensor, fmt.name)


def write_recording(path: os.PathLike, events: np.ndarray, sensor_size: Sequence[int]) -> Path:
    """Write ``events`` (tonic dtype) of a ``sensor_size`` sensor in the format of ``path``'s suffix;
    ``read_recording`` reads it back (formats that do not store the sensor need it again)."""
    path = Path(path)
    return _format_of(path).write(path, events, sensor_size)
