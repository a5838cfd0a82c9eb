"""``lava-spikeformer`` command line: train, evaluate, energy, demo, models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_model
from .config import ABLATIONS, list_models
from .data import DataError, load_fashion_mnist, normalize


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder with the Fashion-MNIST IDX files (default: Debian's /usr/share/datasets/fashion-mnist)")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig
    defaults = TrainConfig()
    p.add_argument("--model", default=defaults.model, choices=list_models())
    p.add_argument("--out", dest="out_dir", default=defaults.out_dir, help="run directory")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs)
    p.add_argument("--timesteps", type=int, default=None, help="T (default: the model's; 4 for a finetune)")
    p.add_argument("--finetune-from", default=None, help="T=1 checkpoint to finetune (e.g. at --timesteps 4)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast while training (eval stays float32)")
    p.add_argument("--epoch-eval-subset", type=int, default=None,
                   help="evaluate only the first N test images after each epoch; the last epoch uses all")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--energy-images", type=int, default=500, help="test images for the energy report")
    _add_data_args(p)


def _train_config(args):
    from .train import TrainConfig
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def _energy(model, data, n_images: int, out_dir: Path | None):
    from .analysis import energy_report
    subset = data.subset(n_images)
    batches = (normalize(subset.images[i:i + 250]) for i in range(0, len(subset), 250))
    report = energy_report(model, batches, static_input=not model.cfg.event_input)
    if out_dir is not None:
        report.save_json(out_dir / "energy.json")
        report.plot(out_dir / "energy.png")
    return report


def cmd_train(args) -> int:
    from .train import evaluate, train
    cfg = _train_config(args)
    train_set = load_fashion_mnist("train", args.data_dir)
    test_set = load_fashion_mnist("test", args.data_dir)
    result = train(cfg, train_set, test_set)
    out = Path(cfg.out_dir)
    model, _ = load_model(out / "checkpoint.pt")
    report = _energy(model, test_set, args.energy_images, out)
    summary = {"model": cfg.model, "params": result["params"], "timesteps": model.timesteps,
               "epochs": result["epoch"], "test_acc": result["test_acc"], "train_seconds": result["elapsed_seconds"],
               "mean_spike_rate": report.mean_spike_rate, "energy_mj": report.total_mj}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(report.table())
    print(json.dumps(summary, indent=2))
    print(f"run directory: {out} (checkpoint.pt, metrics.csv, curves.png, energy.png, summary.json)")
    return 0


def cmd_evaluate(args) -> int:
    from .train import evaluate
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    test_set = load_fashion_mnist("test", args.data_dir).subset(args.test_subset)
    loss, acc = evaluate(model, test_set)
    print(json.dumps({"checkpoint": str(args.checkpoint), "model": model.cfg.name, "timesteps": model.timesteps,
                      "images": len(test_set), "test_loss": loss, "test_acc": acc}, indent=2))
    return 0


def cmd_energy(args) -> int:
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    test_set = load_fashion_mnist("test", args.data_dir)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    report = _energy(model, test_set, args.images, out)
    print(report.table())
    return 0


def cmd_models(args) -> int:
    from . import create_model, count_parameters
    for name in list_models():
        print(f"{name:36s} {count_parameters(create_model(name)):>12,d} params")
    print("ablations: " + ", ".join(sorted(ABLATIONS)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lava-spikeformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on Fashion-MNIST, then evaluate and report energy")
    _train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="top-1 accuracy of a checkpoint on the Fashion-MNIST test set")
    p.add_argument("checkpoint")
    p.add_argument("--timesteps", type=int, default=None)
    _add_data_args(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("energy", help="per-layer firing rates and App. B energy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--timesteps", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for energy.json and energy.png")
    _add_data_args(p)
    p.set_defaults(func=cmd_energy)
    p = sub.add_parser("models", help="registered models with parameter counts")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
