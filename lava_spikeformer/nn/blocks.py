"""Residual units and the two meta blocks.

Shortcuts (paper Fig. 4), with ``f`` a branch that starts at spikes:

* ``ms`` membrane shortcut (default): ``x + f(LIF(x))`` — the stream is real-valued membrane.
* ``vs`` vanilla shortcut: ``LIF(x + f(x))`` — the stream carries spikes.
* ``sew`` spike-element-wise: ``x + LIF(f(x))`` — the stream carries integer spike counts.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import SDSA
from .layers import ChannelConv, ChannelMLP, NeuronFactory, SepConv


class Residual(nn.Module):
    def __init__(self, branch: nn.Module, *, shortcut: str, neuron: NeuronFactory):
        super().__init__()
        if shortcut not in ("ms", "vs", "sew"):
            raise ValueError(f"shortcut must be 'ms', 'vs' or 'sew', got {shortcut!r}")
        self.shortcut = shortcut
        self.lif = neuron()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut == "ms":
            return x + self.branch(self.lif(x))
        if self.shortcut == "vs":
            return self.lif(x + self.branch(x))
        return x + self.lif(self.branch(x))


class ConvBlock(nn.Sequential):
    """Conv-based block: ``x + SepConv(x)`` then ``x + ChannelConv(x)``."""

    def __init__(self, dim: int, *, cfg, neuron: NeuronFactory):
        super().__init__()
        if cfg.sepconv:
            self.sepconv = Residual(SepConv(dim, neuron=neuron, kernel_size=cfg.sepconv_kernel),
                                    shortcut=cfg.shortcut, neuron=neuron)
        kernel = 3 if cfg.channel_mixer == "conv" else 1
        self.channel_conv = Residual(ChannelConv(dim, neuron=neuron, ratio=cfg.mlp_ratio, kernel_size=kernel),
                                     shortcut=cfg.shortcut, neuron=neuron)


class TransformerBlock(nn.Sequential):
    """Transformer-based block: ``x + SDSA(x)`` then ``x + ChannelMLP(x)``."""

    def __init__(self, dim: int, *, cfg, neuron: NeuronFactory):
        super().__init__()
        attn = SDSA(dim, neuron=neuron, num_heads=cfg.num_heads, variant=cfg.sdsa, qkv_proj=cfg.qkv_proj,
                    out_proj=cfg.out_proj, scale=cfg.attn_scale, attn_threshold=cfg.attn_threshold,
                    learnable_scale=cfg.learnable_attn_scale)
        self.attn = Residual(attn, shortcut=cfg.shortcut, neuron=neuron)
        self.mlp = Residual(ChannelMLP(dim, neuron=neuron, ratio=cfg.mlp_ratio),
                            shortcut=cfg.shortcut, neuron=neuron)


BLOCKS = {"conv": ConvBlock, "transformer": TransformerBlock}
