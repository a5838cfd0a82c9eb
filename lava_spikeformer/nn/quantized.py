"""Quantization-aware training: the torch forward of the deployed integer network, bit for bit.

``quantized_forward(model, x)`` folds the model with gradients (``fold.folded_nodes``: BatchNorm
with its running statistics, RepConv, KD heads) and runs ``graph/fixed.py``'s integer network on
the folded tensors: 8-bit weight mantissas with per-channel exponents, the floor after every
synapse, biases and scales as 8-bit mantissas, Lava's bit-accurate LIF (``v`` in 2**-12, ``+1`` bias,
``v > vth << 6``, 24-bit saturation), the mean's 8-bit reciprocal. Its logits and spikes equal
``simulate(to_graph(model), x, precision="fixed")`` exactly (``tests/test_quantized.py``), so a model
trained this way scores on Lava what it scores in PyTorch.

Integers are held in float64 tensors (exact below 2**53). Every rounding, floor and clip passes its
gradient straight through; a spike's gradient is the float LIF's sigmoid surrogate on
``h - threshold`` with ``h = v / (4096 tau)``. Exponents are chosen on the detached weights with the
exporter's own numpy code, so both sides pick the same ones. BatchNorm statistics are frozen (the
folded network is the deployed one); thresholds are not trained here.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..graph import fixed
from .fold import folded_nodes


def _through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient of ``x`` in the backward pass."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return value                                    # evaluation: no graph to keep, two ops saved
    return x + (value - x).detach()


def _round(x: torch.Tensor) -> torch.Tensor:
    return _through(x, torch.round(x))                  # half to even, as numpy


def _floor(x: torch.Tensor) -> torch.Tensor:
    return _through(x, torch.floor(x))


def _weight(w: torch.Tensor, spike_input: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mantissa, 2**-shift per output channel)`` as ``fixed.FixedSynapse`` holds them."""
    _, exponent = fixed.quantize_weight(w.detach().cpu().numpy())
    scale = torch.from_numpy(np.ldexp(1.0, exponent)).to(w).view(-1, *([1] * (w.dim() - 1)))
    mantissa = _round(w * scale).clamp(-fixed.MANTISSA_MAX - 1, fixed.MANTISSA_MAX)
    shift = exponent - fixed.FRAC_BITS if spike_input else exponent
    return mantissa, torch.from_numpy(np.ldexp(1.0, -shift)).to(w)


def _integer_as_mantissa(v: torch.Tensor) -> torch.Tensor:
    """``fixed.quantized_integer`` with a straight-through gradient (``v`` already integer-valued)."""
    _, k = fixed.quantize_integer(v.detach().cpu().numpy().astype(np.int64))
    step = torch.from_numpy(np.ldexp(1.0, k)).to(v)
    return _round(v / step) * step


#: float32 holds every integer of magnitude up to 2**24 exactly
_FLOAT32_EXACT = float(1 << 24)


def _float32_may_be_exact(x: torch.Tensor) -> bool:
    """Whether a float32 convolution of integer-valued ``x`` can be exact: when evaluating on the CPU
    with oneDNN on (its direct convolution, or GEMM for what oneDNN declines; without oneDNN, batches
    >= 16 go to NNPACK's Winograd; a GPU may pick Winograd or TF32). It is exact, and about three times
    as fast as float64, when moreover every partial sum stays below 2**24 (``_Runner._conv``)."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled)


class _Spike(torch.autograd.Function):
    """``v > vth`` (``v`` integer-valued) with the sigmoid surrogate on ``h - threshold``."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, vth: float, unit: float, alpha: float):
        ctx.save_for_backward(v)
        ctx.vth, ctx.unit, ctx.alpha = vth, unit, alpha
        return (v > vth).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        sig = torch.sigmoid(ctx.alpha * (v - ctx.vth) / ctx.unit)
        return grad * ctx.alpha * sig * (1 - sig) / ctx.unit, None, None, None


class _IntegerLIF:
    """``fixed.lif_step_fixed`` on tensors, state kept between steps."""

    def __init__(self, threshold: float, tau: float, alpha: float):
        self.vth = float(fixed.v_threshold(threshold, tau) << fixed.FRAC_BITS)
        self.keep = (fixed.DECAY_ONE - fixed.dv(tau)) / fixed.DECAY_ONE
        self.unit, self.alpha = float(fixed.DECAY_ONE * tau), alpha    # v per unit of h
        self.v: Optional[torch.Tensor] = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x) if self.v is None else self.v
        kept = v * self.keep
        decayed = _through(kept, torch.trunc(kept))                          # sign(v) floor(|v| keep)
        current = x * fixed.ONE
        limit = fixed.V_MAX + 1
        wrapped = torch.where(current > limit, current - 2 * limit, current)
        current = _through(current, torch.where(wrapped <= -limit, current + 2 * limit, wrapped))
        v = decayed + current + fixed.LIF_BIAS
        v = _through(v, v.clamp(-fixed.V_MAX, fixed.V_MAX))
        spikes = _Spike.apply(v, self.vth, self.unit, self.alpha)
        self.v = v * (1 - spikes.detach())
        return spikes


def _sdsa_drive(q, k, v, variant: int, heads: int, scale) -> torch.Tensor:
    """``kernels.sdsa_drive`` on tensors with the integer scale (SDSA-3/4) or 64 (SDSA-1/2)."""
    if variant == 2:
        return q.flatten(2).sum(-1, keepdim=True) * fixed.ONE
    if variant == 1:
        return (k * v).flatten(2).sum(-1, keepdim=True) * fixed.ONE
    qh, kh, vh = (a.reshape(len(a), heads, a.shape[1] // heads, -1).transpose(-1, -2) for a in (q, k, v))
    counts = qh @ (kh.transpose(-1, -2) @ vh)
    scale = _integer_as_mantissa(_round(scale * fixed.ONE))
    return (counts * scale.view(1, heads, 1, 1)).transpose(-1, -2).reshape(q.shape)


class _Runner:
    """One timestep of the folded nodes at a time (the simulator's order and state)."""

    def __init__(self, nodes, alpha: float):
        self.nodes = nodes
        spikes = {n.name: n.spec.output == "spikes" for n in nodes}
        self.spike_input = {n.name: bool(n.inputs) and spikes[n.inputs[0]] for n in nodes}
        self.neurons = {n.name: _IntegerLIF(n.attrs["threshold"], n.attrs["tau"], alpha)
                        for n in nodes if n.op in ("lif", "sdsa")}
        self.synapses = {n.name: _weight(n.params["weight"], self.spike_input[n.name])
                         for n in nodes if n.op in ("conv", "dense")}
        self.row_sums: Dict[str, float] = {}           # largest sum |w| of an output channel, when first needed
        self.biases = {n.name: _integer_as_mantissa(_round(n.params["bias"] * fixed.ONE))
                       for n in nodes if "bias" in n.params}

    def step(self, frame: torch.Tensor) -> Dict[str, torch.Tensor]:
        values = {self.nodes[0].name: frame}
        for node in self.nodes[1:]:
            values[node.name] = getattr(self, f"_{node.op}")(node, [values[i] for i in node.inputs])
        return values

    def _synapse_out(self, node, acc: torch.Tensor) -> torch.Tensor:
        _, factor = self.synapses[node.name]
        y = _floor(acc * factor.view(1, -1, *([1] * (acc.dim() - 2))))
        if node.name in self.biases:
            y = y + self.biases[node.name].view(1, -1, *([1] * (acc.dim() - 2)))
        return y

    def _conv(self, node, inputs):
        a = node.attrs
        mantissa, _ = self.synapses[node.name]
        x, args = inputs[0], (int(a["stride"]), int(a["padding"]), 1, int(a["groups"]))
        if _float32_may_be_exact(x):
            if node.name not in self.row_sums:
                self.row_sums[node.name] = float(mantissa.abs().flatten(1).sum(1).max())
            if float(x.abs().max()) * self.row_sums[node.name] < _FLOAT32_EXACT:    # every partial sum
                return self._synapse_out(node, F.conv2d(x.float(), mantissa.float(), None, *args).double())
        return self._synapse_out(node, F.conv2d(x, mantissa, None, *args))

    def _dense(self, node, inputs):
        mantissa, _ = self.synapses[node.name]
        return self._synapse_out(node, inputs[0].flatten(1) @ mantissa.t())

    def _lif(self, node, inputs):
        return self.neurons[node.name].step(inputs[0])

    def _sdsa(self, node, inputs):
        variant, heads = int(node.attrs["variant"]), int(node.attrs["heads"])
        q, k, v = (inputs[0], None, inputs[1]) if variant == 2 else inputs
        spikes = self.neurons[node.name].step(_sdsa_drive(q, k, v, variant, heads, node.params.get("scale")))
        if variant == 1:
            return q * spikes[..., None]
        if variant == 2:
            return spikes[..., None] * v
        return spikes

    def _add(self, node, inputs):
        return sum(inputs[1:], inputs[0])

    def _mean(self, node, inputs):
        m, k = fixed.mean_reciprocal(inputs[0][0, 0].numel())
        return _floor(inputs[0].flatten(2).sum(-1) * (m / (1 << k)))

    def _delay(self, node, inputs):
        return inputs[0]


def quantized_forward(model, x: torch.Tensor, *, probes: Iterable[str] = ()):
    """Logits of the deployed integer network (model units, float64, ``[B, classes]``); with ``probes``,
    also ``{node: [T, B, ...]}`` of those nodes' integer outputs (spikes 0/1, graded in 1/64)."""
    frames = model.encode(x).to(torch.float64)
    with torch.autocast(device_type=frames.device.type, enabled=False):
        nodes, output = folded_nodes(model)
        runner = _Runner(nodes, model.cfg.surrogate_alpha)
        probes = tuple(probes)
        logits, records = 0, {name: [] for name in probes}
        for t in range(len(frames)):
            values = runner.step(_round(frames[t] * fixed.ONE))
            logits = logits + values[output]
            for name in probes:
                records[name].append(values[name])
        logits = logits / (len(frames) * fixed.ONE)
    if probes:
        return logits, {name: torch.stack(v) for name, v in records.items()}
    return logits
