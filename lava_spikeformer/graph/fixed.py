"""Fixed point, Loihi style: the integer network that Lava's ``fixed_pt`` models run.

A deterministic function of the float export (so one file serves both tags):

* graded values (images, synaptic outputs, membranes, shortcut sums) are integers in units of
  ``2**-FRAC_BITS`` (6 bits: slayer/netx's ``w_scale`` 64); spikes are 0/1;
* weights are 8-bit signed mantissas with a power-of-two exponent per output channel
  (``w ~ m * 2**-e``, ``|m| <= 127``); the accumulated sum is shifted back to graded units with
  round-half-up; biases are integers in graded units;
* the LIF integrates ``u = tau * h`` (Loihi's voltage with current = input):
  ``u[t] = trunc(u[t-1] * (4096 - dv) / 4096) + x[t]`` with ``dv = round(4096 / tau)``
  (2048: halves), spike iff ``u >= round(tau * threshold * 64)``, reset to 0;
* SDSA's integer counts are multiplied by ``round(scale * 64)`` (SDSA-3/4) or by 64 (SDSA-1/2).

Per-channel weight exponents are an extension of netx's per-layer exponent: BatchNorm folding
gives output channels whose scales differ by more than 8 bits can resolve.
"""
from __future__ import annotations

import numpy as np

from . import kernels

FRAC_BITS = 6
ONE = 1 << FRAC_BITS
WEIGHT_BITS = 8
DECAY_ONE = 4096


def quantize_input(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) * ONE).astype(np.int64)


def quantize_weight(weight: np.ndarray):
    """``(mantissa int64, exponent int64 [out])`` with ``weight ~ mantissa * 2**-exponent`` per output channel."""
    w = np.asarray(weight, dtype=np.float64)
    peak = np.abs(w.reshape(len(w), -1)).max(1)
    limit = (1 << (WEIGHT_BITS - 1)) - 1
    exponent = np.where(peak > 0, np.floor(np.log2(limit / np.maximum(peak, 1e-300))), 0).astype(np.int64)
    exponent = np.clip(exponent, -8, 24)
    scale = np.ldexp(1.0, exponent).reshape((-1,) + (1,) * (w.ndim - 1))
    mantissa = np.clip(np.round(w * scale), -limit - 1, limit).astype(np.int64)
    return mantissa, exponent


def shift_round(acc: np.ndarray, shift: np.ndarray, axis: int = 1) -> np.ndarray:
    """``acc * 2**-shift`` rounded half up, per channel along ``axis`` (negative shifts multiply)."""
    shape = [1] * acc.ndim
    shape[axis] = -1
    shift = np.asarray(shift, dtype=np.int64).reshape(shape)
    right = np.maximum(shift, 0)
    half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
    return np.right_shift(acc + half, right) * np.left_shift(np.int64(1), np.maximum(-shift, 0))


def decay_factor(tau: float) -> int:
    return DECAY_ONE - int(round(DECAY_ONE / tau))


def v_threshold(threshold: float, tau: float) -> int:
    return int(round(threshold * tau * ONE))


def lif_step_fixed(x: np.ndarray, h: np.ndarray, threshold: float, tau: float):
    """The integer twin of ``kernels.lif_step``: from the pre-reset ``u`` of the previous step (zeros at
    the start), returns ``(spikes, u)``; ``x`` and ``u`` are in units of 1/64."""
    vth = v_threshold(threshold, tau)
    decayed = np.where(h >= vth, 0, h).astype(np.int64) * decay_factor(tau)
    u = np.where(decayed >= 0, decayed // DECAY_ONE, -((-decayed) // DECAY_ONE)) + x   # trunc toward 0
    return (u >= vth).astype(np.int64), u


class FixedSynapse(kernels.Kernel):
    """conv / dense with 8-bit mantissas; spike inputs are 0/1, graded inputs in 2**-6 units."""

    def __init__(self, node, spike_input: bool):
        super().__init__(node)
        self.mantissa, exponent = quantize_weight(node.params["weight"])
        self.shift = exponent - FRAC_BITS if spike_input else exponent
        self.bias = quantize_input(node.params["bias"]) if "bias" in node.params else None

    def step(self, inputs):
        # Integer sums computed in float64 BLAS: exact while |sum| < 2**53 (here < 2**40: 8-bit
        # mantissas x 24-bit inputs x fan-in < 2**16), and 10-100x faster than numpy's int matmul.
        x = inputs[0].astype(np.float64)
        w = self.mantissa.astype(np.float64)
        if self.node.op == "conv":
            a = self.node.attrs
            acc = kernels.conv2d(x, w, None, int(a["stride"]), int(a["padding"]), int(a["groups"]))
            bias = None if self.bias is None else self.bias[None, :, None, None]
        else:
            acc = x.reshape(len(x), -1) @ w.T
            bias = None if self.bias is None else self.bias[None, :]
        y = shift_round(np.rint(acc).astype(np.int64), self.shift)
        return y if bias is None else y + bias


def sdsa_drive_fixed(q, k, v, variant: int, heads: int, scale) -> np.ndarray:
    """The integer twin of ``kernels.sdsa_drive``: counts times ``round(scale * 64)`` (SDSA-3/4) or 64."""
    if variant >= 3:
        return kernels.sdsa_drive(q, k, v, variant, heads, quantize_input(scale))
    return kernels.sdsa_drive(q, k, v, variant, heads, None) * ONE


def spatial_mean_fixed(x: np.ndarray) -> np.ndarray:
    """Integer spatial mean, truncated toward zero."""
    total = x.reshape(*x.shape[:2], -1).sum(-1)
    n = x[0, 0].size
    return np.where(total >= 0, total // n, -((-total) // n))
