"""The input contract that travels with a model: config -> checkpoint -> export -> Lava runner.

A model is made for one kind of input (static images shown at each of T steps, or T event frames),
one size, one normalization and one data set. ``InputSpec`` records all of it so that
``run-lava MODEL.h5`` evaluates on the data the model was made for, and a loader refuses a
mismatch naming both shapes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import GraphError

KINDS = ("image", "events")

#: What each known data set feeds a model: kind, per-channel normalization of ``[0, 1]`` pixels,
#: and the event sensor ``(W, H, P)``. One table for config, export and the command line.
KNOWN_DATASETS: Dict[str, dict] = {
    "fmnist": {"kind": "image", "mean": (0.2860,), "std": (0.3530,)},
    "imagefolder": {"kind": "image", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    "fmnist-dvs": {"kind": "events", "sensor": (34, 34, 2)},
    "hardvs": {"kind": "events", "sensor": (346, 260, 2)},
}


@dataclass(frozen=True)
class InputSpec:
    kind: str                                  # 'image' | 'events'
    shape: Tuple[int, ...]                     # per sample, no batch: (C, H, W)
    timesteps: int                             # T: steps an image is shown / event time bins
    mean: Tuple[float, ...] = ()               # image normalization: (x / 255 - mean) / std
    std: Tuple[float, ...] = ()
    sensor: Optional[Tuple[int, int, int]] = None   # event sensor (W, H, P) before fitting to the input
    dataset: str = ""                          # the data set the model was made for ('' = not recorded)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise GraphError(f"input_spec.kind must be one of {KINDS}, got {self.kind!r}")
        shape = tuple(self.shape)
        if not shape or any(int(s) != s or s < 1 for s in shape):
            raise GraphError(f"input_spec.shape must be positive ints, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))
        if int(self.timesteps) != self.timesteps or self.timesteps < 1:
            raise GraphError(f"input_spec.timesteps must be an int >= 1, got {self.timesteps!r}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) != len(self.std) or (self.mean and len(self.mean) not in (1, self.channels)):
            raise GraphError(f"input_spec: mean {self.mean} and std {self.std} must hold 1 or {self.channels} values")
        if not all(np.isfinite(self.mean)) or not all(np.isfinite(s) and s > 0 for s in self.std):
            raise GraphError(f"input_spec: mean must be finite and std positive, got {self.mean}, {self.std}")
        if self.sensor is not None:
            sensor = tuple(int(s) for s in self.sensor)
            if len(sensor) != 3 or min(sensor) < 1:
                raise GraphError(f"input_spec.sensor must be (W, H, P) positive ints, got {self.sensor}")
            object.__setattr__(self, "sensor", sensor)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @classmethod
    def of_graph_input(cls, shape, timesteps: int, static_input: bool, dataset: str = "") -> "InputSpec":
        """The spec implied by a graph's input node (and the data set, when recorded)."""
        known = KNOWN_DATASETS.get(dataset, {})
        kind = "image" if static_input else "events"
        if known.get("kind", kind) != kind:
            known, dataset = {}, ""
        return cls(kind, tuple(shape), int(timesteps), known.get("mean", ()),
                   known.get("std", ()), known.get("sensor"), dataset)

    def normalize(self, images_u8: np.ndarray) -> np.ndarray:
        """``uint8 [B, C, H, W]`` pixels -> the model's input, computed in float32 as the PyTorch data
        pipeline does (so Lava float runs see PyTorch's exact values), returned as float64."""
        x = np.asarray(images_u8, dtype=np.float32) / np.float32(255.0)
        if self.mean:
            shape = (1, -1) + (1,) * (len(self.shape) - 1)
            x = (x - np.reshape(self.mean, shape).astype(np.float32)) / np.reshape(self.std, shape).astype(np.float32)
        return x.astype(np.float64)

    def abs_max(self) -> float:
        """Largest |input value| an 8-bit image gives after normalization (events: unbounded counts
        are clipped at 255 by the frame cache)."""
        if self.kind == "events":
            return 255.0
        if not self.mean:
            return 1.0
        return float(max(max((1 - m) / s, m / s) for m, s in zip(self.mean, self.std)))

    def require(self, data_shape, what: str) -> None:
        """Refuse data of another per-sample shape, naming both."""
        if tuple(int(s) for s in data_shape) != self.shape:
            raise GraphError(f"{what} gives inputs of shape {tuple(data_shape)}, but the model takes "
                             f"{self.kind} of shape {self.shape}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"], d["mean"], d["std"] = list(self.shape), list(self.mean), list(self.std)
        d["sensor"] = list(self.sensor) if self.sensor else None
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        if not isinstance(data, dict):
            raise GraphError(f"input_spec must be a JSON object, got {type(data).__name__}")
        known = {"kind", "shape", "timesteps", "mean", "std", "sensor", "dataset"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GraphError(f"input_spec: unknown field(s) {unknown}; known fields are {sorted(known)}")
        try:
            return cls(**{**data, "shape": tuple(data.get("shape", ())), "mean": tuple(data.get("mean", ())),
                          "std": tuple(data.get("std", ())),
                          "sensor": tuple(data["sensor"]) if data.get("sensor") else None})
        except TypeError as e:
            raise GraphError(f"input_spec: {e}") from None
