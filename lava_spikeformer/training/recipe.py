"""The paper's ImageNet recipe (App. C.1, Table 8), built from timm's utilities.

| | T=1 training | T=4 finetune |
|---|---|---|
| epochs / warmup | 200 / 10 | 20 / 2 |
| global batch | 1568 | 336 |
| base lr (lr = base · batch / 256) | 6e-4 | 2e-5 |

Both: LAMB (timm's, ``trust_clip``, global grad-norm clip 1.0, no decay on 1-D parameters, as
the reference's ``main_finetune.py``), weight decay 0.05, cosine decay to 1e-6 after a linear
warmup (``train._lr_lambda``, per step), label smoothing 0.1, RandAugment m9 / mstd 0.5, no mixup
or cutmix. Random erasing 0.25 and bicubic resizing are the reference code's defaults (Table 8
does not list them). The 55M model adds DeiT-style hard distillation from a teacher into a second
head (``distillation_loss``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .config import TrainConfig

#: timm ``create_transform`` arguments for training images (the reference's ``build_dataset``).
PAPER_AUGMENTATION = dict(auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic", re_prob=0.25,
                          re_mode="pixel", re_count=1)

#: Table 8, per stage.
PAPER_STAGES = {
    "t1": dict(timesteps=1, epochs=200, warmup_epochs=10, global_batch=1568, base_lr=6e-4),
    "t4": dict(timesteps=4, epochs=20, warmup_epochs=2, global_batch=336, base_lr=2e-5),
}
PAPER_COMMON = dict(optimizer="lamb", weight_decay=0.05, min_lr=1e-6, label_smoothing=0.1, augment=True,
                    clip_grad=0.0)   # LAMB clips the global gradient norm at 1.0 itself

#: Optimizer choices: timm ``create_optimizer_v2`` name and arguments. AdamW keeps weight decay on
#: every parameter, as the Fashion-MNIST benchmark was trained; LAMB follows the reference.
OPTIMIZERS = {
    "adamw": dict(opt="adamw", filter_bias_and_bn=False, foreach=True),
    "lamb": dict(opt="lamb", filter_bias_and_bn=True, trust_clip=True),
}


def paper_config(stage: str, *, model: str, world_size: int = 1, batch_size: Optional[int] = None, **overrides):
    """``TrainConfig`` of one Table 8 stage. ``batch_size`` is per process (default: the paper's
    global batch split over ``world_size``); the learning rate follows the global batch actually used."""
    if stage not in PAPER_STAGES:
        raise ValueError(f"recipe stage must be one of {sorted(PAPER_STAGES)}, got {stage!r}")
    spec = PAPER_STAGES[stage]
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    batch_size = batch_size or max(1, spec["global_batch"] // world_size)
    settings = dict(PAPER_COMMON, model=model, timesteps=spec["timesteps"], epochs=spec["epochs"],
                    warmup_epochs=spec["warmup_epochs"], batch_size=batch_size,
                    lr=spec["base_lr"] * batch_size * world_size / 256)
    settings.update(overrides)
    if stage == "t4" and not settings.get("finetune_from") and not settings.get("resume"):
        raise ValueError("recipe stage 't4' finetunes a T=1 model: give finetune_from (--finetune-from)")
    return TrainConfig(**settings)


def build_optimizer(model: torch.nn.Module, name: str, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2

    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return create_optimizer_v2(model, lr=lr, weight_decay=weight_decay, **OPTIMIZERS[name])


def load_teacher(spec: str, *, num_classes: int, device: torch.device) -> torch.nn.Module:
    """A frozen eval-mode teacher: a lava-spikeformer checkpoint path, or ``timm:NAME`` /
    ``timm:NAME:WEIGHTS_FILE`` (timm architecture, weights from a local file; without one, random)."""
    if spec.startswith("timm:"):
        import timm

        name, _, weights = spec[len("timm:"):].partition(":")
        if name not in timm.list_models():
            raise ValueError(f"teacher {spec!r}: timm has no model {name!r}")
        if weights and not Path(weights).is_file():
            raise ValueError(f"teacher {spec!r}: weights file {weights} does not exist")
        # timm's own file loader unpickles with torch.load(weights_only=False): a crafted file would run
        # code. The file is read here, safely, and timm gets the state dict (it still adapts the classifier).
        state = _teacher_state(spec, weights) if weights else None
        try:
            teacher = timm.create_model(name, pretrained=bool(weights), num_classes=num_classes,
                                        pretrained_cfg_overlay=dict(state_dict=state) if weights else None)
        except RuntimeError as exc:        # load_state_dict: missing/unexpected keys, shape mismatches
            raise ValueError(f"teacher {spec!r}: weights file {weights} does not fit timm's {name}: {exc}") from exc
    else:
        from .checkpoint import load_model

        teacher, _ = load_model(spec)
        if teacher.cfg.num_classes != num_classes:
            raise ValueError(f"teacher {spec}: {teacher.cfg.num_classes} classes, the student has {num_classes}")
    return teacher.to(device).eval().requires_grad_(False)


def _teacher_state(spec: str, weights: str) -> dict:
    """The state dict of a timm weights file (``.safetensors``, or a torch file read with
    ``weights_only=True``; timm's wrappers ``state_dict``/``model``/``*_ema`` and ``module.`` prefixes
    unwrapped as timm's ``load_state_dict`` does)."""
    from timm.models import clean_state_dict

    from ..fileio import load_tensors, torch_load_message
    try:
        checkpoint = load_tensors(weights)
    except Exception as exc:   # UnpicklingError (a refused class), RuntimeError, EOFError, SafetensorError, ...
        raise ValueError(f"teacher {spec!r}: weights file {weights} cannot be read safely: "
                         f"{torch_load_message(exc)}") from exc
    if isinstance(checkpoint, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"teacher {spec!r}: weights file {weights} holds no state dict of tensors")
    for key, value in checkpoint.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"teacher {spec!r}: tensor {key!r} of {weights} holds NaN/inf; weights must be finite")
    return clean_state_dict(checkpoint)


def distillation_loss(heads: Tuple[torch.Tensor, ...], labels: torch.Tensor, teacher_logits: torch.Tensor, *,
                      alpha: float, label_smoothing: float) -> torch.Tensor:
    """DeiT hard distillation (the reference's ``DistillationLoss``, type 'hard'):
    ``(1 - alpha) · CE_smooth(head, y) + alpha · CE(kd_head, argmax teacher)``."""
    if len(heads) != 2:
        raise ValueError("distillation needs a model with a KD head (logits, logits_kd)")
    base = F.cross_entropy(heads[0].float(), labels, label_smoothing=label_smoothing)
    kd = F.cross_entropy(heads[1].float(), teacher_logits.argmax(1))
    return (1 - alpha) * base + alpha * kd
