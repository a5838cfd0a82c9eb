"""The paper's LIF neuron on lava-dl slayer's neuron base class.

Dynamics (spikingjelly ``MultiStepLIFNode(tau=2, decay_input, v_reset=0, detach_reset)`` of
the reference), per element and timestep, tensors laid out ``[T, ...]``::

    h[t] = v[t-1] + (x[t] - v[t-1]) / tau        # charge
    s[t] = h[t] >= threshold                     # fire on >=, not >
    v[t] = h[t] * (1 - s[t])                     # hard reset to 0 (reset is not differentiated)

With ``u = 2h`` this is ``u[t] = 0.5 u[t-1] (1 - s[t-1]) + x[t]``, fire iff ``u >= 2 * threshold``:
beta = 0.5 and a threshold of 2 on the undivided input, the form Loihi's CUBA neuron runs
(current decay 4096 = "current is the input", voltage decay 2048).

Built on ``slayer.neuron.base.Neuron`` so the Loihi scaling attributes live where lava-dl keeps
them: exact ``>=`` in floating point, reproducing the reference bit for bit. Forward and backward
are one autograd Function with an explicit time loop: slayer's own CUBA neuron integrates in fixed
point even while training and costs 1.5x more per step on CPU (DESIGN.md §3), and a plain autograd
time loop keeps T graphs of elementwise ops alive. The integer neuron of the deployed network (and
its quantization-aware training) is ``graph/fixed.py`` / ``nn/quantized.py``.

Surrogate gradient: ``d s / d h = alpha * sigmoid(alpha (h - th)) * (1 - sigmoid(...))`` (alpha 4).
"""
from __future__ import annotations

import torch
from .._slayer import slayer

base = slayer.neuron.base

W_SCALE = 64  # slayer/netx fixed-point scale: 6 fractional bits


def lif_sequence(x: torch.Tensor, threshold, tau: float = 2.0):
    """Float LIF over ``x[T, ...]``: returns ``(spikes, h)``, ``h`` the membrane before reset."""
    threshold = torch.as_tensor(threshold, dtype=x.dtype)
    h_all = torch.empty_like(x)
    torch.div(x[0], tau, out=h_all[0])           # v[-1] = 0: h = 0 + (x - 0) / tau = x / tau
    for t in range(1, x.shape[0]):
        v = h_all[t - 1].masked_fill(h_all[t - 1] >= threshold, 0.0)
        torch.add(v, (x[t] - v) / tau, out=h_all[t])
    return (h_all >= threshold).to(x.dtype), h_all


class _FloatLIF(torch.autograd.Function):
    """Whole-sequence LIF: forward keeps only ``h``; backward replays the reset mask from it.
    Written with in-place ops because on CPU this elementwise work, not the convolutions,
    dominates a training step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: torch.Tensor, tau: float, alpha: float):
        spikes, h_all = lif_sequence(x, threshold, tau)
        ctx.save_for_backward(h_all, threshold)
        ctx.tau, ctx.alpha = tau, alpha
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        h_all, threshold = ctx.saved_tensors
        tau, alpha = ctx.tau, ctx.alpha
        sig = (h_all - threshold).mul_(alpha).sigmoid_()
        # d loss / d h through the spike only: alpha * grad * sig * (1 - sig), one fused kernel
        grad_h = torch.ops.aten.sigmoid_backward(grad_spikes * alpha, sig)
        grad_threshold = -grad_h.sum_to_size(threshold.shape) if ctx.needs_input_grad[1] else None
        for t in range(h_all.shape[0] - 2, -1, -1):           # add the membrane path v[t] -> h[t+1]
            carried = grad_h[t + 1] * (1.0 - 1.0 / tau)
            grad_h[t] += carried.masked_fill_(h_all[t] >= threshold, 0.0)
        return grad_h.div_(tau), grad_threshold, None, None


class LIF(base.Neuron):
    """Multi-step LIF on ``[T, ...]`` tensors; see the module docstring for the equations.

    Parameters
    ----------
    threshold : firing threshold on ``h`` (1.0 in blocks, 0.5 for the attention neuron).
    tau : membrane time constant (2.0: the input and the membrane are halved each step).
    alpha : sigmoid surrogate sharpness.
    learnable_threshold : make the threshold a trained parameter (SDSA-4).
    """

    def __init__(self, *, threshold: float = 1.0, tau: float = 2.0, alpha: float = 4.0,
                 learnable_threshold: bool = False):
        if threshold <= 0 or tau <= 1:
            raise ValueError(f"LIF needs threshold > 0 and tau > 1, got threshold={threshold}, tau={tau}")
        super().__init__(threshold=threshold, w_scale=W_SCALE, s_scale=W_SCALE,
                         requires_grad=learnable_threshold)
        self.tau = float(tau)
        self.alpha = float(alpha)
        value = torch.tensor(float(threshold))
        if learnable_threshold:
            self.threshold_param = torch.nn.Parameter(value)
        else:
            self.register_buffer("threshold_param", value, persistent=False)

    @property
    def threshold(self) -> torch.Tensor:
        return self.threshold_param

    @property
    def v_th_mant(self) -> int:
        """Integer threshold on ``u = tau * h`` in units of 1/w_scale (Loihi/netx ``vThMant``)."""
        return int(round(float(self.threshold_param) * self.tau * self.w_scale))

    @property
    def device_params(self) -> dict:
        """netx CUBA neuron fields: current = input each step, voltage halves, fire on >= vThMant."""
        return {"type": "CUBA", "iDecay": 4096, "vDecay": int(round(4096 / self.tau)),
                "vThMant": self.v_th_mant, "refDelay": 1, "gradedSpike": False}

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold_param):g}, tau={self.tau:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FloatLIF.apply(x, self.threshold_param.to(x.dtype), self.tau, self.alpha)
