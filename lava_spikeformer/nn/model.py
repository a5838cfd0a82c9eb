"""Meta-SpikeFormer (Spike-Driven Transformer V2) from a ``ModelConfig``."""
from __future__ import annotations

import functools

import torch
from torch import nn

from ..config import ModelConfig
from .blocks import BLOCKS
from .layers import Downsampling
from .neuron import LIF
from .synapse import Dense


class SpikeHead(nn.Module):
    """Spatial mean of the stream -> LIF (membrane shortcut only) -> Linear; mean over T."""

    def __init__(self, dim: int, num_classes: int, *, lif: nn.Module):
        super().__init__()
        self.lif = lif
        self.fc = Dense(dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.lif(features.flatten(3).mean(3))          # [T, B, C]
        return self.fc(pooled).mean(0)


class MetaSpikeFormer(nn.Module):
    """Stages of ``Downsampling -> blocks`` and the spike-driven head.

    ``forward(images)`` takes ``[B, C, H, W]`` (repeated T times: direct encoding) or, for
    ``event_input`` configs, ``[T, B, C, H, W]`` event frames; returns logits ``[B, classes]``
    (with a KD head: ``(logits, logits_kd)`` in training, their average in eval).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        neuron = functools.partial(LIF, threshold=cfg.threshold, tau=cfg.tau, alpha=cfg.surrogate_alpha)
        spiking_stream = cfg.shortcut != "ms"
        stages, in_ch = [], cfg.in_channels
        for i, stage in enumerate(cfg.stages):
            down = Downsampling(in_ch, stage.dim, stage.kernel_size, stage.stride, stage.padding,
                                neuron=neuron, lif_before=(i > 0 and not spiking_stream),
                                lif_after=spiking_stream)
            blocks = [BLOCKS[stage.block](stage.dim, cfg=cfg, neuron=neuron) for _ in range(stage.depth)]
            stages.append(nn.Sequential(down, *blocks))
            in_ch = stage.dim
        self.stages = nn.Sequential(*stages)
        self.num_features = in_ch
        head_lif = nn.Identity() if spiking_stream else neuron()
        self.head = SpikeHead(in_ch, cfg.num_classes, lif=head_lif)
        self.head_kd = SpikeHead(in_ch, cfg.num_classes, lif=head_lif) if cfg.kd_head else None

    def reset_classifier(self, num_classes: int) -> None:
        """timm-style transfer: new, freshly initialized classifier head(s) for ``num_classes``; the
        config (and so checkpoints and exports) records the new class count."""
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.cfg = self.cfg.replace(num_classes=int(num_classes))
        device = self.head.fc.weight.device
        self.head = SpikeHead(self.num_features, self.cfg.num_classes, lif=self.head.lif).to(device)
        if self.head_kd is not None:
            self.head_kd = SpikeHead(self.num_features, self.cfg.num_classes, lif=self.head.lif).to(device)

    @property
    def timesteps(self) -> int:
        return self.cfg.timesteps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> ``[T, B, C, H, W]``; checks the shape against the config."""
        cfg = self.cfg
        expected_dims = 5 if cfg.event_input else 4
        if x.dim() != expected_dims or x.shape[-3] != cfg.in_channels:
            layout = "[T, B, C, H, W]" if cfg.event_input else "[B, C, H, W]"
            raise ValueError(f"{cfg.name}: input must be {layout} with C={cfg.in_channels}, "
                             f"got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (cfg.img_size, cfg.img_size):
            raise ValueError(f"{cfg.name}: input must be {cfg.img_size}x{cfg.img_size} (H x W, the config's "
                             f"img_size), got {x.shape[-2]}x{x.shape[-1]} (shape {tuple(x.shape)})")
        if not x.is_floating_point():
            hint = ("normalize them first (the model's input contract: model.cfg.input_spec)"
                    if x.dtype == torch.uint8 else "convert to a float tensor")
            raise ValueError(f"{cfg.name}: input must be a float tensor, got {x.dtype}: {hint}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{cfg.name}: input holds NaN or inf ({int((~torch.isfinite(x)).sum())} values)")
        if cfg.event_input:
            return x
        return x.unsqueeze(0).expand(cfg.timesteps, *x.shape)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.encode(x))

    def forward(self, x: torch.Tensor):
        if self.cfg.neuron_mode == "fixed":            # the deployed integer network (nn/quantized.py)
            from .quantized import quantized_forward
            logits = quantized_forward(self, x).to(x.dtype)
            return (logits, logits) if self.training and self.head_kd is not None else logits
        features = self.forward_features(x)
        logits = self.head(features)
        if self.head_kd is None:
            return logits
        logits_kd = self.head_kd(features)
        return (logits, logits_kd) if self.training else (logits + logits_kd) / 2

    def export_hdf5(self, path, format: str = "lava-spikeformer", *, integers_only: bool = False):
        """Write the eval-mode network (BN folded, RepConv re-parameterized) to ``path`` atomically;
        the model is not modified. ``format='lava-spikeformer'``: the graph format of
        ``lava_spikeformer/graph/schema.md`` (v2: the chip's integers, and the floats unless
        ``integers_only``); ``'netx'``: lava-dl netx's own schema, which plain
        ``netx.hdf5.Network`` loads — only for sequential models (all stages of depth 0)."""
        if format == "netx":
            from ..interop.netx_plain import write_netx
            return write_netx(self, path)
        if format != "lava-spikeformer":
            raise ValueError(f"export format must be 'lava-spikeformer' or 'netx', got {format!r}")
        from .fold import export_hdf5
        return export_hdf5(self, path, integers_only=integers_only)

    def export_nir(self, path):
        """Write the eval-mode network as a NIR graph (``interop/nir.py``), atomically; models with SDSA
        are refused (NIR has no node for it)."""
        from ..interop.nir import write_nir
        return write_nir(self, path)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
