"""HDF5 export format (see ``schema.md``): netx's ``layer/<i>`` groups extended with graph edges.

Version 2 is the deployment artifact: every synapse, scale and neuron stores the integers Lava's
stock processes take (``fixed.integers``: int8 weight mantissas with their exponents, bias and scale
mantissas, the LIF's ``vth``/``dv``/``du``/``bias``, message bits); the float parameters are optional
(``integers_only=True`` leaves them out: a fixed-point-only file). Version 1 files (floats only) still
load. Writes are atomic (temporary file + rename) and sealed (``fileio.write_sealed_hdf5``: a SHA-256
in the user block, checked before libhdf5 reads the file). Reading validates everything and raises
one ``ExportError`` naming the file, the group and the field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import h5py
import numpy as np

from ..fileio import check_seal, write_sealed_hdf5
from . import fixed
from .errors import ExportError, GraphError
from .graph import Graph, Node
from .input import InputSpec
from .ops import OPS

FORMAT = "lava-spikeformer-netx"
VERSION = 2
READS = (1, 2)
GRADED_MESSAGE_BITS = 24          # Loihi 2 graded spike payload; 0: binary spikes


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
    # lava.proc.lif.LIF's own parameters for graph/fixed.py's neuron (v2)
    neuron.create_dataset("vth", data=np.int32(fixed.v_threshold(threshold, tau)))
    neuron.create_dataset("dv", data=np.int16(fixed.dv(tau)))
    neuron.create_dataset("du", data=np.int16(fixed.DECAY_ONE - 1))
    neuron.create_dataset("bias_mant", data=np.int16(fixed.LIF_BIAS))


def write_graph(graph: Graph, path: os.PathLike, *, integers_only: bool = False) -> Path:
    """Version 2; ``integers_only``: no float parameters (fixed point only; a smaller file)."""
    path = Path(path)
    spike_inputs = graph.spike_inputs()

    def fill(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["timesteps"] = graph.timesteps
        f.attrs["static_input"] = graph.static_input
        f.attrs["output"] = graph.output
        f.attrs["latency"] = graph.latency
        f.attrs["model_config"] = json.dumps(graph.model_config)
        f.attrs["input_spec"] = json.dumps(graph.input_spec.to_dict())
        f.attrs["float_params"] = graph.float_params and not integers_only
        layers = f.create_group("layer")
        for i, node in enumerate(graph.nodes):
            g = layers.create_group(str(i))
            g.create_dataset("type", data=np.bytes_(node.op))       # netx: fixed-length S10
            g.create_dataset("name", data=node.name)
            g.create_dataset("inputs", data=np.array(node.inputs, dtype=h5py.string_dtype()))
            g.create_dataset("shape", data=np.array(node.shape, dtype=np.int64))
            g.create_dataset("block", data=node.block)
            if not integers_only and graph.float_params:
                for key, value in node.params.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.float64))
            for key, value in fixed.node_integers(node).items():
                g.create_dataset(key, data=value.astype(np.int8))
            spec = OPS[node.op]
            if spec.role == "synapse":
                g.create_dataset("num_message_bits",
                                 data=np.int8(0 if spike_inputs[node.name] else GRADED_MESSAGE_BITS))
            for key in spec.int_attrs:
                g.create_dataset(key, data=int(node.attrs[key]))
            if spec.neuron:
                _write_neuron(g, node.attrs)

    return write_sealed_hdf5(path, fill)


def _read(group: h5py.Group, key: str, where: str):
    if key not in group:
        raise ExportError(f"{where}: missing field {key!r}")
    return group[key][()]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value, where: str) -> int:
    """An integer field: a whole number of any integer (or integral float) type, else ``ExportError``."""
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "iuf" or (value.dtype.kind == "f" and
                                                              not (np.isfinite(value) and value == np.round(value))):
        raise ExportError(f"{where}: must be one integer, got {value.tolist()!r} ({value.dtype})")
    return int(value)


def _json_object(f: h5py.File, key: str, path: Path, default: str = None):
    text = f.attrs.get(key, default)
    if text is None:
        return None
    try:
        value = json.loads(_text(text))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: root attribute {key!r} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ExportError(f"{path}: root attribute {key!r} must be a JSON object, got {type(value).__name__}")
    return value


def read_graph(path: os.PathLike) -> Graph:
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such export file")
    check_seal(path, ExportError)
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
    version = _int(f.attrs.get("version", -1), f"{path}: attribute 'version'")
    if version not in READS:
        raise ExportError(f"{path}: unsupported format version {version}; this library reads versions {READS} "
                          f"(re-export the checkpoint with this version)")
    if "layer" not in f:
        raise ExportError(f"{path}: missing group 'layer'")
    layers = f["layer"]
    floats = version < 2 or bool(f.attrs.get("float_params", True))
    nodes, stored = [], []
    for i in range(len(layers)):
        where = f"{path}: layer/{i}"
        if str(i) not in layers:
            raise ExportError(f"{where}: missing group (layers must be numbered 0..{len(layers) - 1})")
        node, integers = _read_node(layers[str(i)], where, version, floats)
        nodes.append(node)
        stored.append(integers)
    for key in ("output", "timesteps", "static_input"):
        if key not in f.attrs:
            raise ExportError(f"{path}: missing root attribute {key!r}")
    timesteps = _int(f.attrs["timesteps"], f"{path}: attribute 'timesteps'")
    model_config = _json_object(f, "model_config", path, "{}")
    spec = _json_object(f, "input_spec", path)
    try:
        input_spec = InputSpec.from_dict(spec) if spec is not None else None
        graph = Graph(tuple(nodes), _text(f.attrs["output"]), timesteps, bool(f.attrs["static_input"]), model_config,
                      input_spec, floats)
    except GraphError as e:
        raise ExportError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:         # InputSpec.from_dict on a dict of the wrong fields
        raise ExportError(f"{path}: root attribute 'input_spec' is invalid: {e!r}") from None
    for i, (node, integers) in enumerate(zip(nodes, stored)):
        _check_integers(node, integers, f"{path}: layer/{i}")
    return graph


def _read_integers(g: h5py.Group, key: str, where: str):
    """``(mantissa, exponent)`` of a v2 integer parameter, checked for dtype and range."""
    mant, exp = fixed.INTEGER_FIELDS[key]
    values = []
    for field in (mant, exp):
        value = np.asarray(_read(g, field, where))
        if value.dtype.kind not in "iu":
            raise ExportError(f"{where}/{field}: must hold integers, got {value.dtype}")
        values.append(value.astype(np.int64))
    m, e = values
    if m.size and (m.min() < -fixed.MANTISSA_MAX - 1 or m.max() > fixed.MANTISSA_MAX):
        raise ExportError(f"{where}/{mant}: 8-bit mantissas must lie in -128..127, got {m.min()}..{m.max()}")
    if e.shape != (m.shape[0],) and not (key != "weight" and e.shape == m.shape):
        raise ExportError(f"{where}/{exp}: shape {e.shape} does not fit {mant} {m.shape}")
    if e.size and (e.min() < -8 or e.max() > 24):
        raise ExportError(f"{where}/{exp}: exponents must lie in -8..24, got {e.min()}..{e.max()}")
    if key != "weight" and e.size and e.min() < 0:
        raise ExportError(f"{where}/{exp}: a {key} is mantissa << exponent, exponents >= 0; got {e.min()}")
    return m, e


def _read_node(g: h5py.Group, where: str, version: int, floats: bool) -> Node:
    op = _text(_read(g, "type", where))
    if op not in OPS:
        raise ExportError(f"{where}/type: unknown layer type {op!r}; known: {tuple(OPS)}")
    spec = OPS[op]
    name = _text(_read(g, "name", where))
    inputs = tuple(_text(s) for s in _read(g, "inputs", where))
    shape = tuple(_int(s, f"{where}/shape") for s in np.atleast_1d(_read(g, "shape", where)))
    block = _text(g["block"][()]) if "block" in g else legacy_block(name)
    params, stored, integers = {}, {}, {}
    for key in spec.params + spec.optional_params:
        stored_integers = version >= 2 and fixed.INTEGER_FIELDS[key][0] in g
        if key not in g:
            if key in spec.params and (floats or not stored_integers):
                raise ExportError(f"{where}/{key}: missing (required for type {op!r})")
            if stored_integers and not floats:        # a fixed-point-only file: the chip's integers
                m, e = _read_integers(g, key, where)
                params[key] = fixed.from_integers(key, m, e)
                integers.update(zip(fixed.INTEGER_FIELDS[key], (m, e)))
            continue
        try:
            value = np.asarray(g[key][()], dtype=np.float64)
        except (TypeError, ValueError):
            raise ExportError(f"{where}/{key}: must hold numbers") from None
        if not np.all(np.isfinite(value)):
            raise ExportError(f"{where}/{key}: holds NaN or inf")
        params[key] = value
        if stored_integers:                            # both: checked once the graph is valid
            stored[key] = _read_integers(g, key, where)
            integers.update(zip(fixed.INTEGER_FIELDS[key], stored[key]))
    attrs = {key: _int(_read(g, key, where), f"{where}/{key}") for key in spec.int_attrs}
    if spec.neuron:
        if "neuron" not in g:
            raise ExportError(f"{where}/neuron: missing (required for type {op!r})")
        for key in ("threshold", "tau"):
            try:
                value = float(_read(g["neuron"], key, f"{where}/neuron"))
            except (TypeError, ValueError):
                raise ExportError(f"{where}/neuron/{key}: must be a positive number") from None
            if not np.isfinite(value) or value <= 0:
                raise ExportError(f"{where}/neuron/{key}: must be a positive number, got {value}")
            attrs[key] = value
    lo, hi = spec.arity
    if not lo <= len(inputs) <= hi:
        raise ExportError(f"{where}: {op} takes {lo}..{hi} inputs, got {len(inputs)}")
    return Node(name, op, inputs, shape, params, attrs, block, integers), stored


def _check_integers(node: Node, stored: dict, where: str) -> None:
    """Stored integers must be exactly the quantization of the stored floats."""
    for key, (m, e) in stored.items():
        expected = fixed.integers({key: node.params[key]})
        mant, exp = fixed.INTEGER_FIELDS[key]
        if not (np.array_equal(m, expected[mant]) and np.array_equal(e, expected[exp])):
            raise ExportError(f"{where}/{mant}: does not match the float {key!r} it was quantized from")


def legacy_block(name: str) -> str:
    """The block of a node in files written before ``block`` was stored, from the exporter's naming
    scheme: ``s2.b1.attn.branch.q`` -> ``s2.b1.attn``; ``s0.down.conv`` -> ``s0.down``; ``head.fc`` -> ``head``."""
    parts = name.split(".")
    if name == "input":
        return ""
    if parts[0] == "head" or len(parts) < 2:
        return parts[0]
    return ".".join(parts[:2] if parts[1] == "down" else parts[:3])
