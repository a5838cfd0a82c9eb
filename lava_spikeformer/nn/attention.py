"""Spike-Driven Self-Attention, the four operators of the paper (Fig. 3, App. A).

Input: binary spikes ``[T, B, C, H, W]`` (the residual unit's LIF output); N = H*W tokens,
``num_heads`` heads of ``C / num_heads`` channels (channel ``c = head * Dh + d``).

* SDSA-1: ``Q * SN(SUM_N(K * V))``          (Hadamard; per-channel token count)
* SDSA-2: ``SN(SUM_N(Q)) * V``              (no Key)
* SDSA-3: ``SN_s(Q (K^T V))``               (linear attention; ``s`` folded into the LIF: the
  reference multiplies by 0.125 and fires at 0.5, i.e. iff count >= 8 at T=1)
* SDSA-4: SDSA-3 with a learnable threshold.

Every product is between spikes and integers: only additions on hardware. The output goes through
the output projection (RepConv-4 + BN). ``learnable_scale`` replaces the fixed ``s`` by one
trained scale per head (small-input variants: their counts are ~0.05 per element at init, so a
fixed "count >= 8" never fires and the projection BN sees zero variance, DESIGN.md §2).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import NeuronFactory, Projection


class SDSA(nn.Module):
    def __init__(self, dim: int, *, neuron: NeuronFactory, num_heads: int = 8, variant: int = 3,
                 qkv_proj: str = "repconv", out_proj: str = "repconv", scale: float = 0.125,
                 attn_threshold: float = 0.5, learnable_scale: bool = False):
        super().__init__()
        if variant not in (1, 2, 3, 4):
            raise ValueError(f"SDSA variant must be 1, 2, 3 or 4, got {variant}")
        if dim % num_heads:
            raise ValueError(f"SDSA dim={dim} must be divisible by num_heads={num_heads}")
        self.variant = variant
        self.num_heads = num_heads
        self.q = Projection(dim, qkv_proj)
        self.q_lif = neuron()
        if variant != 2:
            self.k = Projection(dim, qkv_proj)
            self.k_lif = neuron()
        self.v = Projection(dim, qkv_proj)
        self.v_lif = neuron()
        self.attn_lif = neuron(threshold=attn_threshold, learnable_threshold=(variant == 4))
        if variant in (3, 4):
            init = torch.full((num_heads, 1, 1), float(scale))
            if learnable_scale:
                self.scale = nn.Parameter(init)
            else:
                self.register_buffer("scale", init)
        self.proj = Projection(dim, out_proj)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[T, B, C, H, W] -> [T, B, heads, N, Dh]"""
        t, b, c, h, w = x.shape
        return x.flatten(3).transpose(-1, -2).reshape(t, b, h * w, self.num_heads, c // self.num_heads) \
            .permute(0, 1, 3, 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        q = self.q_lif(self.q(x))
        v = self.v_lif(self.v(x))
        if self.variant == 1:
            k = self.k_lif(self.k(x))
            kv = (k * v).flatten(3).sum(-1, keepdim=True)             # [T, B, C, 1]
            out = q * self.attn_lif(kv).unsqueeze(-1)
        elif self.variant == 2:
            q_count = q.flatten(3).sum(-1, keepdim=True)
            out = self.attn_lif(q_count).unsqueeze(-1) * v
        else:
            k = self.k_lif(self.k(x))
            qh, kh, vh = self._heads(q), self._heads(k), self._heads(v)
            counts = qh @ (kh.transpose(-2, -1) @ vh)                # [T, B, heads, N, Dh]
            scaled = (counts * self.scale).transpose(3, 4).reshape(t, b, c, h, w)
            out = self.attn_lif(scaled)
        return self.proj(out)
