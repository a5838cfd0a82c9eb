"""Checkpoints of the reference implementation (BICLab/Spike-Driven-Transformer-V2), both ways.

The reference ``Spiking_vit_MetaFormer`` and our ``MetaSpikeFormer`` hold the same tensors under
other names and shapes. The name map is built from our module tree: a stage element
``stages.i.0`` is the reference's ``downsample*`` layer, ``stages.i.j`` (j >= 1) one of its block
lists, and one rule per module kind renames the rest (``sepconv.branch.pw1.conv`` ->
``Conv.pwconv1``, ...). Shapes differ only by trailing singleton axes: slayer keeps convolution and
dense weights 5-D (``[out, in/groups, kh, kw, 1]``) where the reference has Conv2d (4-D), the
MLP's Conv1d (3-D) and the head's Linear (2-D) weights.

Our model holds one tensor the reference has no key for: the SDSA scale buffer, which the reference
hard-codes (0.125) and our config sets (``attn_scale``). BatchNorm ``num_batches_tracked`` is
optional on import (old torch versions did not save it).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..config import ModelConfig, build_config, list_models, reference_stages
from ..fileio import load_tensors, torch_load_message
from ..nn import MetaSpikeFormer

_OFFICIAL_DOWNSAMPLING = ("downsample1_1", "downsample1_2", "downsample2", "downsample3", "downsample4")

# (our module path inside a stage element, reference path inside the block, reference weight ndim)
_BLOCK_RULES = (
    (r"encode\.conv", "encode_conv", 4),
    (r"encode\.bn", "encode_bn", 1),
    (r"sepconv\.branch\.pw([12])\.conv", r"Conv.pwconv\1", 4),
    (r"sepconv\.branch\.pw([12])\.bn", r"Conv.bn\1", 1),
    (r"sepconv\.branch\.dw", "Conv.dwconv", 4),
    (r"channel_conv\.branch\.fc([12])\.conv", r"conv\1", 4),
    (r"channel_conv\.branch\.fc([12])\.bn", r"bn\1", 1),
    (r"attn\.branch\.(q|k|v|proj)\.body\.conv1x1", r"attn.\1_conv.0.body.0", 4),
    (r"attn\.branch\.(q|k|v|proj)\.body\.bn_pad", r"attn.\1_conv.0.body.1.bn", 1),
    (r"attn\.branch\.(q|k|v|proj)\.body\.dw", r"attn.\1_conv.0.body.2.0", 4),
    (r"attn\.branch\.(q|k|v|proj)\.body\.pw\.conv", r"attn.\1_conv.0.body.2.1", 4),
    (r"attn\.branch\.(q|k|v|proj)\.body\.pw\.bn", r"attn.\1_conv.0.body.2.2", 1),
    (r"attn\.branch\.(q|k|v|proj)\.bn", r"attn.\1_conv.1", 1),
    (r"mlp\.branch\.fc([12])\.conv", r"mlp.fc\1_conv", 3),
    (r"mlp\.branch\.fc([12])\.bn", r"mlp.fc\1_bn", 1),
)
_HEAD_RULES = ((r"head\.fc", "head", 2), (r"head_kd\.fc", "head_kd", 2))

# Config fields that do not change which tensors exist or how the reference computes with them.
_FREE_FIELDS = {"name", "in_channels", "num_classes", "img_size", "timesteps", "kd_head", "neuron_mode",
                "surrogate_alpha", "dataset"}
_MAX_LISTED = 10


class ConvertError(ValueError):
    """A reference checkpoint does not fit the requested model (keys or shapes), or is unreadable."""

    def __init__(self, message: str, *, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mis_shaped: Sequence[str] = ()):
        super().__init__(message)
        self.missing, self.unexpected, self.mis_shaped = list(missing), list(unexpected), list(mis_shaped)


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One tensor in both layouts."""

    official: str
    official_shape: Tuple[int, ...]
    shape: Tuple[int, ...]


def _official_block(stage: int, index: int) -> str:
    """The reference keeps each stage's blocks in ModuleLists; stage 2 has two lists of one block."""
    if stage < 2:
        return f"ConvBlock1_{stage + 1}.{index}"
    if stage == 2:
        return f"ConvBlock2_{index + 1}.0"
    return f"block{stage}.{index}"


def _official_module(path: str) -> Tuple[str, int] | None:
    """Our module path -> (reference module path, reference weight ndim); None if it has no twin."""
    for pattern, replacement, ndim in _HEAD_RULES:
        if re.fullmatch(pattern, path):
            return replacement, ndim
    match = re.fullmatch(r"stages\.(\d+)\.(\d+)\.(.+)", path)
    if match is None:
        return None
    stage, element, rest = int(match[1]), int(match[2]), match[3]
    prefix = _OFFICIAL_DOWNSAMPLING[stage] if element == 0 else _official_block(stage, element - 1)
    for pattern, replacement, ndim in _BLOCK_RULES:
        if re.fullmatch(pattern, rest):
            return f"{prefix}.{re.sub(pattern, replacement, rest)}", ndim
    return None


def layout_mismatch(cfg: ModelConfig) -> List[str]:
    """Config fields in which ``cfg`` differs from the reference network (empty: convertible)."""
    if len(cfg.stages) != len(_OFFICIAL_DOWNSAMPLING):
        return ["stages"]
    reference = ModelConfig(cfg.name, reference_stages(tuple(s.dim for s in cfg.stages[1:])))
    return [f.name for f in dataclasses.fields(ModelConfig)
            if f.name not in _FREE_FIELDS and getattr(cfg, f.name) != getattr(reference, f.name)]


def official_models() -> List[str]:
    """Registered models whose layout the reference implementation has (meta_spikeformer_c32/48/64)."""
    return [name for name in list_models() if not layout_mismatch(build_config(name))]


def _require_reference_layout(cfg: ModelConfig) -> None:
    differing = layout_mismatch(cfg)
    if differing:
        raise ConvertError(f"model {cfg.name} is not in the reference layout (fields {differing} differ); "
                           f"models that are: {', '.join(official_models())}")


def _slots(model: MetaSpikeFormer) -> Dict[str, _Slot]:
    """Our state key -> its reference twin. Buffers without one are set by the config alone."""
    buffers = {name for name, _ in model.named_buffers()}
    slots = {}
    for key, tensor in model.state_dict().items():
        path, leaf = key.rsplit(".", 1)
        official = _official_module(path)
        if official is None:
            if key not in buffers:
                raise ConvertError(f"{model.cfg.name}: parameter {key} has no counterpart in the reference")
            continue
        module, ndim = official
        shape = tuple(tensor.shape)
        official_shape = shape[:ndim] if leaf == "weight" else shape
        slots[key] = _Slot(f"{module}.{leaf}", official_shape, shape)
    return slots


def _listing(what: str, items: List[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {what}: {shown}{more}"


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The state dict itself, or the one under ``'model'`` (how the reference's ``save_model`` stores it)."""
    if not isinstance(checkpoint, Mapping):
        raise ConvertError(f"expected a state dict (a dict of tensors), got {type(checkpoint).__name__}")
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        checkpoint = checkpoint["model"]
    not_tensors = sorted(k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ConvertError("expected a state dict of tensors (or one under 'model'), but "
                           + _listing("entries are not tensors", not_tensors))
    return dict(checkpoint)


def from_official(state_dict: Mapping, name: str, *, timesteps: int = 1, img_size: Optional[int] = None) -> MetaSpikeFormer:
    """Eval-mode ``MetaSpikeFormer`` holding the weights of a reference checkpoint.

    ``state_dict`` may be wrapped under ``'model'``. ``head_kd.*`` keys switch on the KD head;
    the class count comes from ``head.weight``. ``model(images)`` then equals the reference's
    ``model.T = timesteps; model.eval(); model(images)``. The model takes the checkpoint's float
    dtype when that is float64, float32 otherwise. ``img_size`` (default: the registered model's): the
    image size the model is to take (the reference network is size-agnostic; ours checks its input).
    """
    state = unwrap_state_dict(state_dict)
    head = state.get("head.weight")
    overrides = {"num_classes": head.shape[0]} if head is not None and head.dim() == 2 else {}
    cfg = build_config(name, timesteps=timesteps, kd_head=any(k.startswith("head_kd.") for k in state),
                       img_size=img_size, **overrides)
    _require_reference_layout(cfg)
    model = MetaSpikeFormer(cfg)
    slots = _slots(model)
    known = {slot.official for slot in slots.values()}
    missing = [s.official for s in slots.values()
               if s.official not in state and not s.official.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in known]
    mis_shaped = [f"{s.official} {tuple(state[s.official].shape)} (expected {s.official_shape})"
                  for s in slots.values() if s.official in state and tuple(state[s.official].shape) != s.official_shape]
    if missing or unexpected or mis_shaped:
        parts = [_listing(what, keys) for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                                         ("mis-shaped keys", mis_shaped)) if keys]
        raise ConvertError(f"reference state dict does not fit {cfg.name}: " + "; ".join(parts),
                           missing=missing, unexpected=unexpected, mis_shaped=mis_shaped)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConvertError(f"reference state dict: tensor {key!r} holds NaN/inf; weights must be finite")
    floats = {t.dtype for t in state.values() if t.is_floating_point()}
    if floats == {torch.float64}:
        model.double()
    ours = model.state_dict()
    for key, slot in slots.items():
        if slot.official in state:
            ours[key] = state[slot.official].reshape(slot.shape)
    model.load_state_dict(ours)
    return model.eval()


def to_official(model: MetaSpikeFormer) -> Dict[str, torch.Tensor]:
    """The inverse of ``from_official``: ``model``'s weights under the reference's keys and shapes."""
    _require_reference_layout(model.cfg)
    slots = _slots(model)
    ours = model.state_dict()
    return {slot.official: ours[key].detach().reshape(slot.official_shape).clone() for key, slot in slots.items()}


def load_official(path: os.PathLike, name: str, *, timesteps: int = 1) -> MetaSpikeFormer:
    """``from_official`` on a ``.pth`` file, read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"reference checkpoint {path} does not exist")
    try:
        checkpoint = load_tensors(path)           # weights_only=True: a crafted pickle never runs code
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        refused_class = "Unsupported class" in str(exc)    # torch 2.3's weights-only unpickler wording
        hint = (". It pickles Python objects besides tensors (the reference's training checkpoints hold 'args', "
                "an argparse.Namespace); if you trust the file, keep only the weights: "
                "torch.save(torch.load(path, weights_only=False)['model'], 'weights.pth')") if refused_class else ""
        raise ConvertError(f"reference checkpoint {path} cannot be read with torch.load(weights_only=True): "
                           f"{torch_load_message(exc)}{hint}") from exc
    try:
        return from_official(checkpoint, name, timesteps=timesteps)
    except ConvertError as exc:
        raise ConvertError(f"{path}: {exc}", missing=exc.missing, unexpected=exc.unexpected,
                           mis_shaped=exc.mis_shaped) from exc
