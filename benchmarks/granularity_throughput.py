"""Benchmark: the three Lava granularities of one export side by side, fixed_pt (the only tag the
stock processes have), batch 1, the same image: ``fused`` (one of our processes per block),
``fine`` (one of ours per node), ``loihi`` (lava-nc's stock processes only). Reports wall time of a
whole ``run`` (build, compile, start, T + latency steps, stop) and steps/s including all of it, as
ratios to ``fused``; every granularity's logits are checked equal to the integer reference.

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
    parser.add_argument("--out", default="runs/benchmarks/granularity_throughput.json")
    args = parser.parse_args()
    graph = read_graph(args.model)
    graph = dataclasses.replace(graph, timesteps=args.timesteps)
    x = np.random.default_rng(0).normal(size=(1, *graph.input.shape)) if graph.static_input else \
        np.random.default_rng(0).poisson(0.2, size=(graph.timesteps, 1, *graph.input.shape)).astype(float)
    reference = simulate(graph, x, precision="fixed")[graph.output]
    rows = []
    for granularity in ("fused", "fine", "loihi"):
        result = run(graph, x, granularity=granularity, tag="fixed_pt")
        assert np.array_equal(result.outputs[graph.output], reference), granularity
        rows.append({"granularity": granularity, "steps": result.steps, "latency": result.latency,
                     "seconds": round(result.seconds, 2), "steps_per_s": round(result.steps / result.seconds, 2)})
    for r in rows:
        r["time_vs_fused"] = round(r["seconds"] / rows[0]["seconds"], 2)
    print("| granularity | processes built from | latency | steps | wall s (build + run + stop) | steps/s | time vs fused |")
    print("|---|---|---|---|---|---|---|")
    made_of = {"fused": "ours, one per block", "fine": "ours, one per node", "loihi": "lava.proc only"}
    for r in rows:
        print(f"| {r['granularity']} | {made_of[r['granularity']]} | {r['latency']} | {r['steps']} | {r['seconds']} "
              f"| {r['steps_per_s']} | {r['time_vs_fused']}x |")
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
