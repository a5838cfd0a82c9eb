"""Lava Process that streams tonic event streams into a network; models in ``models.py`` beside it
(Lava's compiler imports every module in this folder, so nothing else lives here)."""
from .process import EventSource

__all__ = ["EventSource"]
