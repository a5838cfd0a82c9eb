"""Import lava-dl's slayer once, quietly: its package import pulls in the object-detection
datasets, which print a Prophesee-toolbox warning (and torch a CUDA_HOME note) that have nothing
to do with us."""
import contextlib
import io

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lava.lib.dl import slayer  # noqa: F401

__all__ = ["slayer"]
