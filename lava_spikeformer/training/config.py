"""``TrainConfig``: one training run's settings (the recipe module builds the paper's)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrainConfig:
    model: str = "meta_spikeformer_small28"
    out_dir: str = "runs/fmnist"
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    clip_grad: float = 1.0
    timesteps: Optional[int] = None          # None: the model's own T
    num_classes: Optional[int] = None        # None: the model's own (e.g. 300 for HAR-DVS on a 10-class variant)
    finetune_from: Optional[str] = None      # a T=1 checkpoint to start a T>1 finetune from
    init_from: Optional[str] = None          # another model's checkpoint to start from (checkpoint.transfer_weights)
    resume: bool = False
    augment: bool = True
    random_erasing: float = 0.0              # Fashion-MNIST: probability of erasing a rectangle (with augment)
    amp: bool = False                        # bfloat16 autocast for training (CPU: 1.4x faster per step)
    epoch_eval_subset: Optional[int] = None  # evaluate the first N test images after each epoch, all at the end
    eval_batch_size: int = 500
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    optimizer: str = "adamw"                 # 'adamw' or 'lamb' (the paper's): recipe.OPTIMIZERS
    workers: int = 0                         # processes building batches (folder data: image decoding)
    teacher: Optional[str] = None            # KD teacher (recipe.load_teacher); gives the model a KD head
    distill_alpha: float = 0.5               # weight of the distillation term
    quantized: bool = False                  # quantization-aware: train the deployed integer network (nn/quantized.py)
    dataset: Optional[str] = None            # the data set trained on: recorded in the model's input contract
