"""One config dataclass that flows train -> export -> Lava, and the registry of named variants.

A variant is a config, not a copy of code (timm style): the reference family, the small
CPU variants, the HAR-DVS variant and every Table-5 ablation are all ``ModelConfig`` values.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Tuple

from .graph.input import KNOWN_DATASETS, InputSpec

BLOCK_KINDS = ("conv", "transformer")
SHORTCUTS = ("ms", "vs", "sew")
PROJECTIONS = ("repconv", "linear")
CHANNEL_MIXERS = ("conv", "mlp")
NEURON_MODES = ("float", "fixed")


@dataclass(frozen=True)
class StageConfig:
    """A downsampling layer followed by ``depth`` blocks of one kind at width ``dim``."""

    block: str
    dim: int
    depth: int
    kernel_size: int = 3
    stride: int = 2
    padding: int = 1

    def __post_init__(self):
        if self.block not in BLOCK_KINDS:
            raise ValueError(f"StageConfig.block must be one of {BLOCK_KINDS}, got {self.block!r}")
        for name in ("dim", "kernel_size", "stride"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"StageConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 0 or self.padding < 0:
            raise ValueError(f"StageConfig.depth and .padding must be >= 0, got {self.depth}, {self.padding}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a Meta-SpikeFormer network.

    Neuron: spikingjelly's multi-step LIF of the reference, ``h = v + (x - v) / tau``,
    spike iff ``h >= threshold``, hard reset to 0 (tau=2, threshold=1 is beta=0.5 with a
    threshold of 2 on the undivided input). ``attn_scale`` multiplies the SDSA-3/4 integer
    counts before the attention LIF (threshold ``attn_threshold``): the reference's 0.125 with
    threshold 0.5 fires iff count >= 8 at T=1.
    """

    name: str
    stages: Tuple[StageConfig, ...]
    in_channels: int = 3
    num_classes: int = 1000
    img_size: int = 224
    timesteps: int = 1
    event_input: bool = False          # input is already [T, B, C, H, W] (event frames)
    mlp_ratio: int = 4
    num_heads: int = 8
    sepconv: bool = True
    sepconv_kernel: int = 7
    channel_mixer: str = "conv"        # 'conv': ChannelConv 3x3; 'mlp': 1x1 (Table 5 ablation)
    qkv_proj: str = "repconv"          # RepConv-1/2/3
    out_proj: str = "repconv"          # RepConv-4
    sdsa: int = 3
    attn_scale: float = 0.125
    attn_threshold: float = 0.5
    learnable_attn_scale: bool = False
    shortcut: str = "ms"
    kd_head: bool = False
    tau: float = 2.0
    threshold: float = 1.0
    surrogate_alpha: float = 4.0
    neuron_mode: str = "float"         # 'fixed': forward = the deployed integer network (QAT, nn/quantized.py)
    dataset: str = ""                  # the data set it is made for (graph.input.KNOWN_DATASETS); '' = none

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(
            s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages))
        choices = {"shortcut": SHORTCUTS, "qkv_proj": PROJECTIONS, "out_proj": PROJECTIONS,
                   "channel_mixer": CHANNEL_MIXERS, "neuron_mode": NEURON_MODES, "sdsa": (1, 2, 3, 4)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModelConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("in_channels", "num_classes", "img_size", "timesteps", "mlp_ratio", "num_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.stages:
            raise ValueError("ModelConfig.stages must hold at least one stage")
        for i, stage in enumerate(self.stages):
            if stage.block == "transformer" and stage.dim % self.num_heads:
                raise ValueError(f"ModelConfig.stages[{i}].dim={stage.dim} must be divisible by "
                                 f"num_heads={self.num_heads}")
        if self.tau <= 1.0:
            raise ValueError(f"ModelConfig.tau must be > 1, got {self.tau}")
        if self.dataset and self.dataset not in KNOWN_DATASETS:
            raise ValueError(f"ModelConfig.dataset must be '' or one of {sorted(KNOWN_DATASETS)}, got {self.dataset!r}")

    @property
    def input_spec(self) -> InputSpec:
        """The input contract: kind, shape, T, normalization, sensor and data set."""
        return InputSpec.of_graph_input((self.in_channels, self.img_size, self.img_size), self.timesteps,
                                        not self.event_input, self.dataset)

    def to_dict(self) -> dict:
        """Plain types only, so checkpoints load with ``torch.load(weights_only=True)``."""
        d = dataclasses.asdict(self)
        d["stages"] = [dataclasses.asdict(s) for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Checkpoints written before ``dataset`` existed take the registered variant's."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {unknown}; known fields are {sorted(known)}")
        if "dataset" not in data and data.get("name") in _REGISTRY:
            data = {**data, "dataset": _REGISTRY[data["name"]]().dataset}
        return cls(**data)

    def replace(self, **overrides) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown override(s) {unknown}; known fields are {sorted(known)}")
        return dataclasses.replace(self, **overrides)


# --------------------------------------------------------------------------- registry
_REGISTRY: Dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list:
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]()


def reference_stages(embed_dims: Tuple[int, int, int, int]) -> Tuple[StageConfig, ...]:
    """Table 7 layout: 2 Conv stages at E0/2 and E0, E1 x2, E2 x6 Transformer, E3 x2 Transformer."""
    e0, e1, e2, e3 = embed_dims
    return (
        StageConfig("conv", e0 // 2, 1, kernel_size=7, stride=2, padding=3),
        StageConfig("conv", e0, 1),
        StageConfig("conv", e1, 2),
        StageConfig("transformer", e2, 6),
        StageConfig("transformer", e3, 2, stride=1),
    )


@register_model
def meta_spikeformer_c32() -> ModelConfig:
    return ModelConfig("meta_spikeformer_c32", reference_stages((64, 128, 256, 360)), dataset="imagefolder")


@register_model
def meta_spikeformer_c48() -> ModelConfig:
    return ModelConfig("meta_spikeformer_c48", reference_stages((96, 192, 384, 480)), dataset="imagefolder")


@register_model
def meta_spikeformer_c64() -> ModelConfig:
    return ModelConfig("meta_spikeformer_c64", reference_stages((128, 256, 512, 640)), dataset="imagefolder")


def small_stages() -> Tuple[StageConfig, ...]:
    """Fewer downsamplings so the Transformer stage keeps 7x7=49 tokens (DESIGN.md §2)."""
    return (
        StageConfig("conv", 32, 1, kernel_size=3, stride=2, padding=1),
        StageConfig("conv", 64, 1),
        StageConfig("transformer", 128, 2, stride=1),
    )


_SMALL = dict(attn_scale=1.0, learnable_attn_scale=True)


@register_model
def meta_spikeformer_small28() -> ModelConfig:
    """Fashion-MNIST / MNIST sized (1x28x28, 10 classes). Attention fires iff count >= 1 at init."""
    return ModelConfig("meta_spikeformer_small28", small_stages(), in_channels=1, num_classes=10,
                       img_size=28, dataset="fmnist", **_SMALL)


@register_model
def meta_spikeformer_small32() -> ModelConfig:
    """CIFAR sized (3x32x32, 10 classes): 32 -> 16 -> 8, 64 tokens in the Transformer stage."""
    return ModelConfig("meta_spikeformer_small32", small_stages(), in_channels=3, num_classes=10,
                       img_size=32, **_SMALL)


@register_model
def meta_spikeformer_hardvs() -> ModelConfig:
    """HAR-DVS: 2 polarity channels, T=8 event frames, 300 classes. 18.41M params; the paper reports
    18.3M without publishing the widths, E=(64, 128, 256, 480) is the reference layout closest to it."""
    return ModelConfig("meta_spikeformer_hardvs", reference_stages((64, 128, 256, 480)), in_channels=2,
                       num_classes=300, timesteps=8, event_input=True, dataset="hardvs")


def dvs_stages() -> Tuple[StageConfig, ...]:
    """``small_stages`` at half width: at T=8 a step costs 8 single-step passes, and on 2 CPU cores
    the full-width variant needs ~40 ms per 32x32 event clip (fwd+bwd) against ~19 ms for this one."""
    return (
        StageConfig("conv", 16, 1, kernel_size=3, stride=2, padding=1),
        StageConfig("conv", 32, 1),
        StageConfig("transformer", 64, 2, stride=1),
    )


@register_model
def meta_spikeformer_hardvs_small() -> ModelConfig:
    """CPU-trainable HAR-DVS-style variant: 2 polarities, T=8, 32x32 event frames, 10 classes
    (the Fashion-MNIST-DVS benchmark; ``num_classes=300`` for HAR-DVS)."""
    return ModelConfig("meta_spikeformer_hardvs_small", dvs_stages(), in_channels=2, num_classes=10,
                       img_size=32, timesteps=8, event_input=True, dataset="fmnist-dvs", **_SMALL)


@register_model
def meta_spikeformer_hardvs_medium() -> ModelConfig:
    """``meta_spikeformer_hardvs_small`` at the full ``small_stages`` widths (32/64/128): the half-width
    one fits only ~90 % of its own Fashion-MNIST-DVS training clips (README, issue 18), so more
    capacity is the way past 90 %; ~2x its cost per clip."""
    return meta_spikeformer_hardvs_small().replace(name="meta_spikeformer_hardvs_medium", stages=small_stages())


# --------------------------------------------------------------------------- Table-5 ablations
def _swap_blocks(cfg: ModelConfig, kind: str) -> ModelConfig:
    return cfg.replace(stages=tuple(dataclasses.replace(s, block=kind) for s in cfg.stages))


def _no_pyramid(cfg: ModelConfig) -> ModelConfig:
    stages = list(cfg.stages)
    stages[-1] = dataclasses.replace(stages[-1], dim=stages[-2].dim)
    return cfg.replace(stages=tuple(stages))


ABLATIONS: Dict[str, Callable[[ModelConfig], ModelConfig]] = {
    "remove_sepconv": lambda c: c.replace(sepconv=False),
    "channel_mlp": lambda c: c.replace(channel_mixer="mlp"),
    "linear_qkv": lambda c: c.replace(qkv_proj="linear"),
    "linear_proj": lambda c: c.replace(out_proj="linear"),
    "sdsa1": lambda c: c.replace(sdsa=1),
    "sdsa2": lambda c: c.replace(sdsa=2),
    "sdsa4": lambda c: c.replace(sdsa=4),
    "vs_shortcut": lambda c: c.replace(shortcut="vs"),
    "sew_shortcut": lambda c: c.replace(shortcut="sew"),
    "no_pyramid": _no_pyramid,
    "fully_cnn": lambda c: _swap_blocks(c, "conv"),
    "fully_transformer": lambda c: _swap_blocks(c, "transformer"),
}


def build_config(name: str, ablations: Iterable[str] = (), **overrides) -> ModelConfig:
    """Registry entry + Table-5 ablations + field overrides (``None`` overrides are dropped)."""
    cfg = get_config(name)
    for ablation in ablations:
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; known: {', '.join(sorted(ABLATIONS))}")
        cfg = ABLATIONS[ablation](cfg)
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
