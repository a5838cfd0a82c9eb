"""Benchmark: the three Lava granularities of one export side by side, fixed_pt (the only tag the
stock processes have), the same ``--images`` inputs: ``fused`` (one of our processes per block) and
``fine`` (one of ours per node) run the batch in lock step (T + latency steps); ``loihi`` (lava-nc's
stock processes only) streams the images one after another (B*T + latency steps). Reports wall time
of a whole ``run`` (build, compile, start, steps, stop), steps/s and images/s including all of it, and
time as a ratio to ``fused``; every granularity's logits are checked equal to the integer reference.

    python benchmarks/granularity_throughput.py --model netx_models/meta_spikeformer_small28_fmnist.h5 --timesteps 4
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from lava_spikeformer.fileio import atomic_write
from lava_spikeformer.graph import read_graph, simulate
from lava_spikeformer.lava.run import run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="netx_models/meta_spikeformer_small28_fmnist.h5")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--out", default="runs/benchmarks/granularity_throughput.json")
    args = parser.parse_args()
    graph = read_graph(args.model)
    graph = dataclasses.replace(graph, timesteps=args.timesteps)
    rng, b = np.random.default_rng(0), args.images
    x = rng.normal(size=(b, *graph.input.shape)) if graph.static_input else \
        rng.poisson(0.2, size=(graph.timesteps, b, *graph.input.shape)).astype(float)
    reference = simulate(graph, x, precision="fixed")[graph.output]
    rows = []
    for granularity in ("fused", "fine", "loihi"):
        result = run(graph, x, granularity=granularity, tag="fixed_pt")
        assert np.array_equal(result.outputs[graph.output], reference), granularity
        rows.append({"granularity": granularity, "steps": result.steps, "latency": result.latency,
                     "seconds": round(result.seconds, 2), "steps_per_s": round(result.steps / result.seconds, 2),
                     "images_per_s": round(b / result.seconds, 3)})
    for r in rows:
        r["time_vs_fused"] = round(r["seconds"] / rows[0]["seconds"], 2)
    print(f"{b} images, T={graph.timesteps}")
    print("| granularity | processes built from | latency | steps | wall s (build + run + stop) | steps/s | images/s "
          "| time vs fused |")
    print("|---|---|---|---|---|---|---|---|")
    made_of = {"fused": "ours, one per block", "fine": "ours, one per node", "loihi": "lava.proc only"}
    for r in rows:
        print(f"| {r['granularity']} | {made_of[r['granularity']]} | {r['latency']} | {r['steps']} | {r['seconds']} "
              f"| {r['steps_per_s']} | {r['images_per_s']} | {r['time_vs_fused']}x |")
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
