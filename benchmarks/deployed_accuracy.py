"""Benchmark: float PyTorch vs the deployed integer network, before and after quantization-aware
finetuning, measured side by side on the same test samples.

For each checkpoint: the float model (PyTorch) and the integer network (``graph/fixed.py``, run as
``neuron_mode='fixed'``, which equals ``simulate(..., precision='fixed')`` bit for bit) on the whole
test set; Lava ``fixed_pt`` (fused processes, the same arithmetic) on ``--lava-images``; Lava
``fixed_pt`` built from lava-nc's stock processes only (``granularity='loihi'``) on
``--stock-images``, streamed one image after another through one built network per ``--stock-chunk``
images (the stock processes have no batch axis; ``lava/stock.py``).

    python benchmarks/deployed_accuracy.py --data fmnist \\
        --checkpoint netx_models/meta_spikeformer_small28_fmnist.pt --checkpoint runs/qat-small28/checkpoint.pt
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from lava_spikeformer.fileio import atomic_write
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.training.checkpoint import load_model


def test_set(data: str, cfg):
    if data == "fmnist":
        from lava_spikeformer.data import load_fashion_mnist
        return load_fashion_mnist("test")
    from lava_spikeformer.data.event_frames import frame_set
    return frame_set(data, cfg, "test")


def torch_predictions(model, data_set, desc: str, batch: int = 500) -> torch.Tensor:
    """Decisions on the whole set; a progress bar because the integer network of an event model
    took ~21 min for 10,000 clips on 2 cores (before float32 convolutions where exact: ~1.7x less)."""
    with torch.no_grad():
        return torch.cat([model(data_set.batch(slice(i, i + batch))).argmax(1)
                          for i in tqdm(range(0, len(data_set), batch), desc=desc, file=sys.stdout)])


def lava_accuracy(graph, data_set, count: int, batch: int, granularity: str, integer_predictions) -> dict:
    """Lava fixed_pt accuracy on the first ``count`` samples, ``batch`` per run, and how many of its
    decisions equal the integer network's (PyTorch ``neuron_mode='fixed'``)."""
    from lava_spikeformer.lava.run import run
    correct, agree, t0 = 0, 0, time.perf_counter()
    for i in range(0, count, batch):
        part = slice(i, min(i + batch, count))
        x = data_set.batch(part).double().numpy()
        chosen = run(graph, x, granularity=granularity, tag="fixed_pt").outputs[graph.output].mean(0).argmax(1)
        correct += int((chosen == data_set.labels[part].numpy()).sum())
        agree += int((chosen == integer_predictions[part].numpy()).sum())
        print(f"  {granularity}: {part.stop}/{count} correct {correct} = integer network {agree}", flush=True)
    return {"images": count, "accuracy": correct / count, "equal_to_integer_network": agree,
            "seconds": round(time.perf_counter() - t0, 1)}


def measure(path: str, data: str, lava_images: int, stock_images: int, test_samples=None,
            stock_chunk: int = 100) -> dict:
    model, _ = load_model(path, neuron_mode="float")
    data_set = test_set(data, model.cfg).subset(test_samples)
    fixed_model, _ = load_model(path, neuron_mode="fixed")
    labels = data_set.labels[:len(data_set)]
    integer = torch_predictions(fixed_model.eval(), data_set, "integer network")
    row = {"checkpoint": path, "test_samples": len(data_set), "timesteps": model.timesteps,
           "pytorch_float": float((torch_predictions(model.eval(), data_set, "float") == labels).float().mean()),
           "integer_network": float((integer == labels).float().mean())}
    graph = to_graph(model.eval())
    if lava_images:
        row["lava_fixed_pt_fused"] = lava_accuracy(graph, data_set, lava_images, 250, "fused", integer)
    if stock_images:
        row["lava_fixed_pt_stock"] = lava_accuracy(graph, data_set, stock_images, stock_chunk, "loihi", integer)
    row["gap_pt"] = round(100 * (row["pytorch_float"] - row["integer_network"]), 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--data", choices=("fmnist", "fmnist-dvs"), default="fmnist")
    parser.add_argument("--lava-images", type=int, default=0)
    parser.add_argument("--stock-images", type=int, default=0)
    parser.add_argument("--stock-chunk", type=int, default=100, help="images streamed per stock-process run")
    parser.add_argument("--test-samples", type=int, default=None, help="the first N test samples (default: all)")
    parser.add_argument("--out", default="runs/benchmarks/deployed_accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for path in args.checkpoint:
        rows.append(measure(path, args.data, args.lava_images, args.stock_images, args.test_samples,
                            args.stock_chunk))
        print(json.dumps(rows[-1], indent=2), flush=True)
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
