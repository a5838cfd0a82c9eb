"""Event-camera data for Meta-SpikeFormer: tonic-style datasets, frame pipelines, caching."""
from .events import EVENT_DTYPE, EventDataError, make_events
from .fmnist_dvs import FashionMNISTDVS, SaccadeSensor, emulate
from .hardvs import HARDVS, FitFrames, hardvs_for_model, model_transform
from .transforms import DropOutsideSensor, SortByTime, ToFrames, frame_transform
