"""Tiny HAR-DVS trees in the exact layouts of both releases, for tests and for trying the pipeline.

Everything is deterministic in ``seed``; the returned ``FixtureTree`` holds what was written (the
events of each ``.npz``, the ON/OFF masks painted into each PNG) so tests can compare exactly.
Layouts and formats are documented in ``event_data/hardvs.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .events import make_events
from .hardvs import (BACKGROUND_RGB, CLASS_FILE, FRAME_LIST_DIR, FRAME_NAME, FRAME_ROOT, HARDVS, NUM_CLASSES,
                     OFF_RGB, ON_RGB, SENSOR_SIZE)

#: the separators of the real ``HARDVS_300_class.txt`` (``Action001-L type``, ``Action002 wink_``,
#: ``Action014- Alternate``, ``Action116 - jumping jack``), cycled through by the fixture
CLASS_SEPARATORS = ("-", " ", "- ", " - ")
#: DAVIS346 timestamps are absolute µs; the fixture's clips start on 2021-10-15 like the release's
T0_US = 1_634_296_682_000_000
#: default clips per label and split
CLIPS_PER_LABEL = MappingProxyType({"train": 2, "val": 1, "test": 1})


@dataclass(frozen=True)
class FixtureClip:
    entry: str                      # list-file entry: action_NNN/dvSave-...
    label: int                      # 0-based class
    events: Optional[np.ndarray]    # events release: the .npz content (tonic dtype)
    masks: Optional[np.ndarray]     # frames release: uint8 (total_frames, 2, H, W) OFF/ON painted per PNG
    missing: bool                   # listed, but its .npz / frame folder was not written


@dataclass(frozen=True)
class FixtureTree:
    root: Path
    splits: Dict[str, Tuple[FixtureClip, ...]]      # every listed clip, in list order

    def present(self, split: str) -> Tuple[FixtureClip, ...]:
        return tuple(clip for clip in self.splits[split] if not clip.missing)


def class_name(number: int) -> str:
    """The published name of class ``ActionNNN`` (1-based)."""
    return HARDVS.classes[number - 1]


def write_class_file(path: os.PathLike, names=None) -> Path:
    """300 lines ``ActionNNN<sep><name>`` of ``names`` (default: the published ones), with the real
    file's separators cycled through."""
    path = Path(path)
    names = HARDVS.classes if names is None else names
    path.write_text("\n".join(f"Action{n:03d}{CLASS_SEPARATORS[n % len(CLASS_SEPARATORS)]}{names[n - 1]}"
                              for n in range(1, NUM_CLASSES + 1)))
    return path


def write_event_npz(path: os.PathLike, events: np.ndarray) -> Path:
    """One clip as HAR-DVS stores it: keys t (int64 µs), x, y (int16), p (int8 0/1), compressed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, t=events["t"].astype(np.int64), x=events["x"].astype(np.int16),
                        y=events["y"].astype(np.int16), p=events["p"].astype(np.int8))
    return path


def render_event_png(path: os.PathLike, masks: np.ndarray) -> Path:
    """Paint ``(2, H, W)`` OFF/ON masks as Event-AHU does: white, OFF blue, ON red."""
    image = np.empty((*masks.shape[1:], 3), dtype=np.uint8)
    image[:] = BACKGROUND_RGB
    image[masks[0].astype(bool)] = OFF_RGB
    image[masks[1].astype(bool)] = ON_RGB
    Image.fromarray(image, "RGB").save(path)
    return Path(path)


def _clip_name(counter: int) -> str:
    return f"dvSave-2021_10_15_{19 + counter // 3600:02d}_{counter // 60 % 60:02d}_{counter % 60:02d}"


def _entries(labels: Sequence[int], clips: Mapping[str, int]):
    """(split, index in split, entry, label) for every listed clip; names unique across splits."""
    counter = 0
    for split, per_label in clips.items():
        index = 0
        for label in labels:
            if not 0 <= label < NUM_CLASSES:
                raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}, got {label}")
            for _ in range(per_label):
                yield split, index, f"action_{label + 1:03d}/{_clip_name(counter)}", label
                counter += 1
                index += 1


def random_events(rng: np.random.Generator, count: int, duration_us: int = 2_000_000) -> np.ndarray:
    """``count`` events on the DAVIS346, time-sorted, starting at ``T0_US``."""
    width, height, _ = SENSOR_SIZE
    return make_events(rng.integers(0, width, count), rng.integers(0, height, count),
                       T0_US + np.sort(rng.integers(0, duration_us, count)), rng.integers(0, 2, count).astype(bool))


def write_hardvs_events_tree(root: os.PathLike, *, labels: Sequence[int] = (0, 1, 299),
                             clips: Mapping[str, int] = CLIPS_PER_LABEL,
                             events_per_clip: int = 500, missing: int = 0, label_base: Optional[int] = 0,
                             class_file: bool = True, seed: int = 0) -> FixtureTree:
    """Events-release tree: ``<split>_label.txt`` + ``action_NNN/dvSave-*.npz`` (+ class file).

    ``clips`` is clips per label per split; the first ``missing`` train entries are listed but get
    no ``.npz`` (HARDVS#8); ``label_base`` 0/1 writes the label column 0-/1-based, None omits it.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: Dict[str, list] = {split: [] for split in clips}
    for split, index, entry, label in _entries(labels, clips):
        absent = split == "train" and index < missing
        events = random_events(rng, events_per_clip)
        if not absent:
            write_event_npz(root / f"{entry}.npz", events)
        splits[split].append(FixtureClip(entry, label, events, None, absent))
    for split, listed in splits.items():
        column = "" if label_base is None else " {}"
        (root / f"{split}_label.txt").write_text(
            "".join(f"{clip.entry}{column.format(clip.label + (label_base or 0))}\n" for clip in listed))
    if class_file:
        write_class_file(root / CLASS_FILE)
    return FixtureTree(root, {split: tuple(listed) for split, listed in splits.items()})


def write_hardvs_frames_tree(root: os.PathLike, *, labels: Sequence[int] = (0, 1, 299),
                             clips: Mapping[str, int] = CLIPS_PER_LABEL,
                             frames_per_clip: Sequence[int] = (10, 5, 13), events_per_frame: int = 300,
                             start_index: int = 1, missing: int = 0, class_file: bool = True,
                             seed: int = 0) -> FixtureTree:
    """Frames-release tree: ``HarDvs300_list/<split>_label.txt`` (``dir total label``, 0-based) +
    ``rawframes/<dir>/{:08}.png`` numbered from ``start_index`` (mmaction 1.x: 1; HARDVS v1: 0).

    Clip lengths cycle through ``frames_per_clip`` (5 < T=8 exercises repeated frames); each PNG
    paints ``events_per_frame`` random events, the last event of a pixel winning.
    """
    root = Path(root)
    width, height, _ = SENSOR_SIZE
    rng = np.random.default_rng(seed)
    splits: Dict[str, list] = {split: [] for split in clips}
    for number, (split, index, entry, label) in enumerate(_entries(labels, clips)):
        total = frames_per_clip[number % len(frames_per_clip)]
        absent = split == "train" and index < missing
        masks = np.zeros((total, 2, height, width), dtype=np.uint8)
        for frame in masks:
            ys, xs = rng.integers(0, height, events_per_frame), rng.integers(0, width, events_per_frame)
            polarity = rng.integers(0, 2, events_per_frame)
            last = np.full((height, width), -1)
            np.maximum.at(last, (ys, xs), np.arange(events_per_frame))     # the last event of a pixel wins
            frame[polarity[last[ys, xs]], ys, xs] = 1
        if not absent:
            folder = root / FRAME_ROOT / entry
            folder.mkdir(parents=True, exist_ok=True)
            for k, frame in enumerate(masks):
                render_event_png(folder / FRAME_NAME.format(start_index + k), frame)
        splits[split].append(FixtureClip(entry, label, None, masks, absent))
    (root / FRAME_LIST_DIR).mkdir(parents=True, exist_ok=True)
    for split, listed in splits.items():
        (root / FRAME_LIST_DIR / f"{split}_label.txt").write_text(
            "".join(f"{clip.entry} {len(clip.masks)} {clip.label}\n" for clip in listed))
    if class_file:
        write_class_file(root / FRAME_LIST_DIR / CLASS_FILE)
    return FixtureTree(root, {split: tuple(listed) for split, listed in splits.items()})
