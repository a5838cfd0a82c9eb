"""Atomic file writes, sealed HDF5 files and the one safe torch-file loader: nothing heavy imported at
module level, so the torch-free core can use them."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path


def atomic_write(path: os.PathLike, write) -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves a
    half-written file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Our HDF5 files start with a 512-byte user block, which HDF5 leaves to applications (every reader,
#: netx included, finds the superblock after it). It holds this tag and the SHA-256 of the rest of the
#: file, checked before libhdf5 parses a byte: libhdf5 can crash the interpreter on a damaged file
#: (one flipped byte of the shipped small28 export segfaulted ``read_graph``).
SEAL_TAG = b"lava-spikeformer sha256 "
USER_BLOCK = 512


def _sha256_after_user_block(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(USER_BLOCK)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def seal_hdf5(path: os.PathLike) -> None:
    """Write the SHA-256 of everything after the user block into it (a file made with
    ``userblock_size=USER_BLOCK``; anything else is refused rather than overwritten)."""
    with open(path, "r+b") as f:
        f.seek(USER_BLOCK)
        if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise ValueError(f"{path}: no {USER_BLOCK}-byte HDF5 user block to seal")
    seal = SEAL_TAG + _sha256_after_user_block(path).encode() + b"\n"
    with open(path, "r+b") as f:
        f.write(seal)


def write_sealed_hdf5(path: os.PathLike, fill) -> Path:
    """``fill(h5py.File)`` into ``path`` atomically, sealed: the file's SHA-256 in its user block."""
    import h5py                        # lazy, as torch below: the torch-free core imports this module

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", userblock_size=USER_BLOCK) as f:
            fill(f)
        seal_hdf5(tmp)
    atomic_write(path, write)
    return Path(path)


def check_seal(path: os.PathLike, error: type = ValueError) -> bool:
    """True for an intact sealed file, False for an unsealed one (older exports, other tools' files);
    ``error`` (the caller's ValueError subclass) naming the file when its bytes no longer match the
    seal (damaged after writing)."""
    with open(path, "rb") as f:
        head = f.read(len(SEAL_TAG) + 64)
    if not head.startswith(SEAL_TAG):
        return False
    expected = head[len(SEAL_TAG):].decode("ascii", "replace")
    if _sha256_after_user_block(path) != expected:
        raise error(f"{path}: damaged: its bytes no longer match the SHA-256 sealed into it when it was "
                    f"written (truncated, or changed on disk or in transfer); write it again from its source")
    return True


_UNSAFE_HINT = re.compile(r"Weights only load failed\..*?WeightsUnpickler error:\s*", re.DOTALL)
_RERUN_SENTENCE = re.compile(r"[^.]*weights_only[`'\"]?\s*(?:set to\s*[`'\"]?|=\s*)False[^.]*\.?\s*", re.IGNORECASE)


def torch_load_message(exc: BaseException) -> str:
    """torch.load's error text without its hint that re-running with ``weights_only=False`` "will likely
    succeed": that is the path on which a crafted file runs code, never one to steer users to."""
    text = _UNSAFE_HINT.sub("refused by torch's weights-only unpickler (the file pickles Python objects besides "
                            "tensors; unpickling them could run code): ", str(exc))
    return _RERUN_SENTENCE.sub("", text).strip()


def load_tensors(path: os.PathLike):
    """Everything this project reads from a torch/safetensors file goes through here: ``.safetensors``
    through safetensors, anything else through ``torch.load(weights_only=True)`` on the CPU, so a
    crafted pickle never runs code. Errors pass unchanged (callers word them with
    ``torch_load_message``)."""
    import torch                       # lazy: this module serves the torch-free core too
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)
