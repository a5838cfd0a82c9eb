"""Event-camera recordings through a model: the path of ``run-lava MODEL.h5 --events FILE ...`` and
``evaluate CKPT --events FILE ...``.

1. ``event_data.recordings.read_recording``: ``.aedat4``, N-MNIST ``.bin``, HAR-DVS ``.npz`` or ``.npy``
   events and the sensor size (from the file, or given);
2. the model's input contract (``graph.input_spec``) fits them to its input: events of the sensor of
   the data set the model was made for get that data set's transform, any other sensor is downsampled
   so its short side covers the input and centre-cropped (``event_data.sources.stream_options``), then
   binned into T frames (``frame_transform``);
3. Lava: the raw events stream through an ``EventSource`` (``lava.run.stream_events``; one run per
   sensor size, the recordings of a run side by side in the batch) with a class decision at every Lava
   step; the reference decides on the very frames the source bins: the float network
   (``graph.simulate``, equal to PyTorch's forward to 1e-9) for ``floating_pt``, the integer network
   (bit for bit) for ``fixed_pt``, or PyTorch itself (``pytorch_recordings``, for ``evaluate``).

A decision is the class of the largest logit summed over the timesteps so far (``ClassDecision``'s rule,
PyTorch's prediction after the last one); timestep t's decision leaves Lava at step ``L + t``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from event_data.events import EventDataError
from event_data.recordings import Recording, read_recording
from event_data.sources import stream_options
from event_data.transforms import frame_transform

from .fileio import atomic_write
from .graph import Graph, GraphError, InputSpec, read_graph


def recording_options(spec: InputSpec, sensor_size: Sequence[int], what: str = "the model") -> dict:
    """``event_transform`` options that bring a ``sensor_size`` recording to the input of a model
    with input contract ``spec``; refuses a model that does not take 2-polarity event frames."""
    if spec.kind != "events" or spec.channels != 2:
        raise GraphError(f"{what} takes {spec.kind} of shape {spec.shape}; event recordings give 2-polarity event "
                         f"frames (use an event model, e.g. meta_spikeformer_hardvs_small)")
    return stream_options(sensor_size, spec.shape[1:], spec.dataset)


def recording_frames(spec: InputSpec, recording: Recording) -> np.ndarray:
    """``float64 [T, 2, H, W]`` event counts of one recording, as the model's input."""
    options = recording_options(spec, recording.sensor_size)
    return frame_transform(recording.sensor_size, n_time_bins=spec.timesteps, **options)(
        recording.events).astype(np.float64)


def running_decisions(logits: np.ndarray) -> np.ndarray:
    """``[T, B]`` class decided after each timestep: argmax of the logits summed so far."""
    return np.cumsum(np.asarray(logits, dtype=np.float64), axis=0).argmax(-1)


@dataclass
class RecordingDecisions:
    """Class decisions on recordings after each timestep, on Lava and by the reference."""
    model: str
    runtime: str                         # 'lava floating_pt fused', ... or 'pytorch'
    reference: str                       # what ``reference`` holds
    timesteps: int
    latency: int                         # Lava: timestep t's decision leaves at step L + t (0 without Lava)
    files: List[str]
    sensors: List[Tuple[int, int, int]]
    events: List[int]
    reference_decisions: np.ndarray      # [T, N]
    lava_decisions: Optional[np.ndarray] = None      # [T, N] (None: no Lava run)
    labels: Optional[np.ndarray] = None               # [N] true classes, when given
    classes: Sequence[str] = ()
    seconds: float = 0.0
    lava_steps: Optional[np.ndarray] = None           # [T, N] the Lava step at which each decision leaves

    @property
    def decisions(self) -> np.ndarray:
        """The runtime's decisions ``[T, N]``: Lava's, or the reference's without Lava."""
        return self.reference_decisions if self.lava_decisions is None else self.lava_decisions

    @property
    def agree(self) -> Optional[bool]:
        """Lava decides as the reference at every timestep of every recording (None without Lava)."""
        return None if self.lava_decisions is None else bool(np.array_equal(self.lava_decisions,
                                                                            self.reference_decisions))

    @property
    def accuracy_per_step(self) -> Optional[List[float]]:
        if self.labels is None:
            return None
        return [round(float(a), 4) for a in (self.decisions == self.labels[None]).mean(1)]

    def _name(self, cls: int) -> str:
        return f"{cls} {self.classes[cls]}" if 0 <= cls < len(self.classes) else str(cls)

    def table(self) -> str:
        lava = self.lava_decisions is not None
        lines = [f"{self.model}: {len(self.files)} recording(s) on {self.runtime}; T={self.timesteps}"
                 + (f", latency L={self.latency} steps (decisions -1 before step L)" if lava else ""),
                 f"decision after each timestep; {self.reference}"]
        for n, path in enumerate(self.files):
            width, height, _ = self.sensors[n]
            label = f", label {self._name(int(self.labels[n]))}" if self.labels is not None else ""
            lines.append(f"{path}: {self.events[n]:,} events, {width}x{height} sensor{label}")
            lines.append("  timestep" + ("  Lava step  Lava  reference" if lava else f"  {self.runtime}"))
            for t in range(self.timesteps):
                ref = int(self.reference_decisions[t, n])
                row = f"  {t:8d}"
                if lava:
                    mark = "" if self.lava_decisions[t, n] == ref else "   <- differs"
                    row += f"  {int(self.lava_steps[t, n]):9d}  {int(self.lava_decisions[t, n]):4d}"
                    row += f"  {ref:9d}{mark}"
                else:
                    row += f"  {ref}"
                lines.append(row)
            lines.append(f"  final: {self._name(int(self.decisions[-1, n]))}")
        if lava:
            lines.append(f"Lava decides as the reference at every step: {'yes' if self.agree else 'NO'}")
        if self.labels is not None:
            lines.append(f"accuracy after the last timestep: {100 * self.accuracy_per_step[-1]:.1f} %")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"model": self.model, "runtime": self.runtime, "reference": self.reference,
                "timesteps": self.timesteps, "latency_steps": self.latency,
                "seconds": round(self.seconds, 3), "agree": self.agree,
                "accuracy_per_step": self.accuracy_per_step,
                "recordings": [{"file": path, "sensor": list(self.sensors[n]), "events": self.events[n],
                                "label": None if self.labels is None else int(self.labels[n]),
                                "decisions": [int(d) for d in self.decisions[:, n]],
                                "lava_steps": (None if self.lava_steps is None
                                               else [int(s) for s in self.lava_steps[:, n]]),
                                "reference_decisions": [int(d) for d in self.reference_decisions[:, n]],
                                "final": int(self.decisions[-1, n])}
                               for n, path in enumerate(self.files)]}

    def plot(self, out_dir) -> Path:
        """Writes ``figure()`` to ``out_dir/recording_decisions.png``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "recording_decisions.png"
        self.figure().savefig(path, dpi=100)
        return path

    def figure(self):
        """The class decided after each step, per recording (Lava's line against the Lava step, the
        reference's markers at the same steps); with labels, the accuracy per step below it."""
        from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is
        lava = self.lava_decisions is not None
        steps = self.lava_steps if lava else np.repeat(np.arange(self.timesteps)[:, None], len(self.files), 1)
        rows = 2 if self.labels is not None else 1
        fig = Figure(figsize=(8, 3.2 * rows))
        axes = np.atleast_1d(fig.subplots(rows, 1, sharex=True))
        ax = axes[0]
        shown = min(len(self.files), 8)
        for n in range(shown):
            name = Path(self.files[n]).name
            if lava:
                ax.step(steps[:, n], self.lava_decisions[:, n] + 0.06 * n, where="post", color=f"C{n}",
                        label=f"{name} (Lava)")
            ax.plot(steps[:, n], self.reference_decisions[:, n] + 0.06 * n, "x", color=f"C{n}", ms=6,
                    label=f"{name} ({'reference' if lava else self.runtime})")
        if lava:
            ax.axvline(self.latency, color="gray", ls=":", label=f"first decision: step L={self.latency}")
            ax.set_xlim(-0.5, steps.max() + 0.5)
        ax.set(ylabel="class decided", title=f"{Path(self.model).name}: decision per {'Lava step' if lava else 'timestep'}"
               + (f" ({shown} of {len(self.files)} recordings)" if shown < len(self.files) else ""))
        used = sorted({int(c) for c in np.concatenate([self.decisions[:, :shown].ravel(),
                                                        self.reference_decisions[:, :shown].ravel()]) if c >= 0})
        ax.set_yticks(used, [self._name(c) for c in used], fontsize=7)
        ax.legend(fontsize=6, loc="best")
        if self.labels is not None:
            axes[1].plot(steps[:, 0], 100 * np.asarray(self.accuracy_per_step), "o-", ms=3)
            axes[1].set(ylabel="decision accuracy %", ylim=(-5, 105))
        axes[-1].set(xlabel="Lava step" if lava else "timestep")
        fig.tight_layout()
        return fig

    def save(self, out_dir) -> List[Path]:
        """``recordings.json`` and ``recording_decisions.png``."""
        path = Path(out_dir) / "recordings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))
        return [path, self.plot(out_dir)]


def class_names(dataset: str, count: int) -> Tuple[str, ...]:
    """The class names of the data set a model was made for, when it has ``count`` classes."""
    if dataset in ("fmnist", "fmnist-dvs"):
        from .data.idx import CLASSES as names
    elif dataset == "hardvs":
        from event_data.hardvs import HARDVS
        names = HARDVS.classes
    else:
        names = ()
    return tuple(names) if len(names) == count else ()


def read_recordings(paths: Sequence[os.PathLike], sensor_size: Optional[Sequence[int]] = None) -> List[Recording]:
    if not paths:
        raise EventDataError("no recording given")
    return [read_recording(p, sensor_size) for p in paths]


def _labels(labels, count: int) -> Optional[np.ndarray]:
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (count,):
        raise ValueError(f"give one label per recording: {count} recording(s), {labels.size} label(s)")
    return labels


def run_recordings(model: Union[Graph, os.PathLike], paths: Sequence[os.PathLike], *,
                   sensor_size: Optional[Sequence[int]] = None, tag: str = "floating_pt", granularity: str = "fused",
                   steps: Optional[int] = None, labels: Optional[Sequence[int]] = None,
                   classes: Sequence[str] = ()) -> RecordingDecisions:
    """Stream the recordings in ``paths`` through ``model`` (a Graph or .h5 export) on Lava, with the
    decision after each timestep next to the reference's on the same frames (module docstring)."""
    from .graph import simulate
    from .lava.run import stream_events
    graph = model if isinstance(model, Graph) else read_graph(model)
    name = "the graph" if isinstance(model, Graph) else str(model)
    spec = graph.input_spec
    recording_options(spec, (1, 1, 2), name)                      # refuse an image model before reading files
    recordings = read_recordings(paths, sensor_size)
    labels = _labels(labels, len(recordings))
    classes = tuple(classes) or class_names(spec.dataset, int(np.prod(graph.by_name[graph.output].shape)))
    precision = "fixed" if tag == "fixed_pt" else "float"
    frames = np.stack([recording_frames(spec, r) for r in recordings], axis=1)          # [T, N, 2, H, W]
    reference = running_decisions(simulate(graph, frames, precision=precision)[graph.output])
    timesteps, lava = graph.timesteps, np.full((graph.timesteps, len(recordings)), -1, dtype=np.int64)
    groups: Dict[Tuple[int, int, int], List[int]] = {}
    for n, r in enumerate(recordings):
        groups.setdefault(r.sensor_size, []).append(n)
    t0, latency, lava_steps = time.perf_counter(), graph.latency, np.zeros_like(lava)
    for sensor, members in groups.items():
        result = stream_events(graph, [recordings[n].events for n in members], sensor_size=sensor,
                               granularity=granularity, tag=tag, steps=steps,
                               **recording_options(spec, sensor, name))
        latency = result.latency
        at = result.latency + np.arange(timesteps)[:, None] + (
            np.arange(len(members))[None] * timesteps if getattr(result, "sequential", False) else 0)
        lava[:, members] = result.decisions[at, np.arange(len(members))[None]]
        lava_steps[:, members] = at
    what = ("the integer network (graph.simulate precision='fixed', = Lava fixed_pt bit for bit)" if precision ==
            "fixed" else "the float network (graph.simulate, = PyTorch's forward to 1e-9)")
    return RecordingDecisions(
        model=name, runtime=f"Lava {tag} {granularity}", reference=f"reference: {what}", timesteps=timesteps,
        latency=latency, files=[str(r.path) for r in recordings], sensors=[r.sensor_size for r in recordings],
        events=[len(r.events) for r in recordings], reference_decisions=reference, lava_decisions=lava,
        labels=labels, classes=tuple(classes), seconds=time.perf_counter() - t0, lava_steps=lava_steps)


def pytorch_recordings(model, paths: Sequence[os.PathLike], *, sensor_size: Optional[Sequence[int]] = None,
                       labels: Optional[Sequence[int]] = None, classes: Sequence[str] = (),
                       name: str = "the model") -> RecordingDecisions:
    """The decisions of a PyTorch ``MetaSpikeFormer`` on the recordings in ``paths``, after each timestep.
    The network is causal in time, so the decision after timestep t is its prediction on the first
    t + 1 frames."""
    import torch
    spec = model.cfg.input_spec
    recording_options(spec, (1, 1, 2), name)
    recordings = read_recordings(paths, sensor_size)
    labels = _labels(labels, len(recordings))
    classes = tuple(classes) or class_names(spec.dataset, model.cfg.num_classes)
    t0 = time.perf_counter()
    dtype = next(model.parameters()).dtype
    frames = torch.from_numpy(np.stack([recording_frames(spec, r) for r in recordings], axis=1)).to(dtype)
    model = model.eval()
    with torch.no_grad():
        decisions = np.stack([model(frames[:t + 1]).argmax(-1).numpy() for t in range(len(frames))])
    return RecordingDecisions(
        model=name, runtime="pytorch", reference="PyTorch", timesteps=len(frames), latency=0,
        files=[str(r.path) for r in recordings], sensors=[r.sensor_size for r in recordings],
        events=[len(r.events) for r in recordings], reference_decisions=decisions, labels=labels,
        classes=tuple(classes), seconds=time.perf_counter() - t0)
