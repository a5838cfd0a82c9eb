"""Torch model -> export ``Graph``: BatchNorm folded, RepConv re-parameterized, KD heads merged.

Reads the model, never mutates it (lava-dl style: a block exports itself without side effects).
All folding is done in float64 torch ops: the export runs it under ``no_grad`` and converts to numpy;
quantization-aware training (``nn/quantized.py``) runs the same fold with gradients.
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
        weight = conv.weight_2d.to(torch.float64)
        bias = conv.bias.to(torch.float64) if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
        return cls(weight, bias, int(conv.stride[0]), int(conv.padding[0]), int(conv.groups))

    def then_bn(self, bn: BatchNorm) -> "_Affine":
        scale = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps))
        shift = bn.bias.double() - bn.running_mean.double() * scale
        return _Affine(self.weight * scale.view(-1, 1, 1, 1), self.bias * scale + shift,
                       self.stride, self.padding, self.groups)


def _conv_bn(m: ConvBN) -> _Affine:
    return _Affine.of_conv(m.conv).then_bn(m.bn)


def fold_repconv(rep: RepConv) -> _Affine:
    """conv1x1 -> BN (padded with its own zero-input value) -> dw3x3 (no pad) -> conv1x1 -> BN as one
    3x3 convolution with padding 1. The pad value is exactly what the folded conv1x1+BN gives for a
    zero-padded input, so the composition is one affine map of the zero-padded input."""
    first = _Affine.of_conv(rep.conv1x1).then_bn(rep.bn_pad)          # [C, C, 1, 1], bias t
    dw = rep.dw.weight_2d.double()                                      # [C, 1, 3, 3]
    last = _conv_bn(rep.pw)                                             # [C', C, 1, 1]
    w1, w_pw = first.weight[:, :, 0, 0], last.weight[:, :, 0, 0]
    weight = torch.einsum("oc,ckl,ci->oikl", w_pw, dw[:, 0], w1)
    bias = w_pw @ (first.bias * dw[:, 0].sum((1, 2))) + last.bias
    return _Affine(weight, bias, 1, 1, 1)


def _projection(p: Projection) -> _Affine:
    body = fold_repconv(p.body) if isinstance(p.body, RepConv) else _Affine.of_conv(p.body)
    return body.then_bn(p.bn)


class _Builder:
    """Walks the model in order; ``param`` turns a folded float64 tensor into a node parameter
    (numpy for the export, the tensor itself for quantization-aware training)."""

    def __init__(self, model, param=_np):
        self.model = model
        self.param = param
        self.cfg = model.cfg
        self.nodes: List[Node] = []
        self.shapes = {}
        self.neurons = {}          # node name -> the torch LIF it was exported from
        self.block = ""            # the unit being folded: nodes record it (the fused Lava granularity)

    def add(self, name: str, op: str, inputs: Tuple[str, ...], shape, params=None, attrs=None) -> str:
        self.nodes.append(Node(name, op, tuple(inputs), tuple(int(s) for s in shape),
                               dict(params or {}), dict(attrs or {}),
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
        params = {"weight": self.param(affine.weight)}
        if affine.bias is not None and torch.any(affine.bias != 0):
            params["bias"] = self.param(affine.bias)
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
            params["scale"] = self.param(m.scale.reshape(-1).double())
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
        out = self.build_nodes()
        cfg = self.cfg
        return Graph(tuple(self.nodes), out, cfg.timesteps, not cfg.event_input, cfg.to_dict(), cfg.input_spec)

    def build_nodes(self) -> str:
        """Fills ``self.nodes``; returns the name of the output node."""
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
        weight = sum(h.fc.weight.double().flatten(1) for h in heads) / len(heads)   # eval: mean of heads
        bias = sum(h.fc.bias.double() for h in heads) / len(heads)
        return self.add("head.fc", "dense", (x,), (cfg.num_classes,),
                        {"weight": self.param(weight), "bias": self.param(bias)})


def to_graph(model) -> Graph:
    """The eval-mode network of ``model`` (a ``MetaSpikeFormer``) as an export ``Graph``."""
    with torch.no_grad():
        return _Builder(model).build()


def folded_nodes(model) -> Tuple[List[Node], str]:
    """The nodes of ``to_graph(model)`` with float64 torch tensors as parameters, differentiable with
    respect to the model's parameters (BatchNorm folded with its running statistics); and the
    output node's name."""
    builder = _Builder(model, param=lambda t: t)
    return builder.nodes, builder.build_nodes()


def export_hdf5(model, path: os.PathLike, *, integers_only: bool = False) -> Path:
    """Fold ``model`` (eval-mode semantics; the model itself is not modified) and write it atomically;
    ``integers_only``: only the integers a chip holds (no float parameters)."""
    return write_graph(to_graph(model), path, integers_only=integers_only)


def neuron_sources(model) -> dict:
    """``{node name: torch LIF module}`` for every ``lif`` and ``sdsa`` node of ``to_graph(model)``:
    where to hook PyTorch to compare spikes layer by layer."""
    builder = _Builder(model)
    with torch.no_grad():
        builder.build_nodes()
    return builder.neurons
