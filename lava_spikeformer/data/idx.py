"""Fashion-MNIST's IDX files read with numpy only (Debian ``dataset-fashion-mnist`` or any folder holding
them): shared by the torch data sets and the torch-free event emulation.

Read with numpy rather than torchvision: torchvision has no CPU wheel matching torch 2.3.1
here and its loader would try to download. Every malformed input raises ``DataError`` naming
the file and what was expected.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..graph.input import KNOWN_DATASETS

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
MEAN, STD = KNOWN_DATASETS["fmnist"]["mean"][0], KNOWN_DATASETS["fmnist"]["std"][0]
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049


class DataError(ValueError):
    """A data file is missing, corrupt, or not what the model expects."""


def default_data_dir() -> Path:
    return Path(os.environ.get("LAVA_SPIKEFORMER_DATA", DEBIAN_DIR))


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Fashion-MNIST file {root / (stem + '.gz')} not found. Install Debian's '{DEBIAN_PACKAGE}' "
        f"package (apt-get install {DEBIAN_PACKAGE}) or pass --data-dir pointing to a folder with the "
        f"four *-ubyte[.gz] IDX files.")


def read_idx(path: Path, magic: int, item_shape: Tuple[int, ...]) -> np.ndarray:
    """Parse one IDX file; checks magic number, dimensions and payload size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    ndim = len(item_shape) + 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected >= {header})")
    found_magic = int.from_bytes(raw[:4], "big")
    if found_magic != magic:
        raise DataError(f"{path}: IDX magic {found_magic}, expected {magic}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims[1:] != item_shape:
        raise DataError(f"{path}: item shape {dims[1:]}, expected {item_shape}")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, expected {expected} for {dims[0]} items of {item_shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def fashion_mnist_arrays(split: str, data_dir: Optional[os.PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``(uint8 images [N, 28, 28], int64 labels [N])`` of ``split``, validated."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    image_stem, label_stem, _ = FILES[split]
    image_path, label_path = _find(root, image_stem), _find(root, label_stem)
    images = read_idx(image_path, _IMAGE_MAGIC, (28, 28))
    labels = read_idx(label_path, _LABEL_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASSES):
        raise DataError(f"{label_path}: label {labels.max()} out of range 0..{len(CLASSES) - 1}")
    return images, labels.astype(np.int64)
