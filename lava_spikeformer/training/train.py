"""Training and evaluation: AdamW or LAMB + warmup/cosine, T=1 training then T=4 finetune, resume,
optional KD teacher, data-parallel over processes (``torchrun``; ``distributed``).

The run directory holds ``checkpoint.pt`` (last epoch, atomically replaced), ``best.pt``,
``metrics.csv`` (one row per epoch) and ``curves.png``.

Resume: ``checkpoint.pt`` holds the weights and BatchNorm statistics, the optimizer and scheduler
state and the generator that draws each epoch's batch order and augmentation seeds; nothing else in
a step draws randomness. A run interrupted and resumed with the same ``epochs`` therefore ends with
the same weights as the uninterrupted run, bit for bit (``tests/test_train.py``, with and without
``amp``). Resuming with a different ``epochs`` (extending a finished run) re-plans the cosine
schedule, which is defined over ``epochs``: a different run, not a continuation of the same one.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Tuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import create_model
from ..data.loader import epoch_batches
from ..fileio import atomic_write
from .checkpoint import (CheckpointError, load_checkpoint, load_model, load_state, require_resumable,
                         save_checkpoint, transfer_weights)
from .config import TrainConfig
from .distributed import current as current_distributed
from .recipe import build_optimizer, distillation_loss, load_teacher
from .step import TrainStep, configure_backends

METRIC_FIELDS = ("epoch", "timesteps", "lr", "train_loss", "train_acc", "test_images", "test_loss", "test_acc",
                 "train_seconds", "epoch_seconds", "elapsed_seconds")
_INT_FIELDS = ("epoch", "timesteps", "test_images")
LOG_EVERY = 20  # steps between progress-bar updates (each reads the running loss: one host sync)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def logits_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, *, batch_size: int = 500, device=None,
             progress: bool = True) -> Tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy (fraction) over ``data``, eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in tqdm(range(0, len(data), batch_size), desc="eval", leave=False, disable=not progress):
        x = data.batch(slice(start, start + batch_size)).to(device)
        y = data.labels[start:start + batch_size].to(device)
        logits = logits_of(model(x))
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return total_loss / len(data), correct / len(data)


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, cfg.epochs * steps_per_epoch)
    floor = cfg.min_lr / cfg.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def model_overrides(cfg: TrainConfig) -> dict:
    """The registered model's config fields this run changes."""
    overrides = {"timesteps": cfg.timesteps, "num_classes": cfg.num_classes, "dataset": cfg.dataset}
    overrides = {key: value for key, value in overrides.items() if value}
    if cfg.teacher:
        overrides["kd_head"] = True
    if cfg.quantized:
        overrides["neuron_mode"] = "fixed"
    return overrides


def resumed_checkpoint(out_dir, resume: bool) -> Path | None:
    """The checkpoint a run continues from: ``OUT/checkpoint.pt`` when ``--resume`` is given and it
    exists, else None (a fresh run). The CLI asks before building data (event frames depend on the
    run's T), ``train`` before building the model; one answer keeps them from disagreeing."""
    path = Path(out_dir) / "checkpoint.pt"
    return path if resume and path.exists() else None


def _build_model(cfg: TrainConfig, resume_from: Path | None):
    """A resumed run is rebuilt from its own checkpoint: the weights it started from
    (``--finetune-from``, ``--init-from``) are in there and need not exist any more."""
    overrides = model_overrides(cfg)
    source = resume_from or cfg.finetune_from
    if source:
        model, payload = load_model(source, **overrides)
        if payload["config"].name != cfg.model:
            raise CheckpointError(f"checkpoint {source} holds model {payload['config'].name!r}, not {cfg.model!r}")
        return model
    model = create_model(cfg.model, **overrides)
    if cfg.init_from:
        transfer_weights(cfg.init_from, model)
    return model


def _loss_fn(cfg: TrainConfig, model, device: torch.device):
    """Label-smoothed cross-entropy averaged over the heads; with a teacher, DeiT hard distillation."""
    if not cfg.teacher:
        return lambda heads, y, x: sum(F.cross_entropy(h.float(), y, label_smoothing=cfg.label_smoothing)
                                       for h in heads) / len(heads)
    teacher = load_teacher(cfg.teacher, num_classes=model.cfg.num_classes, device=device)

    def loss(heads, y, x):
        with torch.no_grad():
            teacher_logits = logits_of(teacher(x))
        return distillation_loss(heads, y, teacher_logits, alpha=cfg.distill_alpha,
                                 label_smoothing=cfg.label_smoothing)
    return loss


def plot_curves(rows, path: Path) -> None:
    from matplotlib.figure import Figure    # no pyplot: the caller's backend stays as it is

    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 4))
    (ax_loss, ax_acc) = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in rows], "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in rows], "o-", label="train")
    ax_acc.plot(epochs, [100 * r["test_acc"] for r in rows], "o-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="top-1 %", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def read_metrics(path: Path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k in _INT_FIELDS else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _write_metrics(path: Path, rows) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)


def write_run_metadata(out: Path, cfg: TrainConfig, model) -> None:
    """``train_config.json`` and ``model_config.json``, each replaced atomically, written only after the
    epoch's ``checkpoint.pt`` (which holds the same train config): a run that fails before its first
    epoch, or is killed at any point, never leaves a config describing a checkpoint that does not exist."""
    for name, data in (("train_config.json", dataclasses.asdict(cfg)), ("model_config.json", model.cfg.to_dict())):
        text = json.dumps(data, indent=2)
        atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text))


def train(cfg: TrainConfig, train_set, test_set, *, progress: bool = True) -> dict:
    """Train ``cfg.model``; returns the last epoch's metrics row plus ``params`` and ``best_acc``."""
    if int(cfg.epochs) != cfg.epochs or cfg.epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {cfg.epochs!r}: nothing to train")
    torch.manual_seed(cfg.seed)
    dist = current_distributed()
    device = pick_device(cfg.device)
    configure_backends(device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set = train_set.subset(cfg.train_subset), test_set.subset(cfg.test_subset)
    if cfg.random_erasing:
        if not 0 < cfg.random_erasing <= 1 or not hasattr(train_set, "erase_prob"):
            raise ValueError(f"random_erasing must lie in (0, 1] and applies to Fashion-MNIST image sets "
                             f"(image folders: the recipe's re_prob); got {cfg.random_erasing!r} for "
                             f"{type(train_set).__name__}")
        train_set = dataclasses.replace(train_set, erase_prob=float(cfg.random_erasing))
    ckpt_path = out / "checkpoint.pt"
    resumed = resumed_checkpoint(out, cfg.resume)
    model = _build_model(cfg, resumed).to(device)
    steps_per_epoch = math.ceil(len(dist.shard(torch.arange(len(train_set)))) / cfg.batch_size)
    optimizer = build_optimizer(model, cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch))
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch, best_acc, elapsed = 0, 0.0, 0.0
    rows = []
    if resumed:
        payload = load_checkpoint(ckpt_path)
        require_resumable(ckpt_path, payload)
        if payload["epoch"] >= cfg.epochs:
            raise CheckpointError(f"checkpoint {ckpt_path} is at epoch {payload['epoch']}: epochs={cfg.epochs} "
                                  f"leaves nothing to train (give --epochs > {payload['epoch']}); the run is "
                                  f"left as it is")
        load_state(ckpt_path, model, payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        generator.set_state(payload["rng"])
        start_epoch, best_acc, elapsed = payload["epoch"], payload["best_acc"], payload["elapsed_seconds"]
        rows = [r for r in read_metrics(out / "metrics.csv") if r["epoch"] <= start_epoch]
        planned = (payload.get("train_config") or {}).get("epochs")
        if progress and dist.is_main and planned is not None and planned != cfg.epochs:
            tqdm.write(f"resuming after epoch {start_epoch} with epochs={cfg.epochs}; the checkpoint's run planned "
                       f"{planned}: the warmup+cosine schedule is re-planned over {cfg.epochs} epochs from here, so "
                       f"the result will differ from an uninterrupted {cfg.epochs}-epoch run")
    train_step = TrainStep(dist.wrap(model, device), optimizer, scheduler, loss_fn=_loss_fn(cfg, model, device),
                           amp=cfg.amp, clip_grad=cfg.clip_grad)
    show = progress and dist.is_main

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        order = dist.shard(torch.randperm(len(train_set), generator=generator))
        batches = epoch_batches(train_set, order, cfg.batch_size, generator if cfg.augment else None,
                                workers=cfg.workers, pin_memory=device.type == "cuda",
                                seed_column=dist.rank, seed_columns=dist.world_size)
        train_step.reset()
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs} T={model.timesteps}",
                   disable=not show)
        for step, (x, y) in enumerate(bar, 1):
            train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            if show and (step % LOG_EVERY == 0 or step == steps_per_epoch):
                loss_sum, correct, seen = train_step.totals().tolist()
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        loss_sum, correct, seen = dist.sum(train_step.totals()).tolist()
        train_seconds = time.perf_counter() - t0
        if not dist.is_main:
            dist.barrier()                   # rank 0 evaluates and writes the checkpoint
            continue
        eval_set = test_set if epoch + 1 == cfg.epochs else test_set.subset(cfg.epoch_eval_subset)
        test_loss, test_acc = evaluate(model, eval_set, batch_size=cfg.eval_batch_size, progress=progress)
        epoch_seconds = time.perf_counter() - t0
        elapsed += epoch_seconds
        row = {"epoch": epoch + 1, "timesteps": model.timesteps, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_images": len(eval_set), "test_loss": test_loss,
               "test_acc": test_acc, "train_seconds": train_seconds, "epoch_seconds": epoch_seconds,
               "elapsed_seconds": elapsed}
        rows.append(row)
        if progress:
            tqdm.write(f"epoch {epoch + 1}: train {100 * row['train_acc']:.2f} % test {100 * test_acc:.2f} % "
                       f"({train_seconds:.0f} s train, {epoch_seconds:.0f} s total)")
        if test_acc > best_acc:
            best_acc = test_acc
            save_checkpoint(out / "best.pt", model, epoch=epoch + 1, test_acc=test_acc)
        save_checkpoint(ckpt_path, model, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        rng=generator.get_state(), epoch=epoch + 1, best_acc=best_acc, elapsed_seconds=elapsed,
                        train_config=dataclasses.asdict(cfg))
        write_run_metadata(out, cfg, model)          # after the checkpoint it describes, never before
        _write_metrics(out / "metrics.csv", rows)
        plot_curves(rows, out / "curves.png")
        dist.barrier()
    from ..nn import count_parameters
    return {**(rows[-1] if rows else {}), "params": count_parameters(model), "best_acc": best_acc}
