"""Benchmark: per-output-channel weight exponents (the exporter's default: one lava.proc ``Sparse``
per exponent group, exact) against one exponent per layer (one ``Sparse`` per layer, the channels
requantized to the layer's largest weight), on the integer network of ``graph/fixed.py``.

    python benchmarks/exponent_groups.py --checkpoint netx_models/meta_spikeformer_small28_fmnist.pt --images 2000
"""
import argparse
import json
import sys
from unittest import mock

import numpy as np

from lava_spikeformer.data.idx import fashion_mnist_arrays
from lava_spikeformer.graph import fixed, predict
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.training.checkpoint import load_model

per_channel = fixed.quantize_weight


def per_layer(weight):
    """One exponent for the whole layer: that of its largest weight."""
    _, exponent = per_channel(weight)
    e = np.full_like(exponent, exponent.min())
    w = np.asarray(weight, dtype=np.float64)
    mantissa = np.clip(np.round(w * np.ldexp(1.0, e).reshape((-1,) + (1,) * (w.ndim - 1))), -128, 127)
    return mantissa.astype(np.int64), e


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="netx_models/meta_spikeformer_small28_fmnist.pt")
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    model, _ = load_model(args.checkpoint, neuron_mode="float")
    graph = to_graph(model.eval())
    images, labels = fashion_mnist_arrays("test")
    x, y = graph.input_spec.normalize(images[:args.images, None]), labels[:args.images]
    synapses = [n for n in graph.nodes if n.op in ("conv", "dense")]
    groups = sum(len(set(per_channel(n.params["weight"])[1].tolist())) for n in synapses)
    result = {"images": args.images, "layers": len(synapses), "sparse_processes_per_channel": groups,
              "float": float((predict(graph, x).argmax(1) == y).mean()),
              "integer_per_channel": float((predict(graph, x, precision="fixed").argmax(1) == y).mean())}
    with mock.patch.object(fixed, "quantize_weight", per_layer):
        result["integer_per_layer"] = float((predict(graph, x, precision="fixed").argmax(1) == y).mean())
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
