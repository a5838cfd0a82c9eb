"""NIR export and import: the export graph as a ``nir.NIRGraph`` (nir 1.0.x), the exchange format
that snnTorch, Norse, Sinabs/Speck, Rockpool/Xylo and SpiNNaker2 read (lava-nc has no NIR reader).

=======  =====================================================================================
ours     NIR
=======  =====================================================================================
input    ``Input``
conv     ``Conv2d`` (dilation 1; NIR requires a bias, so a conv without one gets zeros)
dense    ``Affine`` (``Linear`` without bias), after a ``Flatten`` ``<name>.flatten`` when it
         reads a ``(C, H, W)`` node
lif      ``LIF``: ``tau = tau``, ``r = 1``, ``v_leak = 0``, ``v_reset = 0``, ``v_threshold = threshold``
add      no node: the edges of its inputs enter its readers (NIR sums the edges entering a node)
mean     ``AvgPool2d`` over the whole ``(H, W)`` (``<name>.pool``) + ``Flatten`` (``<name>``)
delay    ``Delay`` of ``steps`` (loader-made pipeline latency, never in exports: NIR runtimes,
         whose synapses act within the step, run it as a real shift)
sdsa     refused: no NIR node multiplies two time-varying inputs, as ``Q (K^T V)`` does
=======  =====================================================================================

Time. NIR is continuous-time; this file's time unit is one timestep (``dt = 1``). NIR's LIF,
``tau dv/dt = (v_leak - v) + r I``, integrated by forward Euler with ``dt = 1`` and ``r = 1``,
``v_leak = 0`` is ``v + (I - v) / tau``: our ``h = v + (x - v) / tau``. Runtimes that fix their own
``dt`` (snnTorch: 1e-4) must scale every ``tau`` by it.

Firing. NIR's LIF fires on ``v > v_threshold`` and then sets ``v = v_reset`` (0 here: our hard
reset); ours fires on ``h >= threshold``: the two differ only on a membrane exactly at threshold.
The integration scheme, ``dt`` and when in a step the reset acts are left to each runtime.

What NIR cannot hold — node order, the sums (``add`` nodes), blocks, which params a node has, the
timesteps, static input, model config and input contract — travels as JSON in the graph metadata
(``lava_spikeformer``), so that ``read_nir`` restores the original ``Graph`` bit for bit.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import h5py
import nir
import numpy as np

from ..fileio import check_seal, write_sealed_hdf5
from ..graph import ExportError, Graph, InputSpec, Node

META_KEY = "lava_spikeformer"
VERSION = 1
OUTPUT = "output"

#: NIR nodes for one of ours, each reading the one before; the last one carries our node's name
Chain = List[Tuple[str, nir.NIRNode]]


def _full(node: Node, value: float) -> np.ndarray:
    return np.full(node.shape, float(value))


def _one(name: str, field: str, values):
    """The single value of a NIR field that holds one value per neuron / axis."""
    unique = np.unique(np.asarray(values))
    if unique.size != 1:
        raise ExportError(f"NIR node {name!r}: {field} must hold one value, got {unique[:4]}")
    return unique[0].item()


# ------------------------------------------------------------------------------ per op
def _input_to(node: Node, src: Optional[tuple]) -> Chain:
    return [(node.name, nir.Input(input_type={"input": np.array(node.shape)}))]


def _conv_to(node: Node, src: tuple) -> Chain:
    p, a = node.params, node.attrs
    bias = p["bias"] if "bias" in p else np.zeros(p["weight"].shape[0])
    return [(node.name, nir.Conv2d(input_shape=tuple(src[1:]), weight=p["weight"], stride=int(a["stride"]),
                                   padding=int(a["padding"]), dilation=1, groups=int(a["groups"]), bias=bias))]


def _conv_from(name: str, n: nir.Conv2d) -> Tuple[dict, dict]:
    if _one(name, "dilation", n.dilation) != 1:
        raise ExportError(f"NIR node {name!r}: dilation must be 1, got {n.dilation}")
    attrs = {"stride": int(_one(name, "stride", n.stride)), "padding": int(_one(name, "padding", n.padding)),
             "groups": int(n.groups)}
    return {"weight": n.weight, "bias": n.bias}, attrs


def _dense_to(node: Node, src: tuple) -> Chain:
    p = node.params
    dense = nir.Affine(weight=p["weight"], bias=p["bias"]) if "bias" in p else nir.Linear(weight=p["weight"])
    if len(src) == 1:
        return [(node.name, dense)]
    return [(f"{node.name}.flatten", nir.Flatten(input_type={"input": np.array(src)}, start_dim=0)), (node.name, dense)]


def _dense_from(name: str, n) -> Tuple[dict, dict]:
    return ({"weight": n.weight, "bias": n.bias} if isinstance(n, nir.Affine) else {"weight": n.weight}), {}


def _lif_to(node: Node, src: tuple) -> Chain:
    a = node.attrs
    return [(node.name, nir.LIF(tau=_full(node, a["tau"]), r=_full(node, 1), v_leak=_full(node, 0),
                                v_threshold=_full(node, a["threshold"]), v_reset=_full(node, 0)))]


def _lif_from(name: str, n: nir.LIF) -> Tuple[dict, dict]:
    for field, expected in (("r", 1.0), ("v_leak", 0.0), ("v_reset", 0.0)):
        if _one(name, field, getattr(n, field)) != expected:
            raise ExportError(f"NIR node {name!r}: our LIF has {field} = {expected:g}, got {getattr(n, field)}")
    return {}, {"threshold": float(_one(name, "v_threshold", n.v_threshold)), "tau": float(_one(name, "tau", n.tau))}


def _mean_to(node: Node, src: tuple) -> Chain:
    c, h, w = src
    pool = nir.AvgPool2d(kernel_size=np.array([h, w]), stride=np.array([h, w]), padding=np.array([0, 0]))
    return [(f"{node.name}.pool", pool),
            (node.name, nir.Flatten(input_type={"input": np.array([c, 1, 1])}, start_dim=0))]


def _delay_to(node: Node, src: tuple) -> Chain:
    return [(node.name, nir.Delay(delay=_full(node, node.attrs["steps"])))]


def _no_params(name: str, n) -> Tuple[dict, dict]:
    return {}, {}


@dataclass(frozen=True)
class Rule:
    to_nir: Callable[[Node, Optional[tuple]], Chain]   # (node, shape of its first input) -> NIR chain
    types: Tuple[type, ...]                            # NIR type(s) of the node named after ours
    from_nir: Callable[[str, nir.NIRNode], Tuple[dict, dict]]   # -> (params, attrs)


RULES: Dict[str, Rule] = {
    "input": Rule(_input_to, (nir.Input,), _no_params),
    "conv": Rule(_conv_to, (nir.Conv2d,), _conv_from),
    "dense": Rule(_dense_to, (nir.Affine, nir.Linear), _dense_from),
    "lif": Rule(_lif_to, (nir.LIF,), _lif_from),
    "add": Rule(lambda node, src: [], (), _no_params),          # carried by the edges into its readers
    "mean": Rule(_mean_to, (nir.Flatten,), _no_params),
    "delay": Rule(_delay_to, (nir.Delay,), lambda name, n: ({}, {"steps": int(_one(name, "delay", n.delay))})),
}

REFUSED = {"sdsa": "NIR has no node for spike-driven self-attention (no NIR node multiplies two time-varying "
                   "inputs, as Q(K^T V) does); the fully-CNN ablation exports whole: "
                   "create_model({model!r}, ablations=['fully_cnn'])"}


def _rule(node: Node, graph: Graph) -> Rule:
    if node.op not in RULES:
        reason = REFUSED.get(node.op, "no NIR mapping")
        model = graph.model_config.get("name", "MODEL")
        raise ExportError(f"node {node.name!r} ({node.op}): " + reason.format(model=model))
    return RULES[node.op]


# ------------------------------------------------------------------------------ export
def graph_to_nir(graph: Graph) -> nir.NIRGraph:
    """The graph as a NIRGraph, named as ours; refuses the first node NIR cannot express."""
    shapes = {n.name: tuple(n.shape) for n in graph}
    nodes: Dict[str, nir.NIRNode] = {}
    edges: List[Tuple[str, str]] = []
    sources: Dict[str, List[str]] = {}          # our node -> the NIR nodes whose sum it is

    def put(name: str, nir_node: nir.NIRNode, inputs: List[str]) -> None:
        if name in nodes:
            raise ExportError(f"NIR node name {name!r} is used twice")
        nodes[name] = nir_node
        edges.extend((s, name) for s in inputs)

    for node in graph:
        chain = _rule(node, graph).to_nir(node, shapes[node.inputs[0]] if node.inputs else None)
        src = [s for i in node.inputs for s in sources[i]]
        for name, nir_node in chain:
            put(name, nir_node, src)
            src = [name]
        sources[node.name] = src
    put(OUTPUT, nir.Output(output_type={"output": np.array(shapes[graph.output])}), sources[graph.output])
    meta = {"version": VERSION, "dt": 1, "timesteps": graph.timesteps, "static_input": graph.static_input,
            "output": graph.output, "model_config": dict(graph.model_config),
            "input_spec": graph.input_spec.to_dict(),
            "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "shape": list(n.shape),
                       "block": n.block, "params": sorted(n.params)} for n in graph]}
    # nir 1.0.8 types a Conv2d's input as weight.shape[1] channels, ignoring groups: skip its check then
    grouped = any(isinstance(n, nir.Conv2d) and n.groups > 1 for n in nodes.values())
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: json.dumps(meta)}, type_check=not grouped)


def _as_graph(graph_or_model) -> Graph:
    if isinstance(graph_or_model, Graph):
        return graph_or_model
    from ..nn.fold import to_graph
    return to_graph(graph_or_model)


def write_nir(graph_or_model, path: os.PathLike) -> Path:
    """Write a graph (or a ``MetaSpikeFormer``, folded first) as a NIR file, atomically and sealed as our
    exports are (``fileio.write_sealed_hdf5``; NIR readers skip the user block): ``nir.write`` fills a
    buffer, copied object by object into the sealed file."""
    nir_graph = graph_to_nir(_as_graph(graph_or_model))
    buffer = io.BytesIO()
    nir.write(buffer, nir_graph)

    def fill(f: h5py.File) -> None:
        with h5py.File(buffer, "r") as written:
            f.attrs.update(written.attrs)
            for name in written:
                written.copy(written[name], f, name=name)
    return write_sealed_hdf5(path, fill)


# ------------------------------------------------------------------------------ import
def nir_to_graph(nir_graph: nir.NIRGraph) -> Graph:
    """The ``Graph`` a lava-spikeformer NIR graph was written from (its metadata gives the topology,
    its NIR nodes the numbers); refuses NIR graphs written by others."""
    raw = (nir_graph.metadata or {}).get(META_KEY)
    if raw is None:
        raise ExportError(f"NIR graph has no {META_KEY!r} metadata: only NIR written by lava-spikeformer is read")
    meta = json.loads(raw)
    if meta.get("version") != VERSION:
        raise ExportError(f"NIR metadata {META_KEY!r}: version {meta.get('version')!r} is not {VERSION}")
    nodes = []
    for entry in meta["nodes"]:
        name, op = entry["name"], entry["op"]
        if op not in RULES:
            raise ExportError(f"node {name!r}: op {op!r} has no NIR mapping")
        rule, params, attrs = RULES[op], {}, {}
        if rule.types:
            nir_node = nir_graph.nodes.get(name)
            if not isinstance(nir_node, rule.types):
                raise ExportError(f"NIR node {name!r} ({op}): expected {' or '.join(t.__name__ for t in rule.types)}, "
                                  f"got {type(nir_node).__name__}")
            params, attrs = rule.from_nir(name, nir_node)
        nodes.append(Node(name, op, tuple(entry["inputs"]), tuple(entry["shape"]),
                          {k: np.asarray(params[k], dtype=np.float64) for k in entry["params"]}, attrs, entry["block"]))
    graph = Graph(tuple(nodes), meta["output"], meta["timesteps"], meta["static_input"], meta["model_config"],
                  InputSpec.from_dict(meta["input_spec"]))
    if set(graph_to_nir(graph).edges) != set(map(tuple, nir_graph.edges)):
        raise ExportError(f"NIR edges do not match the nodes of the {META_KEY!r} metadata")
    return graph


def read_nir(path: os.PathLike) -> Graph:
    """Read a NIR file written by ``write_nir`` back into the ``Graph`` it came from."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such NIR file")
    check_seal(path, ExportError)                        # ours are sealed; other tools' files are not
    try:
        return nir_to_graph(nir.read(path, type_check=False))     # grouped convs: see graph_to_nir
    except (OSError, ValueError, KeyError) as e:        # GraphError and ExportError are ValueErrors
        raise ExportError(f"{path}: {e}") from None
