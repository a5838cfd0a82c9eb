"""Checkpoints: atomic writes, ``torch.load(weights_only=True)``, one clear error per defect."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

from ..config import ModelConfig
from ..fileio import atomic_write

FORMAT = "lava-spikeformer-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


def save_checkpoint(path: os.PathLike, model: torch.nn.Module, **extra: Any) -> None:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
               "model": model.state_dict(), **extra}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """Read and validate the envelope; returns the dict with ``config`` as a ``ModelConfig``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a lava-spikeformer checkpoint (field 'format' must be "
                              f"{FORMAT!r})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: field 'format_version' is {payload.get('format_version')!r}, "
                              f"this version reads {FORMAT_VERSION}")
    for key in ("config", "model"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"checkpoint {path}: field {key!r} missing or not a dict")
    try:
        payload["config"] = ModelConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: field 'config' is invalid: {exc}") from exc
    return payload


def load_state(path: os.PathLike, model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """``load_state_dict`` that names every missing / unexpected / mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"missing keys {missing}" if missing else "", f"unexpected keys {unexpected}" if unexpected else "",
                 f"shape mismatches {shapes}" if shapes else ""]
        raise CheckpointError(f"checkpoint {path} does not fit model {model.cfg.name}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(state)


def load_model(path: os.PathLike, **overrides: Any):
    """Model from a checkpoint; ``overrides`` change config fields that keep the weights valid
    (e.g. ``timesteps=4`` to finetune a T=1 model)."""
    from ..nn import MetaSpikeFormer

    payload = load_checkpoint(path)
    model = MetaSpikeFormer(payload["config"].replace(**overrides))
    load_state(path, model, payload["model"])
    return model, payload
