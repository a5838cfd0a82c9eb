"""Float numpy kernels of the graph ops, shared by the reference simulator and the Lava ProcessModels.

One implementation for both worlds is what makes "Lava equals the reference" a property of the
message passing alone. Arrays carry a leading batch axis: Lava runs a whole batch of samples
through one process graph.

Convolution is written here rather than taken from ``lava.proc.conv``: that model stores
``groups`` as int8 (groups >= 128 silently wrong) and loops in scipy at 60-280 ms per step;
im2col + one matmul (shift-and-add for depthwise) is exact for any ``groups`` and 10-30x faster.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv2d(x: np.ndarray, weight: np.ndarray, bias, stride: int, padding: int, groups: int) -> np.ndarray:
    """torch.nn.functional.conv2d on ``x[B, C, H, W]`` (cross-correlation, zero padding)."""
    batch, channels = x.shape[:2]
    out_ch, ch_per_group, kh, kw = weight.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (x.shape[2] - kh) // stride + 1
    out_w = (x.shape[3] - kw) // stride + 1
    if ch_per_group == 1 and groups == channels:               # depthwise: shift and add
        mult = out_ch // groups
        xs = np.repeat(x, mult, axis=1) if mult > 1 else x
        y = np.zeros((batch, out_ch, out_h, out_w), dtype=np.result_type(x, weight))
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
                y += patch * weight[:, 0, i, j][None, :, None, None]
    else:
        windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
        out_per_group = out_ch // groups
        parts = []
        for g in range(groups):
            cols = windows[:, g * ch_per_group:(g + 1) * ch_per_group]          # [B, Cg, Ho, Wo, kh, kw]
            cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(batch, out_h * out_w, -1)
            w = weight[g * out_per_group:(g + 1) * out_per_group].reshape(out_per_group, -1)
            parts.append(np.matmul(cols, w.T))                                   # [B, HW, Og]
        y = np.concatenate(parts, axis=-1).transpose(0, 2, 1).reshape(batch, out_ch, out_h, out_w)
    if bias is not None:
        y = y + bias[None, :, None, None]
    return np.ascontiguousarray(y)


def heads_view(x: np.ndarray, heads: int) -> np.ndarray:
    """``[B, C, H, W] -> [B, heads, N, Dh]`` with channel ``c = head * Dh + d`` (the reference's)."""
    batch, channels = x.shape[:2]
    return x.reshape(batch, heads, channels // heads, -1).transpose(0, 1, 3, 2)


def lif_step(x: np.ndarray, h: np.ndarray, threshold: float, tau: float):
    """One step of the paper's LIF from the pre-reset membrane ``h`` of the previous step (zeros at
    the start): returns ``(spikes, h)``. The float operations are exactly those of
    ``nn.neuron.lif_sequence``, so float64 spikes and membranes equal PyTorch's bit for bit."""
    v = np.where(h >= threshold, 0.0, h).astype(x.dtype, copy=False)
    h = v + (x - v) / tau
    return (h >= threshold).astype(x.dtype), h


class LIFState:
    """A LIF step function (``lif_step``, or ``fixed.lif_step_fixed``) with its membrane kept
    between steps."""

    def __init__(self, threshold: float, tau: float, step_fn: Callable = lif_step):
        self.threshold, self.tau, self.step_fn = float(threshold), float(tau), step_fn
        self.h = None

    def reset(self) -> None:
        self.h = None

    def step(self, x: np.ndarray) -> np.ndarray:
        spikes, self.h = self.step_fn(x, np.zeros_like(x) if self.h is None else self.h, self.threshold, self.tau)
        return spikes


class Kernel:
    """Per-node state + one timestep of computation on a batch (``node``: a ``graph.Node``)."""

    def __init__(self, node):
        self.node = node

    def reset(self) -> None:
        pass

    def step(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class ConvKernel(Kernel):
    def step(self, inputs):
        p, a = self.node.params, self.node.attrs
        return conv2d(inputs[0], p["weight"], p.get("bias"), int(a["stride"]), int(a["padding"]), int(a["groups"]))


class DenseKernel(Kernel):
    def step(self, inputs):
        x = inputs[0].reshape(len(inputs[0]), -1)
        y = x @ self.node.params["weight"].T
        return y + self.node.params["bias"] if "bias" in self.node.params else y


class LIFKernel(Kernel):
    def __init__(self, node, step_fn: Callable = lif_step):
        super().__init__(node)
        self.lif = LIFState(node.attrs["threshold"], node.attrs["tau"], step_fn)

    def reset(self):
        self.lif.reset()

    def step(self, inputs):
        return self.lif.step(inputs[0])


def sdsa_drive(q, k, v, variant: int, heads: int, scale) -> np.ndarray:
    """What SDSA feeds its attention LIF: per-channel counts (1, 2) or scaled ``Q(K^T V)`` (3, 4)."""
    if variant == 2:
        return q.reshape(*q.shape[:2], -1).sum(-1, keepdims=True)
    if variant == 1:
        return (k * v).reshape(*k.shape[:2], -1).sum(-1, keepdims=True)
    qh, kh, vh = (heads_view(a, heads) for a in (q, k, v))
    counts = qh @ (kh.transpose(0, 1, 3, 2) @ vh)                               # [B, heads, N, Dh]
    scaled = counts * np.asarray(scale).reshape(1, heads, 1, 1)
    return np.ascontiguousarray(scaled.transpose(0, 1, 3, 2)).reshape(q.shape)


def sdsa_output(attn_spikes, q, v, variant: int) -> np.ndarray:
    """SDSA-1 gates Q by the channel spikes, SDSA-2 gates V; SDSA-3/4 output the spikes."""
    if variant == 1:
        return q * attn_spikes[..., None]
    if variant == 2:
        return attn_spikes[..., None] * v
    return attn_spikes


class SDSAKernel(Kernel):
    """SDSA-1..4 on spikes ``q, [k,] v`` (see ``nn.attention``), the attention LIF included; the
    drive and LIF functions are the float ones or those of ``graph.fixed``."""

    def __init__(self, node, drive_fn: Callable = sdsa_drive, step_fn: Callable = lif_step, scale=None):
        super().__init__(node)
        self.variant = int(node.attrs["variant"])
        self.heads = int(node.attrs["heads"])
        self.drive_fn = drive_fn
        self.scale = node.params.get("scale") if scale is None else scale
        self.lif = LIFState(node.attrs["threshold"], node.attrs["tau"], step_fn)

    def reset(self):
        self.lif.reset()

    def step(self, inputs):
        q, k, v = (inputs[0], None, inputs[1]) if self.variant == 2 else inputs
        drive = self.drive_fn(q, k, v, self.variant, self.heads, self.scale)
        return sdsa_output(self.lif.step(drive), q, v, self.variant)


class AddKernel(Kernel):
    def step(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


def spatial_mean(x: np.ndarray) -> np.ndarray:
    return x.reshape(*x.shape[:2], -1).mean(-1)


class MeanKernel(Kernel):
    def __init__(self, node, mean_fn: Callable = spatial_mean):
        super().__init__(node)
        self.mean_fn = mean_fn

    def step(self, inputs):
        return self.mean_fn(inputs[0])


class RelayKernel(Kernel):
    """A delay node is pipeline latency only (``Graph.arrival``): per timestep it passes its input on,
    as the Lava ``DelayLine`` does once outputs are re-aligned by arrival."""

    def step(self, inputs):
        return inputs[0]
