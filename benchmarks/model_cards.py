"""Export a trained checkpoint into ``netx_models/`` with its model card, every number measured here.

Writes ``<name>.h5`` (the export), ``<name>.json`` (the card, machine-readable: the test suite
re-runs its evaluation subset on Lava and must reproduce it exactly) and ``<name>.md`` (the card
for people). Accuracy is measured on the same test samples in PyTorch (float32, as trained),
Lava ``floating_pt`` and Lava ``fixed_pt`` (fused), for a small evaluation subset and for a
larger one; event models are fed on Lava by the ``EventSource`` streaming raw events.

    python benchmarks/model_cards.py --checkpoint netx_models/meta_spikeformer_small28_fmnist.pt --data fmnist
    python benchmarks/model_cards.py --checkpoint runs/qat-medium/checkpoint.pt --data fmnist-dvs \\
        --name meta_spikeformer_hardvs_medium_fmnist_dvs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lava_spikeformer.training.checkpoint import load_model, save_checkpoint
from lava_spikeformer.training.train import read_metrics
from lava_spikeformer.fileio import atomic_write
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.nn import count_parameters

ROOT = Path(__file__).resolve().parents[1]
TAGS = ("floating_pt", "fixed_pt")


def test_samples(data: str, graph, count: int):
    """``(inputs for PyTorch, labels, run_on_lava(tag, start, stop) -> predictions)`` for the first
    ``count`` test samples."""
    if data == "fmnist":
        from lava_spikeformer.data import load_fashion_mnist
        from lava_spikeformer.lava.run import run_network
        test = load_fashion_mnist("test").subset(count)
        x = test.batch(slice(0, count))

        def on_lava(tag, start, stop):
            out = run_network(graph, x[start:stop].double().numpy(), granularity="fused", tag=tag)
            return out[graph.output].sum(0).argmax(1)
        return x, test.labels.numpy(), on_lava
    from event_data.sources import STREAM_SOURCES
    from lava_spikeformer.lava.run import stream_events
    from event_data.transforms import frame_transform
    size = tuple(graph.input.shape[1:])
    dataset, options = STREAM_SOURCES[data](None, "test", size)
    samples = [dataset[i] for i in range(count)]
    transform = frame_transform(dataset.sensor_size, n_time_bins=graph.timesteps, **options)
    x = torch.from_numpy(np.stack([transform(e) for e, _ in samples], axis=1).astype(np.float32))

    def on_lava(tag, start, stop):
        result = stream_events(graph, [e for e, _ in samples[start:stop]], sensor_size=dataset.sensor_size,
                               tag=tag, **options)
        return result.final
    return x, np.array([label for _, label in samples]), on_lava


def accuracies(model, graph, data: str, count: int, batch: int) -> dict:
    x, labels, on_lava = test_samples(data, graph, count)
    with torch.no_grad():
        torch_pred = np.concatenate([model(x[:, i:i + batch] if model.cfg.event_input else x[i:i + batch])
                                     .argmax(1).numpy() for i in range(0, count, batch)])
    result = {"images": count, "pytorch": float((torch_pred == labels).mean())}
    for tag in TAGS:
        t0 = time.perf_counter()
        pred = np.concatenate([on_lava(tag, i, min(i + batch, count)) for i in range(0, count, batch)])
        result[f"lava_{tag}"] = float((pred == labels).mean())
        result[f"lava_{tag}_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def energy(model, data: str, count: int) -> dict:
    """App. B energy per sample on the first ``count`` test samples, as ``lava-spikeformer energy``
    measures it: the exported graph (what runs on Lava) and the paper's training-graph convention."""
    from lava_spikeformer.analysis import energy_views
    if data == "fmnist":
        from lava_spikeformer.data import load_fashion_mnist
        test = load_fashion_mnist("test").subset(count)
    else:
        from lava_spikeformer.data.event_frames import frame_set
        test = frame_set(data, model.cfg, "test", limit=count)
    views = energy_views(model, [test.batch(slice(i, i + 250)) for i in range(0, len(test), 250)])
    return {"mean_spike_rate": views.mean_spike_rate, "energy_uj": 1e3 * views.total_mj,
            "energy_uj_paper": 1e3 * views.paper.total_mj, "energy_samples": len(test)}


def markdown(card: dict) -> str:
    rows = [("evaluation subset (tests)", card["evaluation_subset"])] + \
        ([("larger subset", card["larger_subset"])] if card.get("larger_subset") else [])
    table = "\n".join(f"| {label} | {r['images']} | {100 * r['pytorch']:.2f} % | {100 * r['lava_floating_pt']:.2f} % "
                      f"| {100 * r['lava_fixed_pt']:.2f} % |" for label, r in rows)
    training = card["training"]
    return f"""# {card['name']}

`{card['model']}`, {card['params']:,} parameters, T={card['timesteps']}, input {card['input']}, data
`{card['data']}`. Files: `{card['name']}.h5` (export, {card['export_format']}), `{card['name']}.json`
(this card, read by `tests/test_netx_models.py`){', `' + card['checkpoint'] + '` (PyTorch checkpoint)' if card.get('checkpoint') else ''}.

| test samples | count | PyTorch (float32) | Lava floating_pt | Lava fixed_pt |
|---|---|---|---|---|
{table}

Training run's test accuracy on {training['test_samples']:,} test samples, {training.get('test_acc_of', 'PyTorch (float32)')}: **{100 * training['test_acc']:.2f} %**. Mean spike rate {card['mean_spike_rate']:.4f},
energy {card['energy_uj']:.1f} µJ per sample for the deployed (exported) graph, {card['energy_uj_paper']:.1f} µJ by
the paper's convention on the training graph (App. B, 45 nm; {card['energy_samples']} test samples; the
difference is the RepConvs, see `analysis/energy.py`). Lava runs: fused granularity,
pipeline latency {card['latency_steps']} steps{'; events streamed by the Lava EventSource' if card['data'] != 'fmnist' else ''}.

Trained with: `{training['command']}` ({training['epochs']} epoch{'s' if training['epochs'] != 1 else ''}, {training['train_minutes']:.1f} min of
training on {training['machine']}). {training.get('note', '')}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", choices=("fmnist", "fmnist-dvs"), required=True)
    parser.add_argument("--name", default=None, help="file stem in netx_models/ (default: the checkpoint's)")
    parser.add_argument("--run-dir", default=None, help="training run folder with summary.json (default: the checkpoint's)")
    parser.add_argument("--subset", type=int, default=64, help="evaluation subset the tests reproduce")
    parser.add_argument("--larger-subset", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--energy-samples", type=int, default=None,
                        help="test samples for the energy estimate (default: 500 images, 1,000 event clips)")
    parser.add_argument("--machine", default="2 CPU cores (AMD EPYC)")
    parser.add_argument("--training-note", default="", help="how the run deviated from its command, if it did")
    parser.add_argument("--test-acc-of", default="PyTorch (float32)",
                        help="what the run's full-test-set accuracy measured (a --quantized run: the integer network)")
    parser.add_argument("--training-command", default=None, help="the commands that made the checkpoint, when "
                                                                 "the run folder's train_config.json tells only the last")
    args = parser.parse_args()
    torch.set_num_threads(2)
    checkpoint = Path(args.checkpoint)
    name = args.name or checkpoint.stem
    out = ROOT / "netx_models"
    run_dir = Path(args.run_dir) if args.run_dir else checkpoint.parent
    summary = json.loads((run_dir / "summary.json").read_text())
    train_config = json.loads((run_dir / "train_config.json").read_text())
    run_test_count = read_metrics(run_dir / "metrics.csv")[-1]["test_images"]     # the run's last evaluation
    # shipped as the float model whatever it was trained as: a quantization-aware run's checkpoint
    # loads in fixed mode, but users and the tests expect PyTorch = Lava floating_pt from a shipped
    # file; load_model(..., neuron_mode="fixed") gives its integer network (= Lava fixed_pt)
    model, payload = load_model(checkpoint, neuron_mode="float")
    model.eval()
    graph = to_graph(model)
    card = {
        "name": name, "model": model.cfg.name, "params": count_parameters(model), "timesteps": graph.timesteps,
        "input": list(graph.input.shape), "data": args.data, "export_format": "lava-spikeformer-netx v2",
        "checkpoint": f"{name}.pt", "latency_steps": graph.latency,
        **energy(model, args.data, args.energy_samples or (500 if args.data == "fmnist" else 1000)),
        "training": {"test_acc": summary["test_acc"], "test_samples": run_test_count, "epochs": summary["epochs"],
                     "train_minutes": summary["train_seconds"] / 60, "machine": args.machine,
                     "command": args.training_command or "lava-spikeformer train " + " ".join(
                         f"--{k.replace('_', '-')} {v}" for k, v in train_config.items()
                         if k in ("model", "epochs", "batch_size", "lr", "warmup_epochs") )
                         + f" --data {args.data}" + (" --amp" if train_config.get("amp") else "")
                         + ("" if train_config.get("augment") else " --no-augment"),
                     "test_acc_of": args.test_acc_of, "note": args.training_note},
        "evaluation_subset": accuracies(model, graph, args.data, args.subset, args.batch),
    }
    if args.larger_subset:
        card["larger_subset"] = accuracies(model, graph, args.data, args.larger_subset, args.batch)
    # the files are written once every figure is measured: a failed measurement leaves the shipped
    # model, its export and its card as they were, consistent with each other
    h5 = model.export_hdf5(out / f"{name}.h5")
    if checkpoint.resolve() != (out / f"{name}.pt").resolve():
        # weights only: a run's checkpoint.pt also holds the optimizer state (3x the size), which
        # a shipped model has no use for (continue training with --finetune-from)
        save_checkpoint(out / f"{name}.pt", model, **{k: payload[k] for k in ("epoch", "test_acc") if k in payload})
    atomic_write(out / f"{name}.json", lambda tmp: Path(tmp).write_text(json.dumps(card, indent=2) + "\n"))
    atomic_write(out / f"{name}.md", lambda tmp: Path(tmp).write_text(markdown(card)))
    print(json.dumps(card, indent=2))
    print(f"wrote {h5}, {out / (name + '.json')}, {out / (name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
