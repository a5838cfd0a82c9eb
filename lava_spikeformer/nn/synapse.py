"""lava-dl slayer synapses run on the reference's ``[T, B, C, H, W]`` layout.

The weights stay slayer's (``Conv3d`` weights ``[out, in/groups, kh, kw, 1]``, ``pre_hook_fx`` for
quantization-aware training, ``export_hdf5``-compatible shapes). Only the evaluation differs:
slayer runs ``conv3d`` on NCHWT; we fold time into the batch and run ``conv2d``/``linear``, which
is what the reference computes, avoids a transpose copy per layer, and lets BatchNorm see the
same ``[T*B, C, H, W]`` batches as the reference's.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from .._slayer import slayer

synapse = slayer.synapse


def _init_bias(weight: torch.Tensor, out_features: int) -> torch.nn.Parameter:
    """torch's default conv/linear bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fan_in = weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    return torch.nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))


class Conv(synapse.Conv):
    """2-D convolution synapse with optional bias; input and output ``[T, B, C, H, W]``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False):
        super().__init__(in_features, out_features, kernel_size, stride=stride, padding=padding,
                         groups=groups)
        if bias:
            self.bias = _init_bias(self.weight, out_features)

    @property
    def weight_2d(self) -> torch.Tensor:
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return weight[..., 0]

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        x = x.flatten(0, 1)
        if self.is_depthwise:
            # oneDNN's depthwise kernels are 2.5-5x faster (fwd+bwd, measured on 2 CPU cores) on
            # channels-last data; the rest of the network stays NCHW, where BatchNorm is faster.
            x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, self.weight_2d, self.bias, self.stride[:2], self.padding[:2],
                     self.dilation[:2], self.groups).contiguous()
        return y.view(steps, batch, *y.shape[1:])


class Dense(synapse.Dense):
    """Fully connected synapse with optional bias on ``[T, B, C]``."""

    def __init__(self, in_neurons: int, out_neurons: int, *, bias: bool = True):
        super().__init__(in_neurons, out_neurons)
        if bias:
            self.bias = _init_bias(self.weight, out_neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return F.linear(x, weight.flatten(1), self.bias)


class BatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm2d over ``[T, B, C, H, W]`` (statistics over T*B*H*W, as the reference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).view(x.shape)
