"""ProcessModels of ``EventSource`` (``floating_pt``: event counts; ``fixed_pt``: counts in the
network's integer input units, ``export.fixed.quantize_input``).

Absolute imports only: Lava's compiler executes this file as a top-level module.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from event_data.processes.process import EventSource
from event_data.transforms import frame_of, sort_by_time, time_bins
from lava_spikeformer.export import fixed


class _EventSourceModel(PyLoihiProcessModel):
    FIXED = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        transform = proc_params["transform"] or sort_by_time
        self._bins = [time_bins(transform(events), proc_params["n_time_bins"]) for events in proc_params["streams"]]

    def run_spk(self) -> None:
        k = self.time_step - 1
        if k < self.proc_params["n_time_bins"]:
            frames = np.stack([frame_of(bins[k], self.proc_params["sensor_size"]) for bins in self._bins])
        else:
            frames = np.zeros(self.s_out._shape)
        self.s_out.send(fixed.quantize_input(frames) if self.FIXED else frames.astype(np.float64))


@implements(proc=EventSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEventSourceModelFloat(_EventSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)


@implements(proc=EventSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEventSourceModelFixed(_EventSourceModel):
    FIXED = True
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
