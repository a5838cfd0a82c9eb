"""Plain netx export: a purely sequential network in lava-dl netx's own HDF5 schema, so that
``lava.lib.dl.netx.hdf5.Network`` builds it unchanged (only ``input``/``conv``/``flatten``/``dense``
layers, each synapse with its CUBA ``neuron`` group). Graphs with residual sums, SDSA or delays need
the graph extension instead (``export_hdf5``, format ``lava-spikeformer-netx`` v1).

Layers. A netx layer is one synapse plus one neuron population. Each ``conv`` of the graph is merged
with the LIF that follows it; a run of linear nodes between two neurons that is not a single conv
(the head: last conv -> spatial mean, or spatial mean -> classifier) is composed into one ``dense``
on the flattened input, in CHW order — what netx's ``out.transpose([2, 1, 0]).flatten()`` of Lava's
``(x, y, c)`` layout produces. The classifier is the last layer, with a neuron that never fires and
accumulates the logits in its voltage.

Neuron. Our LIF in ``u = tau * h`` form is ``u[t] = (1 - 1/tau) u_reset[t-1] + x[t]``, spike iff
``u >= tau * threshold`` (``nn/neuron.py``). netx maps a ``CUBA`` group onto Lava's LIF with
``du = iDecay - 1``, ``dv = vDecay``, ``bias_exp = 6``; Lava's bit-accurate model computes
``u = trunc(u (4096 - du - 1) / 4096) + (a << 6)``, ``v = trunc(v (4096 - dv) / 4096) + u + (bias << 6)``,
spike iff ``v > vThMant << 6``, then ``v = 0``. With ``iDecay = 4096`` (current = this step's input)
and ``vDecay = 4096 / tau``, ``V = v / 64`` equals ``scale * u`` when each layer stores integer
weights ``w * scale`` (spike input) or ``w * scale / 64`` (graded input: the image in messages of
1/64), integer biases ``b * scale`` and ``vThMant = scale * tau * threshold``. ``scale`` is one per
layer, the largest that keeps weights within 8 bits, biases within 13 and ``vThMant`` within 17 (on the
first layer the bias usually binds: it is in membrane units while the input carries a factor 64).

What differs from our own references, exactly (tau = 2):

* weights and biases are rounded at one scale per layer (netx's conv has no weight exponent, let
  alone one per channel as ``graph.fixed`` uses);
* Lava fires on ``V > vThMant`` while ``V`` carries 6 fractional bits, i.e. on ``V >= vThMant + 1/64``:
  the threshold is ``1/64`` membrane unit above ours, and no integer ``vThMant`` can express ``>=``;
* ``V`` keeps 6 more fractional bits than ``graph.fixed`` (which truncates ``u`` to 1/64 of a
  model unit each step), so it truncates only after 7 halvings without a spike: for ``T <= 7``
  Lava's integers are exact.

``equivalent_graph`` is this integer network as our own graph: its float64 reference equals Lava
``fixed_pt`` bit for bit for ``T <= 7`` on inputs on the 1/64 grid. netx has no floating-point
path: ``NetDict`` casts weights and biases to ``int`` and its block models are tagged ``fixed_pt``
only (``Loihi2SimCfg(select_tag='floating_pt')`` finds no model for ``Network``).

Timing. Every netx layer adds one step: layer ``i`` (0-based, the input layer not counted) sees
timestep 0 at Lava step ``i + 2``. Lava's neuron applies its bias from step 1, before any input has
arrived, so the file is meant to be loaded with ``reset_interval=T, reset_offset=1``: netx then
resets layer ``i`` at step ``i + 2 (mod T)``, i.e. as each sample's first input arrives, and samples
of T steps can be streamed back to back. The recommended ``hdf5.Network`` arguments are stored as
root attributes (netx ignores them).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

import h5py
import numpy as np

from ..fileio import write_sealed_hdf5
from ..graph import ExportError, Graph, Node
from ..graph.fixed import ONE
from ..graph.ops import OPS

FORMAT = "netx"
PRODUCER = "lava-spikeformer netx_plain"
VERSION = 1

WEIGHT_MAX = 127                  # 8-bit signed weight mantissa
BIAS_MAX = (1 << 12) - 1          # 13-bit signed bias mantissa
VTH_MAX = (1 << 17) - 1           # 17-bit unsigned threshold mantissa
DECAY_ONE = 4096                  # 12-bit decays
INPUT_MESSAGE_BITS = 16           # graded input messages: the image in units of 1/64
RESET_OFFSET = 1                  # netx adds 1 + layer index: layer i resets at step i + 2

_USE_GRAPH_FORMAT = "export the full graph with export_hdf5 (format lava-spikeformer-netx v1) instead"


@dataclass(frozen=True)
class NetxLayer:
    """One netx layer: a synapse (``weight``/``bias`` in model units, torch layout ``[O, C/groups,
    kh, kw]`` or ``[O, C*H*W]``) and its CUBA neuron; ``threshold`` is None for the readout. The file
    stores the integer mantissas; Lava's membrane is ``V = v / 64 = scale * tau * h``."""

    name: str
    kind: str
    shape: Tuple[int, ...]
    input_shape: Tuple[int, ...]
    weight: np.ndarray
    bias: np.ndarray
    scale: float
    input_scale: int
    threshold: Optional[float]
    tau: float
    geometry: Mapping[str, int] = field(default_factory=dict)

    @property
    def weight_mant(self) -> np.ndarray:
        return np.round(self.weight * (self.scale / self.input_scale)).astype(np.int64)

    @property
    def bias_mant(self) -> np.ndarray:
        return np.round(self.bias * self.scale).astype(np.int64)

    @property
    def v_decay(self) -> int:
        return 0 if self.threshold is None else int(round(DECAY_ONE / self.tau))

    @property
    def v_th_mant(self) -> int:
        """Lava fires on ``V >= vThMant + 1/64``: the integer that puts this closest to ``scale * tau * threshold``."""
        if self.threshold is None:
            return VTH_MAX
        return int(round(self.scale * self.tau * self.threshold - 1 / ONE))

    @property
    def flatten(self) -> bool:
        return self.kind == "dense" and len(self.input_shape) > 1


# ------------------------------------------------------------------------------ the chain
def _check_chain(graph: Graph) -> None:
    """Raise for the first node plain netx cannot express."""
    previous = graph.input.name
    for node in graph.nodes[1:]:
        where = f"node {node.name!r} ({node.op})"
        if OPS[node.op].netx_plain:
            raise ExportError(f"{where}: {OPS[node.op].netx_plain}; {_USE_GRAPH_FORMAT}")
        if node.inputs != (previous,):
            raise ExportError(f"{where}: reads {list(node.inputs)}, not only the node before it ({previous!r}); "
                              f"plain netx layers are strictly sequential; {_USE_GRAPH_FORMAT}")
        previous = node.name


def _segments(graph: Graph) -> List[Tuple[List[Node], Optional[Node]]]:
    """``[(linear nodes, the LIF after them or None for the readout)]``."""
    segments, linear = [], []
    for node in graph.nodes[1:]:
        if node.op == "lif":
            if not linear:
                raise ExportError(f"node {node.name!r} (lif): no synapse before it; a netx layer is a "
                                  f"synapse followed by its neuron")
            segments.append((linear, node))
            linear = []
        else:
            linear.append(node)
    if linear:
        segments.append((linear, None))
    return segments


def _hits(kernel: int, size: int, out_size: int, stride: int, padding: int) -> np.ndarray:
    """``[kernel, size]``: 1 where some output position reads input position ``y`` through tap ``i``."""
    hits = np.zeros((kernel, size))
    for i in range(kernel):
        rows = np.arange(out_size) * stride - padding + i
        hits[i, rows[(rows >= 0) & (rows < size)]] = 1.0
    return hits


def _conv_then_mean(node: Node, in_shape: Tuple[int, ...]) -> np.ndarray:
    """The ``[O, C*H*W]`` matrix of spatial-mean(conv(x)) without bias."""
    w = node.params["weight"]
    out_ch, ch_per_group, kh, kw = w.shape
    channels, height, width = in_shape
    _, out_h, out_w = node.shape
    stride, padding, groups = (int(node.attrs[k]) for k in ("stride", "padding", "groups"))
    per_group = np.einsum("ocij,iy,jx->ocyx", w, _hits(kh, height, out_h, stride, padding),
                          _hits(kw, width, out_w, stride, padding)) / (out_h * out_w)
    full = np.zeros((out_ch, channels, height, width))
    out_per_group = out_ch // groups
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        full[rows, g * ch_per_group:(g + 1) * ch_per_group] = per_group[rows]
    return full.reshape(out_ch, -1)


def _compose(nodes: List[Node], in_shape: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """``conv -> mean``, ``mean``, ``dense`` runs (in that order) as one ``(weight [O, N], bias [O])``."""
    weight, bias, shape = None, None, tuple(in_shape)
    for k, node in enumerate(nodes):
        where = f"node {node.name!r} ({node.op})"
        if node.op == "conv":
            if k != 0 or len(nodes) < 2 or nodes[1].op != "mean":
                raise ExportError(f"{where}: a conv without a neuron after it is only expressible when a spatial "
                                  f"mean follows it directly (plain netx has no graded conv output)")
            continue
        if node.op == "mean":
            if weight is not None:
                raise ExportError(f"{where}: plain netx can only fold a spatial mean that follows a neuron or a conv")
            if k == 1:                                       # after the conv (which is only accepted at k = 0)
                conv = nodes[0]
                weight = _conv_then_mean(conv, shape)
                bias = conv.params.get("bias", np.zeros(conv.shape[0]))
            else:
                channels, area = shape[0], int(np.prod(shape[1:]))
                weight = np.kron(np.eye(channels), np.full((1, area), 1.0 / area))
                bias = np.zeros(channels)
        elif node.op == "dense":
            w = node.params["weight"]
            b = node.params.get("bias", np.zeros(w.shape[0]))
            weight, bias = (w, b) if weight is None else (w @ weight, w @ bias + b)
        else:
            raise ExportError(f"{where}: not expressible as a netx synapse")
    return np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)


def _scale(weight: np.ndarray, bias: np.ndarray, input_scale: int, threshold: Optional[float], tau: float,
           timesteps: int) -> float:
    """The largest scale that keeps weights, biases and the threshold within Loihi's fields. A hidden
    layer's spikes do not depend on its scale, so it uses the full 8 bits; the readout's scale is a
    power of two (its voltage converts to logits exactly) with ``T * (sum |w| + |b|) <= VTH_MAX``, so
    that it never fires or saturates."""
    limits = [WEIGHT_MAX * input_scale / max(float(np.abs(weight).max()), 1e-300)]
    if bias.size and np.abs(bias).max() > 0:
        limits.append(BIAS_MAX / float(np.abs(bias).max()))
    if threshold is not None:
        limits.append(VTH_MAX / (tau * threshold))
        return min(limits)
    worst_step = float((np.abs(weight).sum(1) + np.abs(bias)).max())      # its input is spikes
    if worst_step > 0:
        limits.append(VTH_MAX / (timesteps * worst_step))
    return float(2.0 ** np.floor(np.log2(min(limits))))


def netx_layers(graph: Graph) -> List[NetxLayer]:
    """The layers ``write_netx`` writes; raises ``ExportError`` for the first node netx cannot express."""
    _check_chain(graph)
    layers: List[NetxLayer] = []
    shape = tuple(graph.input.shape)
    for linear, lif in _segments(graph):
        names = [n.name for n in linear] + ([lif.name] if lif is not None else [])
        threshold = None if lif is None else float(lif.attrs["threshold"])
        tau = 1.0 if lif is None else float(lif.attrs["tau"])
        input_scale = ONE if not layers else 1
        if len(linear) == 1 and linear[0].op == "conv":
            conv = linear[0]
            if lif is None:
                raise ExportError(f"node {conv.name!r} (conv): the output of a plain netx network must be a dense layer")
            if int(conv.attrs["groups"]) >= 128:
                raise ExportError(f"node {conv.name!r} (conv): groups={conv.attrs['groups']} >= 128; lava.proc.conv "
                                  f"stores groups as int8")
            weight, bias = conv.params["weight"], conv.params.get("bias", np.zeros(conv.shape[0]))
            kind, geometry = "conv", {k: int(conv.attrs[k]) for k in ("stride", "padding", "groups")}
        else:
            weight, bias = _compose(linear, shape)
            kind, geometry = "dense", {}
        if input_scale != 1 and kind == "dense":
            raise ExportError(f"node {linear[0].name!r} ({linear[0].op}): the first netx layer must be a conv "
                              f"(it receives the graded input)")
        scale = _scale(weight, bias, input_scale, threshold, tau, graph.timesteps)
        layers.append(NetxLayer(
            name="+".join(names), kind=kind, shape=tuple(linear[-1].shape), input_shape=shape,
            weight=np.asarray(weight, dtype=np.float64), bias=np.asarray(bias, dtype=np.float64),
            scale=scale, input_scale=input_scale,
            threshold=threshold, tau=tau, geometry=geometry))
        shape = tuple(linear[-1].shape)
    if layers[-1].threshold is not None:
        raise ExportError(f"node {graph.output!r}: a plain netx network ends with the classifier (a dense without LIF)")
    return layers


def _as_graph(graph_or_model) -> Graph:
    if isinstance(graph_or_model, Graph):
        return graph_or_model
    from ..nn.fold import to_graph
    return to_graph(graph_or_model)


# ------------------------------------------------------------------------------ writing
def _write_neuron(group: h5py.Group, layer: NetxLayer) -> None:
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data=np.bytes_("CUBA"))
    neuron.create_dataset("iDecay", data=DECAY_ONE)            # du = 4095: the current is this step's input
    neuron.create_dataset("vDecay", data=layer.v_decay)        # 0 for the readout: it accumulates
    neuron.create_dataset("vThMant", data=layer.v_th_mant)
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=False)


def write_netx(graph_or_model, path: os.PathLike) -> Path:
    """Write a pure-chain graph (or a ``MetaSpikeFormer``, folded first) in netx's schema, atomically.

    Load with ``hdf5.Network(net_config=path, input_message_bits=16, reset_interval=T, reset_offset=1)``;
    send the input as integers ``round(x * 64)`` in Lava's ``(x, y, c)`` layout. The readout layer's
    voltage ``v`` after the last step of a sample is ``T * logits * output_scale`` (root attribute)."""
    graph = _as_graph(graph_or_model)
    layers = netx_layers(graph)
    path = Path(path)

    def fill(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["producer"] = PRODUCER
        f.attrs["version"] = VERSION
        f.attrs["timesteps"] = graph.timesteps
        f.attrs["static_input"] = graph.static_input
        f.attrs["input_scale"] = ONE
        f.attrs["input_message_bits"] = INPUT_MESSAGE_BITS
        f.attrs["reset_interval"] = graph.timesteps
        f.attrs["reset_offset"] = RESET_OFFSET
        f.attrs["latency"] = len(layers)
        f.attrs["output_scale"] = layers[-1].scale * ONE
        f.attrs["model_config"] = json.dumps(graph.model_config)
        root = f.create_group("layer")

        def add(kind: str) -> h5py.Group:
            group = root.create_group(str(len(root)))
            group.create_dataset("type", data=np.bytes_(kind))           # netx reads fixed-length bytes
            return group

        add("input").create_dataset("shape", data=np.array(graph.input.shape, dtype=np.int64))
        for layer in layers:
            if layer.flatten:
                add("flatten")
            g = add(layer.kind)
            g.attrs["nodes"] = layer.name
            g.attrs["scale"] = layer.scale
            g.create_dataset("shape", data=np.array(layer.shape, dtype=np.int64))
            g.create_dataset("weight", data=layer.weight_mant)
            g.create_dataset("bias", data=layer.bias_mant)
            if layer.kind == "conv":
                for key, value in layer.geometry.items():
                    g.create_dataset(key, data=value)
                g.create_dataset("dilation", data=1)
            _write_neuron(g, layer)

    return write_sealed_hdf5(path, fill)


# ------------------------------------------------------------------------------ reference
def equivalent_graph(graph_or_model, *, quantized: bool = True) -> Graph:
    """The graph a plain-netx file computes: its layers as ``conv``/``dense`` + ``lif`` nodes.

    ``quantized=True``: the integer network itself. Hidden layers work in membrane units ``V``
    (integer weights and biases — times 64 for the first layer, whose input ``x`` arrives as
    ``x * 64`` — and thresholds ``(vThMant + 1/64) / tau``: Lava's strict ``>`` on a 1/64 grid); the
    readout's weights and bias are divided by its power-of-two scale, so its output is in logits.
    ``simulate`` of it on inputs on the 1/64 grid equals Lava ``fixed_pt`` bit for bit for T <= 7
    (tau = 2), all in exact float64 arithmetic. ``quantized=False``: the same layers with the model's
    own weights; equal to ``graph`` up to float rounding (the merge of conv, mean and classifier is exact)."""
    graph = _as_graph(graph_or_model)
    nodes = [graph.input]
    for layer in netx_layers(graph):
        if not quantized:
            params = {"weight": layer.weight, "bias": layer.bias}
        elif layer.threshold is None:
            params = {"weight": layer.weight_mant / layer.scale, "bias": layer.bias_mant / layer.scale}
        else:
            params = {"weight": layer.weight_mant * float(layer.input_scale), "bias": layer.bias_mant.astype(float)}
        synapse = Node(f"{layer.name}.synapse", layer.kind, (nodes[-1].name,), layer.shape, params,
                       dict(layer.geometry))
        nodes.append(synapse)
        if layer.threshold is not None:
            if quantized:
                attrs = {"threshold": (layer.v_th_mant + 1 / ONE) / layer.tau, "tau": DECAY_ONE / layer.v_decay}
            else:
                attrs = {"threshold": layer.threshold, "tau": layer.tau}
            nodes.append(Node(layer.name, "lif", (synapse.name,), layer.shape, {}, attrs))
    return Graph(tuple(nodes), nodes[-1].name, graph.timesteps, graph.static_input, graph.model_config)
