"""Export: torch model -> folded ``Graph`` -> versioned HDF5 (netx layers + graph extension)."""
from __future__ import annotations

import os
from pathlib import Path

from .graph import Graph, GraphError, Node
from .hdf5 import ExportError, read_graph, write_graph
from .reference import predict, simulate


def export_hdf5(model, path: os.PathLike) -> Path:
    """Fold ``model`` (eval-mode semantics; the model itself is not modified) and write it atomically."""
    from .fold import to_graph
    return write_graph(to_graph(model), path)


__all__ = ["Graph", "GraphError", "Node", "ExportError", "export_hdf5", "read_graph", "write_graph",
           "simulate", "predict"]
