"""Atomic file writes: nothing heavy imported, so the torch-free core can use them."""
from __future__ import annotations

import os
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
