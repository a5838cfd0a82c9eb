"""``lava-spikeformer`` command line: train, evaluate, energy, export, run-lava, models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

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
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random shift/flip")
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
    from .train import read_metrics, evaluate, train
    cfg = _train_config(args)
    train_set = load_fashion_mnist("train", args.data_dir)
    test_set = load_fashion_mnist("test", args.data_dir)
    result = train(cfg, train_set, test_set)
    out = Path(cfg.out_dir)
    model, _ = load_model(out / "checkpoint.pt")
    report = _energy(model, test_set, args.energy_images, out)
    summary = {"model": cfg.model, "params": result["params"], "timesteps": model.timesteps,
               "epochs": result["epoch"], "test_acc": result["test_acc"],
               "train_seconds": sum(r["train_seconds"] for r in read_metrics(out / "metrics.csv")),
               "wall_seconds": result["elapsed_seconds"],
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


def cmd_export(args) -> int:
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    path = model.eval().export_hdf5(args.out)
    from .export import read_graph
    graph = read_graph(path)
    print(f"wrote {path}: {len(graph.nodes)} nodes, T={graph.timesteps}, latency {graph.latency} steps")
    return 0


def cmd_run_lava(args) -> int:
    import time

    import numpy as np

    from .export import read_graph
    from .lava.network import run_network
    graph = read_graph(args.model)
    if graph.input.shape[0] != 1 or graph.input.shape[1] != 28:
        raise ValueError(f"{args.model}: run-lava reads Fashion-MNIST (1x28x28); this export takes {graph.input.shape}")
    test_set = load_fashion_mnist("test", args.data_dir).subset(args.images)
    probes = [n.name for n in graph.nodes if n.op in ("lif", "sdsa")] if args.granularity == "fine" else []
    correct, steps_run, seconds, records = 0, 0, 0.0, []
    for start in tqdm(range(0, len(test_set), args.batch), desc=f"lava {args.tag} {args.granularity}"):
        images = normalize(test_set.images[start:start + args.batch]).double().numpy()
        t0 = time.perf_counter()
        out = run_network(graph, images, granularity=args.granularity, tag=args.tag, probes=probes, steps=args.steps)
        seconds += time.perf_counter() - t0
        steps_run += args.steps or graph.timesteps + graph.latency
        correct += int((out[graph.output].mean(0).argmax(1) == test_set.labels[start:start + args.batch].numpy()).sum())
        records.append(out)
    result = {"model": str(args.model), "tag": args.tag, "granularity": args.granularity, "images": len(test_set),
              "accuracy": correct / len(test_set), "steps_per_second_incl_startup": steps_run / seconds,
              "latency_steps": graph.latency, "timesteps": graph.timesteps}
    if probes:
        rates = {name: float(np.mean([r[name].mean() for r in records])) for name in probes}
        result["mean_firing_rate"] = float(np.mean(list(rates.values())))
        if args.out:
            _plot_lava(Path(args.out), records[0], probes, rates)
    print(json.dumps(result, indent=2))
    return 0


def _plot_lava(out: Path, record, probes, rates) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(rates)), list(rates.values()))
    ax.set_xticks(range(len(rates)), list(rates), rotation=90, fontsize=6)
    ax.set(ylabel="firing rate", title="Lava: firing rate per neuron layer")
    fig.tight_layout()
    fig.savefig(out / "lava_rates.png", dpi=100)
    plt.close(fig)
    layer = probes[-1]
    spikes = record[layer][:, 0].reshape(record[layer].shape[0], -1)       # [T, neurons] of image 0
    t, n = np.nonzero(spikes)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.scatter(t, n, s=4, marker="|")
    ax.set(xlabel="timestep", ylabel="neuron", title=f"Lava spike raster: {layer} (image 0)")
    fig.tight_layout()
    fig.savefig(out / "lava_raster.png", dpi=100)
    plt.close(fig)


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
    p = sub.add_parser("export", help="fold BatchNorm/RepConv and write the HDF5 export of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="the .h5 file to write")
    p.add_argument("--timesteps", type=int, default=None)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("run-lava", help="run an export on Lava (CPU backend): accuracy, steps/s, plots")
    p.add_argument("model", help="an .h5 export")
    p.add_argument("--tag", choices=("floating_pt", "fixed_pt"), default="floating_pt")
    p.add_argument("--granularity", choices=("fine", "fused"), default="fused")
    p.add_argument("--steps", type=int, default=None, help="Lava steps per batch (default and minimum: T + latency)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", default=None, help="folder for lava_rates.png and lava_raster.png (fine granularity)")
    _add_data_args(p)
    p.set_defaults(func=cmd_run_lava)
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
