"""Benchmark: Fashion-MNIST accuracy of an export on Lava (fused, ``fixed_pt`` and ``floating_pt``)
next to the PyTorch float model, on the same test images. Run after ``make benchmark``:
``python benchmarks/lava_accuracy.py --checkpoint runs/fmnist-benchmark/checkpoint.pt --images 1000``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lava_spikeformer.training.checkpoint import load_model
from lava_spikeformer.data import load_fashion_mnist, normalize
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.lava.run import run_network


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="netx_models/meta_spikeformer_small28_fmnist.pt")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--out", default="runs/benchmarks/lava_accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, _ = load_model(args.checkpoint)
    model.eval()
    graph = to_graph(model)
    test = load_fashion_mnist("test").subset(args.images)
    labels = test.labels.numpy()
    images = normalize(test.images)
    with torch.no_grad():
        torch_pred = np.concatenate([model(images[i:i + 500]).argmax(1).numpy() for i in range(0, len(test), 500)])
    result = {"checkpoint": args.checkpoint, "images": len(test), "timesteps": graph.timesteps,
              "torch_float_acc": float((torch_pred == labels).mean())}
    for tag in ("fixed_pt", "floating_pt"):
        t0 = time.perf_counter()
        preds = []
        for i in range(0, len(test), args.batch):
            out = run_network(graph, images[i:i + args.batch].double().numpy(), granularity="fused", tag=tag)
            preds.append(out[graph.output].mean(0).argmax(1))
        result[f"lava_{tag}_acc"] = float((np.concatenate(preds) == labels).mean())
        result[f"lava_{tag}_seconds"] = time.perf_counter() - t0
    result["fixed_minus_torch_pt"] = 100 * (result["lava_fixed_pt_acc"] - result["torch_float_acc"])
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
