"""The network contract, torch-free (numpy + h5py): typed graph, op registry, fixed point, HDF5
file format, reference simulator. Everything else — training (``nn``), Lava (``lava``), analysis,
interop — depends on it; it depends on nothing of theirs."""
from .errors import ExportError, GraphError
from .graph import Graph, Node
from .hdf5 import read_graph, write_graph
from .input import KNOWN_DATASETS, InputSpec
from .ops import OPS, OpSpec, register_op
from .simulate import predict, simulate

__all__ = ["Graph", "GraphError", "Node", "ExportError", "InputSpec", "KNOWN_DATASETS", "OPS", "OpSpec",
           "register_op", "read_graph", "write_graph", "simulate", "predict"]
