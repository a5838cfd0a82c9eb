"""HAR-DVS (Wang et al. 2022: 300 human activities, DAVIS346) as a tonic-style dataset, both releases.

HAR-DVS cannot be downloaded by code (Baidu Netdisk links in Event-AHU/HARDVS); this module reads
the two public releases as they are laid out after extraction.

**Events release** ("Compact Event file", ``MINI_HARDVS_files``; layout as SpikingJelly's loader
extracts it)::

    ROOT/train_label.txt, val_label.txt, test_label.txt
    ROOT/action_001/dvSave-2021_10_15_19_18_02.npz      keys t, x, y, p (one array each)
    ROOT/HARDVS_300_class.txt                            optional (must agree with the published one)

A list line is ``action_NNN/dvSave-... [label]``. The class is the folder's ``NNN - 1`` (0..299),
as SpikingJelly derives it; a label column, when present, must agree with it, 0- or 1-based
consistently within the file (the release does not document which). ``t`` is in µs and integer,
``x``/``y`` integer pixels, ``p`` bool or integer with ``p > 0`` = ON. ``dataset[i]`` returns the
events exactly as stored (tonic dtype; not sorted, not clipped) -- the ``frame_transform``
pipeline sorts them and drops events outside the 346x260 sensor. Entries whose ``.npz`` is absent
from the archive (Event-AHU/HARDVS#8) are skipped with one warning that names them.

**Frames release** ("Event Images", mmaction2 ``RawframeDataset``)::

    ROOT/rawframes/<frame_dir>/00000001.png ...          ``{:08}.png``; the first is 0 or 1
    ROOT/HarDvs300_list/train_label.txt, ...             or ROOT/train_label.txt, ...

A list line is ``<frame_dir> <total_frames> <label>``, label 0-based (mmaction's cross-entropy over
300 classes). HAR-DVS's own PNG writer is unpublished; Event-AHU's writer for the same DAVIS346
``dvSave`` recordings (VisEvent_SOT_Benchmark ``scripts/read_aedat4.py``) paints a white
346x260 image, ON events red (RGB 220, 30, 30), OFF events blue (30, 30, 200), the last event of
a pixel winning. A pixel therefore decodes to an OFF indicator where blue dominates red and
green, ON where red dominates, nothing elsewhere: ``uint8 (2, H, W)`` 0/1 in tonic's channel
order (0 = OFF, 1 = ON). ``dataset[i]`` returns ``n_frames`` PNGs sampled as mmaction's
``SampleFrames(clip_len=1, num_clips=n_frames, test_mode=True)`` (the middle frame of each of
``n_frames`` equal segments; a short clip repeats frames): ``uint8 (n_frames, 2, H, W)``.
Listed frame folders that do not exist are skipped with one warning, like missing ``.npz``.

``model_transform`` brings both releases to the same model input: short side scaled to the model's
size (tonic ``Downsample``, ``int(x * factor)``), tonic ``CenterCrop``, ``(T, 2, H, W)`` counts --
for PNG indicators the same geometry is applied by ``FitFrames``, so a pixel-event and a PNG pixel
land in the same model pixel.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from .events import EVENT_DTYPE, IMAGE_FILE_ERRORS, NUMPY_FILE_ERRORS, EventDataError, make_events
from .transforms import frame_transform

SENSOR_SIZE = (346, 260, 2)          # tonic's (W, H, P) of the DAVIS346
NUM_CLASSES = 300
SPLITS = ("train", "val", "test")
RELEASES = ("events", "frames")
CLASS_FILE = "HARDVS_300_class.txt"
#: the class file as Event-AHU/HARDVS publishes it (commit a770ff5, Apache-2.0), shipped as package data
PUBLISHED_CLASS_FILE = Path(__file__).with_name(CLASS_FILE)
FRAME_LIST_DIR = "HarDvs300_list"
FRAME_ROOT = "rawframes"
FRAME_NAME = "{:08}.png"
ON_RGB = (220, 30, 30)               # Event-AHU's event-image colours, as RGB
OFF_RGB = (30, 30, 200)
BACKGROUND_RGB = (255, 255, 255)
NPZ_KEYS = ("t", "x", "y", "p")

_CLASS_LINE = re.compile(r"^Action(\d+)\s*(?:-\s*)?(.*?)\s*$")
_EVENT_ENTRY = re.compile(r"^action_(\d{3})/[^/]+$")
_INT16 = np.iinfo(np.int16)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EventDataError(f"{path}: not a UTF-8 text file ({exc})") from exc


def parse_class_file(path: os.PathLike) -> Tuple[str, ...]:
    """The 300 names of ``HARDVS_300_class.txt``, whose lines separate ``ActionNNN`` from the
    name by ``-``, ``- ``, `` - `` or a space (all occur in the real file)."""
    path = Path(path)
    names = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        match = _CLASS_LINE.match(line.strip())
        if match is None or not match.group(2):
            raise EventDataError(f"{path}:{lineno}: expected 'ActionNNN<separator><name>', got {line!r}")
        number = int(match.group(1))
        if not 1 <= number <= NUM_CLASSES or number in names:
            raise EventDataError(f"{path}:{lineno}: Action{number:03d} is "
                                 f"{'listed twice' if number in names else 'outside Action001..Action300'}")
        names[number] = match.group(2)
    absent = [n for n in range(1, NUM_CLASSES + 1) if n not in names]
    if absent:
        raise EventDataError(f"{path}: {len(absent)} of {NUM_CLASSES} classes missing, e.g. "
                             f"{', '.join(f'Action{n:03d}' for n in absent[:5])}")
    return tuple(names[n] for n in range(1, NUM_CLASSES + 1))


def check_class_file(path: os.PathLike, published: Tuple[str, ...]) -> Tuple[str, ...]:
    """The names of a release folder's own ``HARDVS_300_class.txt``, refused unless they are the
    published ones."""
    names = parse_class_file(path)
    differ = [n for n, (a, b) in enumerate(zip(names, published), 1) if a != b]
    if differ:
        n = differ[0]
        raise EventDataError(f"{path}: {len(differ)} class name(s) differ from the published {CLASS_FILE} "
                             f"(Event-AHU/HARDVS), e.g. Action{n:03d} is {names[n - 1]!r} here, {published[n - 1]!r} "
                             f"there; the labels of this folder would not mean what the model's classes mean")
    return names


def find_list_file(root: os.PathLike, split: str) -> Path:
    """``ROOT/<split>_label.txt`` (events release) or ``ROOT/HarDvs300_list/<split>_label.txt``."""
    root = Path(root)
    candidates = (root / f"{split}_label.txt", root / FRAME_LIST_DIR / f"{split}_label.txt")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EventDataError(f"{candidates[0]}: HAR-DVS list file missing (also looked for {candidates[1]})")


def _list_lines(list_file: Path) -> List[Tuple[int, List[str]]]:
    lines = [(n, line.split()) for n, line in enumerate(_read_text(list_file).splitlines(), 1) if line.strip()]
    if not lines:
        raise EventDataError(f"{list_file}: empty list file")
    return lines


def detect_release(list_file: os.PathLike) -> str:
    """``"frames"`` if the first line has mmaction's three columns, else ``"events"``."""
    return "frames" if len(_list_lines(Path(list_file))[0][1]) == 3 else "events"


def _int_field(list_file: Path, lineno: int, name: str, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise EventDataError(f"{list_file}:{lineno}: {name} must be an integer, got {token!r}") from None


@dataclass(frozen=True)
class Clip:
    """One listed clip: its ``.npz`` file or frame folder, class, and (frames release) PNG count."""
    path: Path
    label: int
    total_frames: int
    line: int


def _event_clips(list_file: Path, root: Path) -> List[Clip]:
    clips, base = [], None
    for lineno, tokens in _list_lines(list_file):
        match = _EVENT_ENTRY.match(tokens[0])
        if len(tokens) > 2 or match is None:
            raise EventDataError(f"{list_file}:{lineno}: expected 'action_NNN/<clip> [label]' (events release), "
                                 f"got {' '.join(tokens)!r}")
        label = int(match.group(1)) - 1
        if not 0 <= label < NUM_CLASSES:
            raise EventDataError(f"{list_file}:{lineno}: class folder action_{match.group(1)} is outside "
                                 f"action_001..action_{NUM_CLASSES:03d}")
        if len(tokens) == 2:
            offset = _int_field(list_file, lineno, "label", tokens[1]) - label
            if base is None and offset in (0, 1):
                base = offset
            if offset != base:
                expected = f"{label + base}" if base is not None else f"{label} (0-based) or {label + 1} (1-based)"
                raise EventDataError(f"{list_file}:{lineno}: label {tokens[1]} does not match folder "
                                     f"action_{match.group(1)}; expected {expected}")
        clips.append(Clip(root / f"{tokens[0]}.npz", label, 0, lineno))
    return clips


def _frame_clips(list_file: Path, frame_root: Path) -> List[Clip]:
    clips = []
    for lineno, tokens in _list_lines(list_file):
        if len(tokens) != 3:
            raise EventDataError(f"{list_file}:{lineno}: expected '<frame_dir> <total_frames> <label>' "
                                 f"(frames release), got {' '.join(tokens)!r}")
        total = _int_field(list_file, lineno, "total_frames", tokens[1])
        label = _int_field(list_file, lineno, "label", tokens[2])
        if total < 1:
            raise EventDataError(f"{list_file}:{lineno}: total_frames must be >= 1, got {total}")
        if not 0 <= label < NUM_CLASSES:
            raise EventDataError(f"{list_file}:{lineno}: label {label} out of range 0..{NUM_CLASSES - 1}")
        clips.append(Clip(frame_root / tokens[0], label, total, lineno))
    return clips


def read_event_npz(path: os.PathLike) -> np.ndarray:
    """Events of one HAR-DVS ``.npz`` (keys ``t, x, y, p``) as tonic's structured array, unsorted."""
    path = Path(path)
    try:
        archive = np.load(path)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise EventDataError(f"{path}: a single array, not an .npz archive with keys {', '.join(NPZ_KEYS)}")
        with archive:
            absent = [key for key in NPZ_KEYS if key not in archive.files]
            if absent:
                raise EventDataError(f"{path}: no key(s) {', '.join(absent)} (has {', '.join(archive.files) or 'none'}"
                                     f"); HAR-DVS .npz files hold {', '.join(NPZ_KEYS)}")
            columns = {key: archive[key] for key in NPZ_KEYS}
    except EventDataError:
        raise
    except NUMPY_FILE_ERRORS as exc:
        raise EventDataError(f"{path}: unreadable .npz ({exc})") from exc
    for key, column in columns.items():
        kinds = "biu" if key == "p" else "iu"
        if column.dtype.kind not in kinds:
            raise EventDataError(f"{path}: key {key!r} has dtype {column.dtype}, expected "
                                 f"{'bool or integer' if key == 'p' else 'integer'}"
                                 f"{' microseconds' if key == 't' else ''}")
    if len({c.shape for c in columns.values()}) != 1 or columns["t"].ndim != 1:
        raise EventDataError(f"{path}: t, x, y, p must be 1-D of equal length, got shapes "
                             f"{[columns[k].shape for k in NPZ_KEYS]}")
    for key in ("x", "y"):
        column = columns[key]
        if column.size and (column.min() < _INT16.min or column.max() > _INT16.max):
            raise EventDataError(f"{path}: key {key!r} holds values outside int16 (tonic's coordinate type)")
    return make_events(columns["x"], columns["y"], columns["t"], columns["p"] > 0)


def decode_event_png(path: os.PathLike) -> np.ndarray:
    """One Event-AHU event image -> ``uint8 (2, H, W)`` indicators, channel 0 OFF (blue), 1 ON (red)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("RGB", "RGBA", "P"):
                raise EventDataError(f"{path}: {image.mode} image; HAR-DVS event frames are colour "
                                     f"(ON red, OFF blue on white)")
            rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    except EventDataError:
        raise
    except FileNotFoundError:
        raise EventDataError(f"{path}: frame missing") from None
    except IMAGE_FILE_ERRORS as exc:
        raise EventDataError(f"{path}: unreadable PNG ({exc})") from exc
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    off = (blue > red) & (blue > green)
    on = (red > blue) & (red > green)
    return np.stack([off, on]).astype(np.uint8)


def sample_frame_indices(total_frames: int, n_frames: int) -> np.ndarray:
    """0-based frame indices of mmaction's test-mode ``SampleFrames(clip_len=1, num_clips=n_frames)``:
    the middle of each of ``n_frames`` equal segments (frames repeat when the clip is shorter)."""
    segment = total_frames / n_frames
    return (np.arange(n_frames) * segment + segment / 2).astype(np.int64)


def fit_factor(height: int, width: int, size: Tuple[int, int]) -> float:
    """Downsampling factor that makes a ``height x width`` image cover ``size`` (H, W); never > 1."""
    return min(1.0, max(size[0] / height, size[1] / width))


def _pixel_map(n: int, factor: float, out: int) -> Tuple[np.ndarray, np.ndarray]:
    """Source pixels 0..n-1 that survive Downsample + CenterCrop, and where they land (as tonic does)."""
    scaled = (np.arange(n) * factor).astype(np.int64)          # tonic: int16 field <- x * factor
    scaled_n = int(n * factor)
    offset = (scaled_n - out) // 2
    start = max(offset, 0)
    keep = (scaled < scaled_n) & (scaled >= start) & (scaled < start + out)
    target = scaled - offset
    keep &= (target >= 0) & (target < out)
    return np.nonzero(keep)[0], target[keep]


@dataclass(frozen=True)
class FitFrames:
    """``(T, P, H, W)`` counts -> ``int16 (T, P, size)``: the geometry of ``frame_transform``'s
    ``Downsample(fit_factor)`` + ``CenterCrop(size)`` on pixels instead of events (counts summed)."""
    size: Tuple[int, int]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise EventDataError(f"expected frames of shape (T, P, H, W), got {frames.shape}")
        height, width = frames.shape[-2:]
        factor = fit_factor(height, width, self.size)
        (ys, ty), (xs, tx) = _pixel_map(height, factor, self.size[0]), _pixel_map(width, factor, self.size[1])
        rows = np.zeros((self.size[0], height), dtype=np.float32)
        rows[ty, ys] = 1
        cols = np.zeros((self.size[1], width), dtype=np.float32)
        cols[tx, xs] = 1
        return np.rint(rows @ frames.astype(np.float32) @ cols.T).astype(np.int16)


def model_transform(release: str, n_time_bins: int, size: Tuple[int, int]) -> Callable:
    """Transform to ``(n_time_bins, 2, size)`` frames for one release (see the module docstring)."""
    if release == "events":
        width, height, _ = SENSOR_SIZE
        return frame_transform(SENSOR_SIZE, n_time_bins=n_time_bins, size=size,
                               downsample=fit_factor(height, width, size))
    if release == "frames":
        return FitFrames(tuple(size))
    raise ValueError(f"release must be one of {RELEASES}, got {release!r}")


class HARDVS:
    """tonic-style HAR-DVS: ``dataset[i] -> (events, label)`` (events release) or
    ``(uint8 frames (n_frames, 2, H, W), label)`` (frames release); see the module docstring.

    ``release="auto"`` picks the release from the list file's column count. ``transform`` /
    ``target_transform`` are applied as in tonic; ``missing`` holds the listed clips that are absent
    and skipped.

    Like tonic's datasets, the class declares its format: ``classes`` (the 300 names of the published
    ``HARDVS_300_class.txt``; a release folder's own copy must agree), ``sensor_size`` (W, H, P) of the
    DAVIS346, the event ``dtype`` and its field ``ordering``.
    """
    classes = parse_class_file(PUBLISHED_CLASS_FILE)
    sensor_size = SENSOR_SIZE
    dtype = EVENT_DTYPE
    ordering = EVENT_DTYPE.names

    def __init__(self, root: os.PathLike, split: str = "train", *, release: str = "auto", n_frames: int = 8,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None):
        if root is None:
            raise EventDataError("HAR-DVS needs its release folder (--root PATH)")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if release not in RELEASES + ("auto",):
            raise ValueError(f"release must be 'auto' or one of {RELEASES}, got {release!r}")
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise EventDataError(f"{self.root}: HAR-DVS folder not found")
        self.split, self.n_frames = split, n_frames
        self.transform, self.target_transform = transform, target_transform
        self.list_file = find_list_file(self.root, split)
        detected = detect_release(self.list_file)
        if release != "auto" and release != detected:
            raise EventDataError(f"{self.list_file}: lines are in the {detected} release's format, "
                                 f"but release={release!r} was asked for")
        self.release = detected
        self._check_class_file()
        if detected == "events":
            listed = _event_clips(self.list_file, self.root)
            present = [clip.path.is_file() for clip in listed]
        else:
            frame_root = self.root / FRAME_ROOT if (self.root / FRAME_ROOT).is_dir() else self.root
            listed = _frame_clips(self.list_file, frame_root)
            present = [clip.path.is_dir() for clip in listed]
        self.clips = [clip for clip, ok in zip(listed, present) if ok]
        self.missing = tuple(str(clip.path.relative_to(self.root)) for clip, ok in zip(listed, present) if not ok)
        if self.missing:
            what = ".npz file (a known defect of the archive, Event-AHU/HARDVS#8)" if detected == "events" \
                else "frame folder"
            warnings.warn(f"{self.list_file}: {len(self.missing)} of {len(listed)} listed clips have no {what} and "
                          f"are skipped: {', '.join(self.missing[:5])}{', ...' if len(self.missing) > 5 else ''}",
                          stacklevel=2)
        if not self.clips:
            raise EventDataError(f"{self.list_file}: none of the {len(listed)} listed clips exist under {self.root}")
        self.targets = np.array([clip.label for clip in self.clips], dtype=np.int64)

    def _check_class_file(self) -> None:
        for folder in dict.fromkeys((self.root, self.list_file.parent)):
            if (folder / CLASS_FILE).is_file():
                check_class_file(folder / CLASS_FILE, self.classes)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        clip = self.clips[index % len(self)]
        data = read_event_npz(clip.path) if self.release == "events" else self._frames(clip)
        target = clip.label
        if self.transform is not None:
            data = self.transform(data)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return data, target

    def _frames(self, clip: Clip) -> np.ndarray:
        start = 0 if (clip.path / FRAME_NAME.format(0)).is_file() else 1
        indices = sample_frame_indices(clip.total_frames, self.n_frames).tolist()
        decoded = {}
        for index in dict.fromkeys(indices):
            path = clip.path / FRAME_NAME.format(start + index)
            if not path.is_file():
                raise EventDataError(f"{path}: frame missing ({self.list_file}:{clip.line} lists "
                                     f"{clip.total_frames} frames, numbered from {start})")
            frame = decode_event_png(path)
            first = next(iter(decoded.values()), frame)
            if frame.shape != first.shape:
                raise EventDataError(f"{path}: {frame.shape[2]}x{frame.shape[1]} image, earlier frames of the "
                                     f"clip are {first.shape[2]}x{first.shape[1]}")
            decoded[index] = frame
        return np.stack([decoded[index] for index in indices])

    def cache_key(self) -> str:
        digest = hashlib.sha1(self.list_file.read_bytes()).hexdigest()[:12]
        frames = f"-n{self.n_frames}" if self.release == "frames" else ""
        return f"hardvs-{self.release}-{self.split}{frames}-{self.root.resolve()}-{digest}-{len(self)}"


def hardvs_for_model(root: os.PathLike, split: str, *, n_time_bins: int, size: Tuple[int, int],
                     release: str = "auto") -> HARDVS:
    """HAR-DVS whose samples are ``(n_time_bins, 2, size)`` model frames, for either release."""
    if root is None:
        raise EventDataError("HAR-DVS needs its release folder (--root PATH)")
    if release == "auto":
        release = detect_release(find_list_file(root, split))
    return HARDVS(root, split, release=release, n_frames=n_time_bins,
                  transform=model_transform(release, n_time_bins, size))

