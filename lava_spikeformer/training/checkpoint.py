"""Checkpoints: atomic writes, ``torch.load(weights_only=True)``, finite weights, a SHA-256 of the weights,
one clear error per defect."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List

import torch

from ..config import ModelConfig
from ..fileio import atomic_write, load_tensors, torch_load_message

FORMAT = "lava-spikeformer-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


def weights_sha256(state: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes. torch's zip reader does not check its
    CRCs: a byte flipped in a weight loads silently (50 of 200 damaged copies of a shipped checkpoint
    did), and the export would carry the damage on as integers."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: os.PathLike, model: torch.nn.Module, **extra: Any) -> None:
    state = model.state_dict()
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
               "model": state, "model_sha256": weights_sha256(state), **extra}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """Read and validate the envelope; returns the dict with ``config`` as a ``ModelConfig``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = load_tensors(path)     # weights_only=True: a crafted pickle never runs code
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {torch_load_message(exc)}") from exc
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
    require_finite(path, payload["model"])
    sealed = payload.get("model_sha256")                # absent in checkpoints written before it existed
    if sealed is not None and sealed != weights_sha256(payload["model"]):
        raise CheckpointError(f"checkpoint {path} is damaged: its weights no longer match the SHA-256 saved with "
                              f"them (field 'model_sha256'); the file changed after it was written")
    return payload


def require_finite(path: os.PathLike, state: Dict[str, Any], field: str = "model") -> None:
    """Every tensor of ``state`` a tensor, every floating one finite; else one error naming the first bad
    one (a NaN checkpoint used to be evaluated, resumed and finetuned with exit 0)."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint {path}: field {field!r} entry {key!r} is a {type(value).__name__}, "
                                  f"expected a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"checkpoint {path}: tensor {key!r} of field {field!r} holds {bad} NaN/inf "
                                  f"value(s); weights must be finite")


RESUME_FIELDS = ("optimizer", "scheduler", "rng", "epoch", "best_acc", "elapsed_seconds")


def require_resumable(path: os.PathLike, payload: Dict[str, Any]) -> None:
    """A checkpoint ``--resume`` can continue from holds the training state, not only the weights."""
    missing = [key for key in RESUME_FIELDS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot be resumed: it holds no training state (fields "
                              f"{missing} missing; best.pt and imported checkpoints hold weights only). Start "
                              f"from its weights with --finetune-from instead")


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


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """timm's ``adapt_input_conv`` for any source channel count (timm's converts only from 3): to one
    channel the kernels are summed; to ``in_chans`` they are repeated and scaled by ``I / in_chans``, so
    an input equal on every channel gives the source's response (an image model's kernels for both
    polarities of an event model)."""
    source = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = weight.repeat(1, -(-in_chans // source), *([1] * (weight.dim() - 2)))[:, :in_chans]
    return repeated * (source / in_chans)


def transfer_weights(path: os.PathLike, model: torch.nn.Module) -> List[str]:
    """Start ``model`` from another model's checkpoint (an image model's weights for an event model of
    the same widths): every tensor is copied by name; a tensor that differs only in its input channels,
    from the source's ``in_channels`` to the model's (the input conv), is adapted with
    ``adapt_input_conv``; any other difference is one error naming the keys. Returns the adapted keys."""
    payload = load_checkpoint(path)
    state, own = dict(payload["model"]), model.state_dict()
    source_in, target_in = payload["config"].in_channels, model.cfg.in_channels
    adapted = []
    for key, value in state.items():
        target = own.get(key)
        if (target is not None and value.dim() >= 2 and value.shape != target.shape
                and (value.shape[1], target.shape[1]) == (source_in, target_in)
                and value.shape[:1] + value.shape[2:] == target.shape[:1] + target.shape[2:]):
            state[key] = adapt_input_conv(target_in, value)
            adapted.append(key)
    load_state(path, model, state)
    return adapted


def load_model(path: os.PathLike, **overrides: Any):
    """Model from a checkpoint; ``overrides`` change config fields that keep the weights valid
    (e.g. ``timesteps=4`` to finetune a T=1 model)."""
    from ..nn import MetaSpikeFormer

    payload = load_checkpoint(path)
    model = MetaSpikeFormer(payload["config"].replace(**overrides))
    load_state(path, model, payload["model"])
    return model, payload
