"""HDF5 export format (see ``schema.md``): netx's ``layer/<i>`` groups extended with graph edges.

Writes are atomic (temporary file + rename). Reading validates everything and raises one
``ExportError`` naming the file, the group and the field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict

import h5py
import numpy as np

from ..checkpoint import atomic_write
from .graph import ARITY, OPS, Graph, GraphError, Node

FORMAT = "lava-spikeformer-netx"
VERSION = 1

# per op: required float datasets, optional float datasets, integer scalars, float scalars
FIELDS: Dict[str, tuple] = {
    "input": ((), (), (), ()),
    "conv": (("weight",), ("bias",), ("stride", "padding", "groups"), ()),
    "dense": (("weight",), ("bias",), (), ()),
    "lif": ((), (), (), ()),
    "sdsa": ((), ("scale",), ("variant", "heads"), ()),
    "add": ((), (), (), ()),
    "mean": ((), (), (), ()),
    "delay": ((), (), ("steps",), ()),
}
NEURON_OPS = ("lif", "sdsa")


class ExportError(ValueError):
    """An export file that cannot be read back as a valid graph."""


def _write_neuron(group: h5py.Group, attrs) -> None:
    """netx's CUBA neuron fields (integers on the 6-bit fixed-point scale) + our exact floats."""
    neuron = group.create_group("neuron")
    threshold, tau = float(attrs["threshold"]), float(attrs["tau"])
    neuron.create_dataset("type", data=np.bytes_("LIF"))
    neuron.create_dataset("iDecay", data=4096)
    neuron.create_dataset("vDecay", data=int(round(4096 / tau)))
    neuron.create_dataset("vThMant", data=int(round(threshold * tau * 64)))
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=False)
    neuron.create_dataset("threshold", data=threshold)
    neuron.create_dataset("tau", data=tau)


def write_graph(graph: Graph, path: os.PathLike) -> Path:
    path = Path(path)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["timesteps"] = graph.timesteps
            f.attrs["static_input"] = graph.static_input
            f.attrs["output"] = graph.output
            f.attrs["latency"] = graph.latency
            f.attrs["model_config"] = json.dumps(graph.model_config)
            layers = f.create_group("layer")
            for i, node in enumerate(graph.nodes):
                g = layers.create_group(str(i))
                g.create_dataset("type", data=np.bytes_(node.op))       # netx: fixed-length S10
                g.create_dataset("name", data=node.name)
                g.create_dataset("inputs", data=np.array(node.inputs, dtype=h5py.string_dtype()))
                g.create_dataset("shape", data=np.array(node.shape, dtype=np.int64))
                for key, value in node.params.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.float64))
                _, _, ints, _ = FIELDS[node.op]
                for key in ints:
                    g.create_dataset(key, data=int(node.attrs[key]))
                if node.op in NEURON_OPS:
                    _write_neuron(g, node.attrs)

    atomic_write(path, write)
    return path


def _read(group: h5py.Group, key: str, where: str):
    if key not in group:
        raise ExportError(f"{where}: missing field {key!r}")
    return group[key][()]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_graph(path: os.PathLike) -> Graph:
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such export file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ExportError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None
    try:
        with f:
            return _read_file(f, path)
    except (OSError, RuntimeError) as e:          # h5py's errors for damaged data inside an opened file
        raise ExportError(f"{path}: HDF5 data unreadable (truncated or corrupt?): {e}") from None


def _read_file(f: h5py.File, path: Path) -> Graph:
    fmt = _text(f.attrs.get("format", ""))
    if fmt != FORMAT:
        raise ExportError(f"{path}: attribute 'format' is {fmt!r}, expected {FORMAT!r}")
    version = int(f.attrs.get("version", -1))
    if version != VERSION:
        raise ExportError(f"{path}: unsupported format version {version}; this library reads version {VERSION}")
    if "layer" not in f:
        raise ExportError(f"{path}: missing group 'layer'")
    layers = f["layer"]
    nodes = []
    for i in range(len(layers)):
        where = f"{path}: layer/{i}"
        if str(i) not in layers:
            raise ExportError(f"{where}: missing group (layers must be numbered 0..{len(layers) - 1})")
        nodes.append(_read_node(layers[str(i)], where))
    try:
        return Graph(tuple(nodes), _text(f.attrs["output"]), int(f.attrs["timesteps"]),
                     bool(f.attrs["static_input"]), json.loads(_text(f.attrs.get("model_config", "{}"))))
    except GraphError as e:
        raise ExportError(f"{path}: {e}") from None
    except KeyError as e:
        raise ExportError(f"{path}: missing root attribute {e}") from None


def _read_node(g: h5py.Group, where: str) -> Node:
    op = _text(_read(g, "type", where))
    if op not in OPS:
        raise ExportError(f"{where}/type: unknown layer type {op!r}; known: {OPS}")
    name = _text(_read(g, "name", where))
    inputs = tuple(_text(s) for s in _read(g, "inputs", where))
    shape = tuple(int(s) for s in np.atleast_1d(_read(g, "shape", where)))
    required, optional, ints, _ = FIELDS[op]
    params = {}
    for key in required + optional:
        if key not in g:
            if key in required:
                raise ExportError(f"{where}/{key}: missing (required for type {op!r})")
            continue
        value = np.asarray(g[key][()], dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ExportError(f"{where}/{key}: holds NaN or inf")
        params[key] = value
    attrs = {key: int(_read(g, key, where)) for key in ints}
    if op in NEURON_OPS:
        if "neuron" not in g:
            raise ExportError(f"{where}/neuron: missing (required for type {op!r})")
        for key in ("threshold", "tau"):
            value = float(_read(g["neuron"], key, f"{where}/neuron"))
            if not np.isfinite(value) or value <= 0:
                raise ExportError(f"{where}/neuron/{key}: must be a positive number, got {value}")
            attrs[key] = value
    try:
        node = Node(name, op, inputs, shape, params, attrs)
        lo, hi = ARITY[op]
        if not lo <= len(inputs) <= hi:
            raise GraphError(f"{op} takes {lo}..{hi} inputs, got {len(inputs)}")
    except GraphError as e:
        raise ExportError(f"{where}: {e}") from None
    return node
