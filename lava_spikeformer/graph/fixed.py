"""THE integer network: Lava's own bit-accurate arithmetic, so that what lava-nc's stock processes
compute on a Loihi 2 backend is what this module defines (DESIGN.md §11; measured in
``tests/test_stock_lowering.py``). One definition, used by the reference simulator, by every
``fixed_pt`` ProcessModel of ours (fine and fused) and by the lowered stock-process network.

* Graded messages (images, synaptic sums, shortcut sums, pooled values) are integers in units of
  ``2**-FRAC_BITS`` (6 bits: netx's ``w_scale`` 64); spikes are 0/1.
* Weights are 8-bit signed mantissas with a power-of-two exponent per output channel
  (``w ~ m * 2**-e``, ``|m| <= 127``); a synapse outputs ``floor(sum(m * x) * 2**-shift)`` — the
  floor of ``lava.proc.sparse.Sparse``'s ``weight_exp`` shift (one exponent per process: a layer
  becomes one process per exponent group).
* Biases, SDSA-3/4 head scales and the spatial mean's ``1/(H*W)`` are 8-bit mantissas times a power
  of two too (``quantize_integer``, ``mean_reciprocal``): each is a synaptic weight on Loihi (bias
  via an always-on input line, scale on the synapses into the attention neuron, the mean as a
  pooling synapse).
* A LIF neuron is ``lava.proc.lif.LIF``'s ``PyLifModelBitAcc`` with current = this step's input
  (``du = 4095``): ``v = sgn(v) * ((|v| * (4096 - dv)) >> 12) + (x << 6) + 1``, saturated to 24 bits,
  spike iff ``v > vth << 6``, reset to 0; ``dv = round(4096 / tau)``, ``vth = round(tau * threshold * 64)``.
  The ``+ 1`` is a constant bias (``bias_mant = 1``) that turns Lava's strict ``>`` into the model's
  ``>=`` exactly: it never fires alone and decays to 0 within one step (for any ``dv >= 1``).

Where it differs from the float model: the rounding of weights, biases, scales, inputs and ``1/(H*W)``
to their mantissas; the floor after every synapse; the membrane decay truncated to ``2**-12`` each
step; 24-bit saturation. Nothing else (see schema.md, "The integer network").
"""
from __future__ import annotations

import numpy as np

from . import kernels

FRAC_BITS = 6
ONE = 1 << FRAC_BITS
WEIGHT_BITS = 8
MANTISSA_MAX = (1 << (WEIGHT_BITS - 1)) - 1          # 127
DECAY_ONE = 4096
V_FRAC_BITS = 12                                    # the LIF's v counts in 2**-12 (a_in << 6)
V_MAX = (1 << 23) - 1                               # 24-bit signed membrane, saturated
LIF_BIAS = 1                                        # bias_mant that makes ``v > vth << 6`` mean ``>=``


def quantize_input(x: np.ndarray) -> np.ndarray:
    """Graded values in units of 1/64 (round half to even, as numpy)."""
    return np.round(np.asarray(x, dtype=np.float64) * ONE).astype(np.int64)


def quantize_weight(weight: np.ndarray):
    """``(mantissa int64, exponent int64 [out])`` with ``weight ~ mantissa * 2**-exponent`` per output channel."""
    w = np.asarray(weight, dtype=np.float64)
    peak = np.abs(w.reshape(len(w), -1)).max(1)
    exponent = np.where(peak > 0, np.floor(np.log2(MANTISSA_MAX / np.maximum(peak, 1e-300))), 0).astype(np.int64)
    exponent = np.clip(exponent, -8, 24)
    scale = np.ldexp(1.0, exponent).reshape((-1,) + (1,) * (w.ndim - 1))
    mantissa = np.clip(np.round(w * scale), -MANTISSA_MAX - 1, MANTISSA_MAX).astype(np.int64)
    return mantissa, exponent


def quantize_integer(values) -> tuple:
    """Integers as 8-bit mantissas times ``2**k`` (``k >= 0``, the smallest that fits):
    ``(mantissa, k)`` with ``mantissa * 2**k ~ values`` (round half to even)."""
    v = np.asarray(values, dtype=np.int64)
    k = np.zeros(v.shape, dtype=np.int64)
    big = np.abs(v) > MANTISSA_MAX
    if big.any():
        k[big] = np.ceil(np.log2(np.abs(v[big]) / (MANTISSA_MAX + 0.5))).astype(np.int64)
    mantissa = np.round(v / np.ldexp(1.0, k)).astype(np.int64)
    over = np.abs(mantissa) > MANTISSA_MAX              # log2 rounding at the edge: one more bit
    k[over] += 1
    mantissa[over] = np.round(v[over] / np.ldexp(1.0, k[over])).astype(np.int64)
    return mantissa, k


def quantized_integer(values) -> np.ndarray:
    """``values`` (integers) as the chip holds them: ``mantissa << k``."""
    mantissa, k = quantize_integer(values)
    return mantissa << k


def mean_reciprocal(n: int) -> tuple:
    """``(m, k)``: the 8-bit mantissa and shift with ``m * 2**-k ~ 1/n`` (the largest ``k`` whose
    mantissa fits), exact when ``n`` is a power of two."""
    k = int(np.floor(np.log2(MANTISSA_MAX * n)))
    while round((1 << k) / n) > MANTISSA_MAX:
        k -= 1
    return int(round((1 << k) / n)), k


#: float parameter -> the integer datasets a chip holds for it (format v2)
INTEGER_FIELDS = {"weight": ("weight_mant", "weight_exp"), "bias": ("bias_mant", "bias_exp"),
                  "scale": ("scale_mant", "scale_exp")}


def integers(params) -> dict:
    """The integers a chip holds for a node's float parameters: ``weight_mant`` (int8) and
    ``weight_exp`` (``w ~ m * 2**-e`` per output channel); ``bias_mant``/``bias_exp`` and
    ``scale_mant``/``scale_exp`` (``value * 64 ~ m << k``)."""
    out = {}
    for key, value in params.items():
        if key == "weight":
            m, e = quantize_weight(value)
        else:
            m, e = quantize_integer(quantize_input(value))
        mant, exp = INTEGER_FIELDS[key]
        out[mant], out[exp] = m.astype(np.int8), e.astype(np.int8)
    return out


def chip_integers(params, given) -> dict:
    """The integers a chip holds for ``params`` (``INTEGER_FIELDS`` names, int64): those ``given``
    (as a version-2 file stored them: nothing is re-quantized), the quantization of the rest."""
    out = {k: np.asarray(v, dtype=np.int64) for k, v in given.items()}
    missing = {k: v for k, v in params.items() if INTEGER_FIELDS[k][0] not in out}
    out.update({k: np.asarray(v, dtype=np.int64) for k, v in integers(missing).items()})
    return out


def node_integers(node) -> dict:
    """``chip_integers`` of a node: ``Node.integers`` as read from a file, else its quantized floats
    (a graph made in memory, as the exporter writes it)."""
    return chip_integers(node.params, node.integers)


def units(ints: dict, key: str):
    """A stored bias or scale in 1/64 units (``mantissa << k``), or None if the node has none."""
    mant, exp = INTEGER_FIELDS[key]
    return (ints[mant] << ints[exp]) if mant in ints else None


def from_integers(key: str, mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """The float64 value of a stored integer parameter (exact: dyadic); ``integers(from_integers(..))``
    gives the same network (a channel's mantissas may be rescaled by a power of two, not its values)."""
    m, e = np.asarray(mantissa, dtype=np.int64), np.asarray(exponent, dtype=np.int64)
    if key == "weight":
        return np.ldexp(m.astype(np.float64), -e.reshape((-1,) + (1,) * (m.ndim - 1)))
    return (m << e).astype(np.float64) / ONE


def shift_floor(acc: np.ndarray, shift: np.ndarray, axis: int = 1) -> np.ndarray:
    """``floor(acc * 2**-shift)`` per channel along ``axis`` (negative shifts multiply): Lava's
    ``weight_exp`` (``shift = -weight_exp``)."""
    shape = [1] * acc.ndim
    shape[axis] = -1
    shift = np.asarray(shift, dtype=np.int64).reshape(shape)
    return np.right_shift(acc, np.maximum(shift, 0)) * np.left_shift(np.int64(1), np.maximum(-shift, 0))


def dv(tau: float) -> int:
    """The LIF's 12-bit voltage decay: ``v`` keeps ``(4096 - dv) / 4096`` per step."""
    return int(round(DECAY_ONE / tau))


def v_threshold(threshold: float, tau: float) -> int:
    """``vth`` of Lava's LIF (it fires on ``v > vth << 6``): the threshold on ``tau * h`` in 1/64."""
    return int(round(threshold * tau * ONE))


def _decay(v: np.ndarray, tau: float) -> np.ndarray:
    """Lava's sign-preserving decay: ``sgn(v) * ((|v| * (4096 - dv)) >> 12)``."""
    kept = np.abs(v) * (DECAY_ONE - dv(tau))
    return np.sign(v) * np.right_shift(kept, V_FRAC_BITS)


def lif_step_fixed(x: np.ndarray, h: np.ndarray, threshold: float, tau: float):
    """One step of Lava's bit-accurate LIF (``du = 4095``, ``bias_mant = LIF_BIAS``) from the pre-reset
    ``v`` of the previous step (zeros at the start): returns ``(spikes, v)``; ``x`` in units of 1/64,
    ``v`` in units of 2**-12."""
    vth = v_threshold(threshold, tau) << FRAC_BITS
    v = np.where(h > vth, 0, h).astype(np.int64)
    current = np.asarray(x, dtype=np.int64) << FRAC_BITS
    # Lava wraps the 24-bit current once (not a saturation): the Loihi report flags inputs that reach it
    wrapped = np.where(current > V_MAX + 1, current - 2 * (V_MAX + 1), current)
    current = np.where(wrapped <= -(V_MAX + 1), current + 2 * (V_MAX + 1), wrapped)
    v = np.clip(_decay(v, tau) + current + LIF_BIAS, -V_MAX, V_MAX)
    return (v > vth).astype(np.int64), v


class FixedSynapse(kernels.Kernel):
    """conv / dense with 8-bit mantissas and a floor after the shift; spike inputs are 0/1, graded
    inputs in 2**-6 units; the bias (8-bit mantissa << k) is added after the shift."""

    def __init__(self, node, spike_input: bool):
        super().__init__(node)
        ints = node_integers(node)
        self.mantissa, exponent = ints["weight_mant"], ints["weight_exp"]
        self.shift = exponent - FRAC_BITS if spike_input else exponent
        self.bias = units(ints, "bias")

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
        y = shift_floor(np.rint(acc).astype(np.int64), self.shift)
        return y if bias is None else y + bias


def sdsa_drive_fixed(q, k, v, variant: int, heads: int, scale_units) -> np.ndarray:
    """The integer twin of ``kernels.sdsa_drive``: counts times the head scales in 1/64 units
    (``units(node_integers(node), 'scale')``; SDSA-3/4) or 64."""
    if variant >= 3:
        return kernels.sdsa_drive(q, k, v, variant, heads, scale_units)
    return kernels.sdsa_drive(q, k, v, variant, heads, None) * ONE


def spatial_mean_fixed(x: np.ndarray) -> np.ndarray:
    """``floor(sum * m * 2**-k)`` with ``m * 2**-k ~ 1/(H*W)`` (a pooling synapse of one weight)."""
    total = x.reshape(*x.shape[:2], -1).sum(-1)
    m, k = mean_reciprocal(x[0, 0].size)
    return np.right_shift(total * m, k)
