"""Atomic file writes and the one safe torch-file loader: nothing heavy imported at module level, so the
torch-free core can use them."""
from __future__ import annotations

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
