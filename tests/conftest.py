"""Shared fixtures and helpers (test modules import helpers from here, never from each other)."""
import gzip
import io
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from lava_spikeformer.fileio import seal_hdf5
from lava_spikeformer.nn.fold import neuron_sources

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "netx_models" / "meta_spikeformer_small28_fmnist.pt"
EVENT_MODEL = ROOT / "netx_models" / "meta_spikeformer_hardvs_medium_fmnist_dvs.pt"


@contextmanager
def edited_export(path: Path):
    """An export opened with h5py for editing, sealed again afterwards: it then reads as a file our
    writer produced with these contents (the seal detects damage, it is no signature), so what a test
    exercises is the reader's validation of the fields."""
    with h5py.File(path, "a") as f:
        yield f
    seal_hdf5(path)


def write_bomb_png(path: Path, side: int = 30_000) -> Path:
    """A 2x2 PNG whose header claims ``side`` x ``side`` pixels (valid CRC): PIL refuses it with
    ``DecompressionBombError``, which is no OSError."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "white").save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", side, side)                       # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))    # IHDR CRC over type + fields
    path.write_bytes(bytes(data))
    return path


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.2)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.5 + 0.3)
    return model


def torch_run(model, x, nodes):
    """Logits and the spikes of every exported neuron, via forward hooks, ``{node: [T, B, ...]}``."""
    sources = neuron_sources(model)
    spikes, handles = {}, []

    def record(name):
        def hook(module, inputs, output):
            spikes.setdefault(name, output.detach().numpy().copy())    # first call (the KD head reuses the LIF)
        return hook

    for name, module in sources.items():
        if name in nodes:
            handles.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            logits = model(x).numpy()
    finally:
        for h in handles:
            h.remove()
    return logits, spikes


def write_tree(root: Path, per_class: dict, size: int = 32) -> Path:
    """``root/<split>/<class>/<i>.png`` of random RGB images: ``per_class[split]`` images per class."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def fmnist_dir(tmp_path):
    """A valid, tiny Fashion-MNIST tree (16 train / 8 test images) in the real IDX format."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 16), ("t10k", 8)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)), 2049)
    return tmp_path
