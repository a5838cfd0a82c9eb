"""Benchmark: Lava steps/s (fused and fine-grained, floating_pt) next to PyTorch's CPU forward of the
same network, measured in the same run, as ratios. Batch 1 (one sample streaming, as on a chip).

PyTorch: ``model(x)`` at T timesteps in float64 (the precision Lava's float models compute in),
time per timestep = forward time / T. Lava: ``run(RunSteps(n))`` after a first one-step run that
compiles and starts the processes (reported separately), steps/s = n / wall time. Run:
``python benchmarks/lava_throughput.py`` (``--quick`` for a CI-sized run).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

from lava_spikeformer import count_parameters, create_model
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.lava.processes.network import SpikeFormerNetwork


def torch_step_seconds(model, x, repeats: int) -> float:
    model = model.double().eval()
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - t0) / repeats / model.timesteps


def lava_steps_per_second(graph, x: np.ndarray, granularity: str, steps: int):
    net = SpikeFormerNetwork(graph=graph, batch=1, granularity=granularity)
    source = Source(data=np.repeat(x[..., None], 8, axis=-1))
    source.s_out.connect(net.inp)
    net.out.connect(Sink(shape=net.out.shape, buffer=steps + 1).a_in)
    cfg = Loihi2SimCfg(select_tag="floating_pt")
    try:
        t0 = time.perf_counter()
        net.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        rate = steps / (time.perf_counter() - t0)
    finally:
        if net.runtime is not None:
            net.stop()
    return rate, startup


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small model only, few steps")
    parser.add_argument("--out", default="runs/benchmarks/lava_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    cases = [("meta_spikeformer_small28", {"timesteps": 4}, (1, 1, 28, 28))]
    if not args.quick:
        cases.append(("meta_spikeformer_c32", {"timesteps": 4, "img_size": 64}, (1, 3, 64, 64)))
    rows = []
    for name, overrides, shape in cases:
        model = create_model(name, **overrides).eval()
        graph = to_graph(model)
        x = np.random.default_rng(0).normal(size=shape)
        torch_step = torch_step_seconds(model, torch.from_numpy(x), repeats=3 if args.quick else 5)
        for granularity in ("fused", "fine"):
            rate, startup = lava_steps_per_second(graph, x, granularity, steps=20 if args.quick else 40)
            rows.append({"model": name, "params": count_parameters(model), "input": list(shape[1:]),
                         "granularity": granularity, "processes": _process_count(graph, granularity),
                         "lava_steps_per_s": rate, "lava_startup_s": startup,
                         "torch_steps_per_s": 1.0 / torch_step, "slowdown_vs_torch": (1.0 / rate) / torch_step})
    print("| model | input | Lava granularity | processes | Lava steps/s | PyTorch steps/s | Lava / PyTorch time | Lava startup |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['params'] / 1e6:.2f}M) | {'x'.join(map(str, r['input']))} | {r['granularity']} "
              f"| {r['processes']} | {r['lava_steps_per_s']:.1f} | {r['torch_steps_per_s']:.1f} "
              f"| {r['slowdown_vs_torch']:.2f}x | {r['lava_startup_s']:.1f} s |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    return 0


def _process_count(graph, granularity: str) -> int:
    """Lava processes of the network: one per node (+ skip-path delay lines) or one per block, + the input relay."""
    if granularity == "fused":
        return len(graph.blocks()) + 1
    arrival = graph.arrival()
    delays = {(i, max(arrival[j] for j in n.inputs)) for n in graph.nodes[1:] for i in n.inputs
              if arrival[i] < max(arrival[j] for j in n.inputs)}
    return len(graph.nodes) + len(delays)


if __name__ == "__main__":
    sys.exit(main())
