"""Event-camera data for Meta-SpikeFormer: tonic-style datasets, readers and frame transforms.
numpy + tonic only: no torch at import, no Lava (the Lava event source lives in ``lava_spikeformer.lava``)."""
from .events import EVENT_DTYPE, EventDataError, make_events
from .fmnist_dvs import FashionMNISTDVS, SaccadeSensor, emulate
from .hardvs import HARDVS, FitFrames, hardvs_for_model, model_transform
from .transforms import DropOutsideSensor, SortByTime, ToFrames, frame_transform

__all__ = ["EVENT_DTYPE", "EventDataError", "make_events", "FashionMNISTDVS", "SaccadeSensor", "emulate", "HARDVS",
           "FitFrames", "hardvs_for_model", "model_transform", "DropOutsideSensor", "SortByTime", "ToFrames",
           "frame_transform"]
