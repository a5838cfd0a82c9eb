"""Run an export ``Graph`` in numpy, timestep by timestep, with no pipeline latency.

This is PyTorch's computation re-expressed per step (what a neuromorphic chip sees) and the
yardstick for the Lava runs: Lava's output of node ``n`` at step ``t + arrival[n]`` must equal
this simulator's output of ``n`` at timestep ``t``.
"""
from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from . import fixed
from .errors import GraphError
from .graph import Graph
from .ops import PRECISIONS, make_kernel


def frames_of(graph: Graph, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Input as ``[T, B, C, H, W]``: a static image batch ``[B, C, H, W]`` is repeated T times. NaN/inf
    is refused (the LIF's ``>=`` would read NaN as "no spike", fixed point would cast it to int64 min)."""
    x = np.asarray(x, dtype=dtype)
    if not np.all(np.isfinite(x)):
        raise GraphError(f"input holds NaN or inf ({int(np.size(x) - np.isfinite(x).sum())} values)")
    expected = tuple(graph.input.shape)
    if graph.static_input:
        if x.ndim != 4 or x.shape[1:] != expected:
            raise GraphError(f"input: expected images [B, {', '.join(map(str, expected))}], got {x.shape}")
        return np.broadcast_to(x, (graph.timesteps, *x.shape))
    if x.ndim != 5 or x.shape[2:] != expected:
        raise GraphError(f"input: expected event frames [T, B, {', '.join(map(str, expected))}], got {x.shape}")
    return x


def make_kernels(graph: Graph, precision: str = "float") -> dict:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    spikes = graph.spike_inputs()
    return {n.name: make_kernel(n, precision, spikes[n.name]) for n in graph.nodes[1:]}


def simulate(graph: Graph, x: np.ndarray, *, probes: Iterable[str] = (), dtype=np.float64,
             precision: str = "float") -> Dict[str, np.ndarray]:
    """Returns ``{name: [T, B, ...]}`` for the output node and every probed node. ``precision='fixed'``
    runs the integer network of ``graph.fixed`` (graded values in units of 1/64)."""
    if precision == "float" and not graph.float_params:
        raise GraphError("this export holds integers only (written with integers_only=True): simulate it with "
                         "precision='fixed' (Lava: tag fixed_pt)")
    frames = frames_of(graph, x, dtype)
    if precision == "fixed":
        frames = fixed.quantize_input(frames)
    names = set(probes) | {graph.output}
    unknown = names - set(graph.by_name)
    if unknown:
        raise GraphError(f"probes: no node named {sorted(unknown)}")
    kernels = make_kernels(graph, precision)
    records: Dict[str, list] = {name: [] for name in names}
    for t in range(len(frames)):
        values = {graph.input.name: frames[t]}
        for node in graph.nodes[1:]:
            values[node.name] = kernels[node.name].step([values[i] for i in node.inputs])
        for name in names:
            records[name].append(values[name])
    return {name: np.stack(v) for name, v in records.items()}


def predict(graph: Graph, x: np.ndarray, dtype=np.float64, precision: str = "float") -> np.ndarray:
    """Logits ``[B, classes]``: the output averaged over the T timesteps (the model's head)."""
    logits = simulate(graph, x, dtype=dtype, precision=precision)[graph.output].mean(0)
    return logits / fixed.ONE if precision == "fixed" else logits
