"""HDF5 export format (see ``schema.md``): netx's ``layer/<i>`` groups extended with graph edges.

Writes are atomic (temporary file + rename). Reading validates everything and raises one
``ExportError`` naming the file, the group and the field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import h5py
import numpy as np

from ..fileio import atomic_write
from .errors import ExportError, GraphError
from .graph import Graph, Node
from .input import InputSpec
from .ops import OPS

FORMAT = "lava-spikeformer-netx"
VERSION = 1


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
            f.attrs["input_spec"] = json.dumps(graph.input_spec.to_dict())
            layers = f.create_group("layer")
            for i, node in enumerate(graph.nodes):
                g = layers.create_group(str(i))
                g.create_dataset("type", data=np.bytes_(node.op))       # netx: fixed-length S10
                g.create_dataset("name", data=node.name)
                g.create_dataset("inputs", data=np.array(node.inputs, dtype=h5py.string_dtype()))
                g.create_dataset("shape", data=np.array(node.shape, dtype=np.int64))
                g.create_dataset("block", data=node.block)
                for key, value in node.params.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.float64))
                spec = OPS[node.op]
                for key in spec.int_attrs:
                    g.create_dataset(key, data=int(node.attrs[key]))
                if spec.neuron:
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
        model_config = json.loads(_text(f.attrs.get("model_config", "{}")))
        spec = f.attrs.get("input_spec")
        input_spec = InputSpec.from_dict(json.loads(_text(spec))) if spec is not None else None
        return Graph(tuple(nodes), _text(f.attrs["output"]), int(f.attrs["timesteps"]),
                     bool(f.attrs["static_input"]), model_config, input_spec)
    except GraphError as e:
        raise ExportError(f"{path}: {e}") from None
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: root attribute 'model_config' or 'input_spec' is not valid JSON: {e}") from None
    except KeyError as e:
        raise ExportError(f"{path}: missing root attribute {e}") from None


def _read_node(g: h5py.Group, where: str) -> Node:
    op = _text(_read(g, "type", where))
    if op not in OPS:
        raise ExportError(f"{where}/type: unknown layer type {op!r}; known: {tuple(OPS)}")
    spec = OPS[op]
    name = _text(_read(g, "name", where))
    inputs = tuple(_text(s) for s in _read(g, "inputs", where))
    shape = tuple(int(s) for s in np.atleast_1d(_read(g, "shape", where)))
    block = _text(g["block"][()]) if "block" in g else legacy_block(name)
    params = {}
    for key in spec.params + spec.optional_params:
        if key not in g:
            if key in spec.params:
                raise ExportError(f"{where}/{key}: missing (required for type {op!r})")
            continue
        value = np.asarray(g[key][()], dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ExportError(f"{where}/{key}: holds NaN or inf")
        params[key] = value
    attrs = {key: int(_read(g, key, where)) for key in spec.int_attrs}
    if spec.neuron:
        if "neuron" not in g:
            raise ExportError(f"{where}/neuron: missing (required for type {op!r})")
        for key in ("threshold", "tau"):
            value = float(_read(g["neuron"], key, f"{where}/neuron"))
            if not np.isfinite(value) or value <= 0:
                raise ExportError(f"{where}/neuron/{key}: must be a positive number, got {value}")
            attrs[key] = value
    lo, hi = spec.arity
    if not lo <= len(inputs) <= hi:
        raise ExportError(f"{where}: {op} takes {lo}..{hi} inputs, got {len(inputs)}")
    return Node(name, op, inputs, shape, params, attrs, block)


def legacy_block(name: str) -> str:
    """The block of a node in files written before ``block`` was stored, from the exporter's naming
    scheme: ``s2.b1.attn.branch.q`` -> ``s2.b1.attn``; ``s0.down.conv`` -> ``s0.down``; ``head.fc`` -> ``head``."""
    parts = name.split(".")
    if name == "input":
        return ""
    if parts[0] == "head" or len(parts) < 2:
        return parts[0]
    return ".".join(parts[:2] if parts[1] == "down" else parts[:3])
