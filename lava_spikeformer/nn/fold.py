"""Torch model -> export ``Graph``: BatchNorm folded, RepConv re-parameterized, KD heads merged.

Reads the model, never mutates it (lava-dl style: a block exports itself without side effects).
All folding is done in float64.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ..graph import Graph, Node, write_graph
from ..graph.ops import conv_output_hw
from .attention import SDSA
from .blocks import ConvBlock, Residual, TransformerBlock
from .layers import ChannelConv, ConvBN, Downsampling, Projection, RepConv, SepConv
from .synapse import BatchNorm, Conv


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


class _Affine:
    """A convolution ``weight, bias`` (float64 tensors) with its geometry, before export."""

    def __init__(self, weight, bias, stride=1, padding=0, groups=1):
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.groups = stride, padding, groups

    @classmethod
    def of_conv(cls, conv: Conv) -> "_Affine":
        weight = conv.weight_2d.detach().to(torch.float64)
        bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
        return cls(weight, bias, int(conv.stride[0]), int(conv.padding[0]), int(conv.groups))

    def then_bn(self, bn: BatchNorm) -> "_Affine":
        scale = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps))
        shift = bn.bias.detach().double() - bn.running_mean.double() * scale
        return _Affine(self.weight * scale.view(-1, 1, 1, 1), self.bias * scale + shift,
                       self.stride, self.padding, self.groups)


def _conv_bn(m: ConvBN) -> _Affine:
    return _Affine.of_conv(m.conv).then_bn(m.bn)


def fold_repconv(rep: RepConv) -> _Affine:
    """conv1x1 -> BN (padded with its own zero-input value) -> dw3x3 (no pad) -> conv1x1 -> BN as one
    3x3 convolution with padding 1. The pad value is exactly what the folded conv1x1+BN gives for a
    zero-padded input, so the composition is one affine map of the zero-padded input."""
    first = _Affine.of_conv(rep.conv1x1).then_bn(rep.bn_pad)          # [C, C, 1, 1], bias t
    dw = rep.dw.weight_2d.detach().double()                             # [C, 1, 3, 3]
    last = _conv_bn(rep.pw)                                             # [C', C, 1, 1]
    w1, w_pw = first.weight[:, :, 0, 0], last.weight[:, :, 0, 0]
    weight = torch.einsum("oc,ckl,ci->oikl", w_pw, dw[:, 0], w1)
    bias = w_pw @ (first.bias * dw[:, 0].sum((1, 2))) + last.bias
    return _Affine(weight, bias, 1, 1, 1)


def _projection(p: Projection) -> _Affine:
    body = fold_repconv(p.body) if isinstance(p.body, RepConv) else _Affine.of_conv(p.body)
    return body.then_bn(p.bn)


class _Builder:
    def __init__(self, model):
        self.model = model
        self.cfg = model.cfg
        self.nodes: List[Node] = []
        self.shapes = {}
        self.neurons = {}          # node name -> the torch LIF it was exported from
        self.block = ""            # the unit being folded: nodes record it (the fused Lava granularity)

    def add(self, name: str, op: str, inputs: Tuple[str, ...], shape, params=None, attrs=None) -> str:
        self.nodes.append(Node(name, op, tuple(inputs), tuple(int(s) for s in shape),
                               {k: np.ascontiguousarray(v) for k, v in (params or {}).items()}, dict(attrs or {}),
                               self.block))
        self.shapes[name] = tuple(int(s) for s in shape)
        return name

    def lif(self, name: str, src: str, neuron) -> str:
        self.neurons[name] = neuron
        return self.add(name, "lif", (src,), self.shapes[src],
                        attrs={"threshold": float(neuron.threshold_param), "tau": float(neuron.tau)})

    def conv(self, name: str, src: str, affine: _Affine) -> str:
        c, h, w = self.shapes[src]
        out_hw = conv_output_hw((h, w), affine.weight.shape[2:], affine.stride, affine.padding)
        params = {"weight": _np(affine.weight)}
        if affine.bias is not None and torch.any(affine.bias != 0):
            params["bias"] = _np(affine.bias)
        return self.add(name, "conv", (src,), (affine.weight.shape[0], *out_hw), params,
                        {"stride": affine.stride, "padding": affine.padding, "groups": affine.groups})

    # ------------------------------------------------------------------ branches
    def sepconv(self, name: str, src: str, m: SepConv) -> str:
        x = self.conv(f"{name}.pw1", src, _conv_bn(m.pw1))
        x = self.lif(f"{name}.lif", x, m.lif)
        dw = _Affine.of_conv(m.dw)
        dw.bias = None
        x = self.conv(f"{name}.dw", x, dw)
        return self.conv(f"{name}.pw2", x, _conv_bn(m.pw2))

    def channel_conv(self, name: str, src: str, m: ChannelConv) -> str:
        x = self.conv(f"{name}.fc1", src, _conv_bn(m.fc1))
        x = self.lif(f"{name}.lif", x, m.lif)
        return self.conv(f"{name}.fc2", x, _conv_bn(m.fc2))

    def sdsa(self, name: str, src: str, m: SDSA) -> str:
        streams = {}
        for key in ("q", "k", "v"):
            if hasattr(m, key):
                x = self.conv(f"{name}.{key}", src, _projection(getattr(m, key)))
                streams[key] = self.lif(f"{name}.{key}_lif", x, getattr(m, f"{key}_lif"))
        params = {}
        if m.variant in (3, 4):
            params["scale"] = _np(m.scale.reshape(-1))
        self.neurons[f"{name}.attn"] = m.attn_lif
        x = self.add(f"{name}.attn", "sdsa", tuple(streams.values()), self.shapes[src], params,
                     {"variant": m.variant, "heads": m.num_heads, "threshold": float(m.attn_lif.threshold_param),
                      "tau": float(m.attn_lif.tau)})
        return self.conv(f"{name}.proj", x, _projection(m.proj))

    def residual(self, name: str, src: str, r: Residual) -> str:
        branch = r.branch
        build = {SepConv: self.sepconv, ChannelConv: self.channel_conv, SDSA: self.sdsa}
        kind = next(fn for cls, fn in build.items() if isinstance(branch, cls))
        if r.shortcut == "ms":
            out = kind(f"{name}.branch", self.lif(f"{name}.lif", src, r.lif), branch)
            return self.add(f"{name}.add", "add", (src, out), self.shapes[src])
        if r.shortcut == "vs":
            out = kind(f"{name}.branch", src, branch)
            total = self.add(f"{name}.add", "add", (src, out), self.shapes[src])
            return self.lif(f"{name}.lif", total, r.lif)
        out = self.lif(f"{name}.lif", kind(f"{name}.branch", src, branch), r.lif)
        return self.add(f"{name}.add", "add", (src, out), self.shapes[src])

    def downsampling(self, name: str, src: str, d: Downsampling) -> str:
        if not isinstance(d.lif_in, torch.nn.Identity):
            src = self.lif(f"{name}.lif_in", src, d.lif_in)
        x = self.conv(f"{name}.conv", src, _conv_bn(d.encode))
        if not isinstance(d.lif_out, torch.nn.Identity):
            x = self.lif(f"{name}.lif_out", x, d.lif_out)
        return x

    def build(self) -> Graph:
        cfg, model = self.cfg, self.model
        x = self.add("input", "input", (), (cfg.in_channels, cfg.img_size, cfg.img_size))
        for s, stage in enumerate(model.stages):
            for b, block in enumerate(stage):
                name = f"s{s}.b{b}"
                if isinstance(block, Downsampling):
                    self.block = f"s{s}.down"
                    x = self.downsampling(self.block, x, block)
                elif isinstance(block, (ConvBlock, TransformerBlock)):
                    for unit_name, unit in block.named_children():
                        self.block = f"{name}.{unit_name}"
                        x = self.residual(self.block, x, unit)
                else:
                    raise TypeError(f"cannot export stage module {type(block).__name__}")
        self.block = "head"
        x = self.add("head.mean", "mean", (x,), (self.shapes[x][0],))
        if not isinstance(model.head.lif, torch.nn.Identity):
            x = self.lif("head.lif", x, model.head.lif)
        heads = [model.head] + ([model.head_kd] if model.head_kd is not None else [])
        weight = sum(h.fc.weight.detach().double().flatten(1) for h in heads) / len(heads)   # eval: mean of heads
        bias = sum(h.fc.bias.detach().double() for h in heads) / len(heads)
        out = self.add("head.fc", "dense", (x,), (cfg.num_classes,), {"weight": _np(weight), "bias": _np(bias)})
        return Graph(tuple(self.nodes), out, cfg.timesteps, not cfg.event_input, cfg.to_dict(), cfg.input_spec)


def to_graph(model) -> Graph:
    """The eval-mode network of ``model`` (a ``MetaSpikeFormer``) as an export ``Graph``."""
    if model.cfg.neuron_mode != "float":
        raise ValueError(f"{model.cfg.name}: export a float-mode model (neuron_mode='float'); "
                         f"fixed point is derived from the float export")
    return _Builder(model).build()


def export_hdf5(model, path: os.PathLike) -> Path:
    """Fold ``model`` (eval-mode semantics; the model itself is not modified) and write it atomically."""
    return write_graph(to_graph(model), path)


def neuron_sources(model) -> dict:
    """``{node name: torch LIF module}`` for every ``lif`` and ``sdsa`` node of ``to_graph(model)``:
    where to hook PyTorch to compare spikes layer by layer."""
    builder = _Builder(model)
    builder.build()
    return builder.neurons
