"""Meta-SpikeFormer layers on ``[T, B, C, H, W]``. Each branch starts *after* its input LIF:
the residual unit (``blocks.Residual``) owns that neuron, so the membrane / vanilla / SEW
shortcuts differ only in where the LIF sits, not in the branch code.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .neuron import LIF
from .synapse import BatchNorm, Conv

NeuronFactory = Callable[..., LIF]


class ConvBN(nn.Sequential):
    """Synapse + BatchNorm (BN is folded into the synapse at export)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, *, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = False):
        super().__init__()
        self.conv = Conv(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups, bias=bias)
        self.bn = BatchNorm(out_ch)


class Downsampling(nn.Module):
    """``[LIF ->] Conv(k, s, p, bias) -> BN [-> LIF]``. The first one sees the real-valued image
    (no input LIF: the only MAC layer); with VS/SEW shortcuts the stream carries spikes, so the
    LIF moves after the BN."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int, *,
                 neuron: NeuronFactory, lif_before: bool, lif_after: bool):
        super().__init__()
        self.lif_in = neuron() if lif_before else nn.Identity()
        self.encode = ConvBN(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=True)
        self.lif_out = neuron() if lif_after else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif_out(self.encode(self.lif_in(x)))


class SepConv(nn.Module):
    """MobileNetV2-style separable conv: pw 1x1 (C->2C) -> BN -> LIF -> dw kxk -> pw 1x1 (2C->C) -> BN."""

    def __init__(self, dim: int, *, neuron: NeuronFactory, kernel_size: int = 7, expansion: int = 2):
        super().__init__()
        hidden = dim * expansion
        self.pw1 = ConvBN(dim, hidden)
        self.lif = neuron()
        self.dw = Conv(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.pw2 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.dw(self.lif(self.pw1(x))))


class ChannelConv(nn.Module):
    """Conv kxk (C->rC) -> BN -> LIF -> Conv kxk (rC->C) -> BN. k=3: the Conv block's ChannelConv;
    k=1 with bias: the Transformer block's ChannelMLP."""

    def __init__(self, dim: int, *, neuron: NeuronFactory, ratio: int = 4, kernel_size: int = 3,
                 bias: bool = False):
        super().__init__()
        pad = kernel_size // 2
        self.fc1 = ConvBN(dim, dim * ratio, kernel_size, padding=pad, bias=bias)
        self.lif = neuron()
        self.fc2 = ConvBN(dim * ratio, dim, kernel_size, padding=pad, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.lif(self.fc1(x)))


class ChannelMLP(ChannelConv):
    """Two 1x1 (token-wise linear) layers with bias: the reference's Conv1d MLP."""

    def __init__(self, dim: int, *, neuron: NeuronFactory, ratio: int = 4):
        super().__init__(dim, neuron=neuron, ratio=ratio, kernel_size=1, bias=True)


class BNAndPad(BatchNorm):
    """BatchNorm whose output is padded by ``pad`` pixels with the BN's own value for a zero input
    (``beta - mean * gamma / sqrt(var + eps)``, running statistics, no gradient) — so that the
    following unpadded depthwise 3x3 is re-parameterizable into one 3x3 conv (RepConv)."""

    def __init__(self, num_features: int, pad: int = 1):
        super().__init__(num_features)
        self.pad = pad

    def pad_value(self) -> torch.Tensor:
        return (self.bias - self.running_mean * self.weight / torch.sqrt(self.running_var + self.eps)).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        p = self.pad
        out = self.pad_value().to(y.dtype).view(1, 1, -1, 1, 1).expand(
            *y.shape[:3], y.shape[3] + 2 * p, y.shape[4] + 2 * p).clone()
        out[..., p:-p, p:-p] = y
        return out


class RepConv(nn.Module):
    """conv1x1 (C->C) -> BN+pad -> depthwise 3x3 (no pad) -> conv1x1 (C->C') -> BN."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1x1 = Conv(in_ch, in_ch, 1)
        self.bn_pad = BNAndPad(in_ch, pad=1)
        self.dw = Conv(in_ch, in_ch, 3, groups=in_ch)
        self.pw = ConvBN(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(self.bn_pad(self.conv1x1(x))))


class Projection(nn.Sequential):
    """Q/K/V or output projection: ``RepConv -> BN`` (reference) or ``Linear(1x1) -> BN`` (ablation)."""

    def __init__(self, dim: int, kind: str):
        super().__init__()
        self.body = RepConv(dim, dim) if kind == "repconv" else Conv(dim, dim, 1)
        self.bn = BatchNorm(dim)
