"""The contract's two errors: one message per defect, naming the node (or file, group) and field."""


class GraphError(ValueError):
    """An export graph that breaks the contract (names the node and the field)."""


class ExportError(ValueError):
    """An export file that cannot be read back as a valid graph (names the file, group and field)."""
