"""Benchmark: training throughput (img/s) and peak memory of the plain and the fast training step,
next to the reference's figures (issue 7) and, on CPU, Lava's steps/s (``lava_throughput.py``).

One training step = forward, label-smoothed cross-entropy, backward, gradient clipping and an AdamW
step (``lava_spikeformer.training.step.TrainStep``, the step ``train`` runs), on a fixed random batch
already on the device, so the step is measured rather than data loading. ``plain`` reads the loss
and accuracy with ``.item()`` every step (two host syncs); ``fast`` keeps them on the device and
lets cuDNN pick its algorithms (``configure_backends``). AMP = bfloat16 autocast. Every case runs in
its own process, so its peak memory is its own: CUDA ``max_memory_allocated``; CPU the process's
peak resident set (torch and the libraries included).

Defaults: on CUDA the paper's setting (c32/c48/c64, 224², batch 32, T=1 and 4, AMP on and off); on
CPU small sizes (``meta_spikeformer_small28`` at 28², ``meta_spikeformer_c32`` at 64²), which run in
a few minutes on 2 cores. Run: ``python benchmarks/training_throughput.py [--device cpu] [--out FILE]``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

#: issue 7: spikingjelly reference, one H100, batch 32, 224², AdamW incl. backward:
#: (model, T) -> {amp: (img/s, peak GiB)}
REFERENCE = {
    ("meta_spikeformer_c32", 1): {True: (178, 5.9), False: (264, 11.4)},
    ("meta_spikeformer_c32", 4): {True: (160, 18.3), False: (157, 36.1)},
    ("meta_spikeformer_c48", 1): {True: (178, 8.8), False: (214, 16.8)},
    ("meta_spikeformer_c48", 4): {True: (131, 27.0), False: (112, 53.3)},
    ("meta_spikeformer_c64", 1): {True: (185, 11.9), False: (198, 22.6)},
    ("meta_spikeformer_c64", 4): {True: (122, 36.2), False: (87, 71.3)},
}
CUDA_CASES = [("meta_spikeformer_c32", 224), ("meta_spikeformer_c48", 224), ("meta_spikeformer_c64", 224)]
CPU_CASES = [("meta_spikeformer_small28", 28), ("meta_spikeformer_c32", 64)]
GIB = 2 ** 30


def measure(case: dict) -> dict:
    """Train ``case['steps']`` steps after ``case['warmup']``; img/s and peak memory of this process."""
    import torch
    import torch.nn.functional as F

    from lava_spikeformer import create_model
    from lava_spikeformer.training.recipe import build_optimizer
    from lava_spikeformer.training.step import TrainStep, configure_backends

    torch.manual_seed(0)
    if case["threads"]:
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    if case["fast"]:
        configure_backends(device)
    model = create_model(case["model"], timesteps=case["timesteps"], img_size=case["img_size"]).to(device)
    optimizer = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)

    def loss_fn(heads, y, x):
        return sum(F.cross_entropy(h.float(), y, label_smoothing=0.1) for h in heads) / len(heads)

    step = TrainStep(model, optimizer, loss_fn=loss_fn, amp=case["amp"], clip_grad=1.0, fast=case["fast"])
    x = torch.randn(case["batch"], model.cfg.in_channels, case["img_size"], case["img_size"], device=device)
    y = torch.randint(model.cfg.num_classes, (case["batch"],), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(case["warmup"]):
        step(x, y)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(case["steps"]):
        step(x, y)
    step.totals().tolist()                  # the fast step's one sync
    sync()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {**case, "img_per_s": case["batch"] * case["steps"] / seconds, "step_seconds": seconds / case["steps"],
            "peak_gib": peak / GIB, "peak_kind": "cuda max allocated" if device.type == "cuda" else "process peak RSS"}


def run_case(case: dict) -> dict:
    """``measure`` in a fresh process (its own peak memory)."""
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(case)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lava_rows(quick: bool, out: Path) -> list:
    """Lava steps/s (fused, fine) next to PyTorch's CPU forward: ``lava_throughput.py``'s own rows."""
    lava_json = out.with_name(out.stem + "_lava.json")
    cmd = [sys.executable, str(Path(__file__).with_name("lava_throughput.py")), "--out", str(lava_json)]
    proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lava_throughput.py failed:\n{proc.stderr[-3000:]}")
    return json.loads(lava_json.read_text())


def table(rows: list) -> str:
    lines = ["| model | input | T | AMP | batch | plain img/s | fast img/s | fast / plain | peak GiB plain / fast "
             "| reference img/s (peak GiB) | fast / reference |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["model"], r["img_size"], r["timesteps"], r["amp"], r["batch"]) for r in rows):
        model, size, t, amp, batch = key
        plain, fast = ({r["fast"]: r for r in rows
                        if (r["model"], r["img_size"], r["timesteps"], r["amp"], r["batch"]) == key}[m]
                       for m in (False, True))
        ref = REFERENCE.get((model, t), {}).get(amp) if size == 224 and batch == 32 else None
        ref_cells = (f"{ref[0]} ({ref[1]})", f"{fast['img_per_s'] / ref[0]:.2f}x") if ref else ("-", "-")
        lines.append(f"| {model} | {size}² | {t} | {'on' if amp else 'off'} | {batch} | {plain['img_per_s']:.1f} "
                     f"| {fast['img_per_s']:.1f} | {fast['img_per_s'] / plain['img_per_s']:.2f}x "
                     f"| {plain['peak_gib']:.2f} / {fast['peak_gib']:.2f} | {ref_cells[0]} | {ref_cells[1]} |")
    return "\n".join(lines)


def lava_table(rows: list) -> str:
    lines = ["| model | input | Lava granularity | Lava steps/s | PyTorch CPU steps/s (forward / T) | Lava startup |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['granularity']} "
                     f"| {r['lava_steps_per_s']:.1f} | {r['torch_steps_per_s']:.1f} | {r['lava_startup_s']:.1f} s |")
    return "\n".join(lines)


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",")]


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"AMP setting must be 'on' or 'off', got {text!r}")
    return text == "on"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--models", type=_csv(str), default=None,
                        help="comma-separated model names (default: c32,c48,c64 on CUDA; small28,c32 on CPU)")
    parser.add_argument("--img-size", type=int, default=None, help="input size for every model (default: per case)")
    parser.add_argument("--timesteps", type=_csv(int), default=[1, 4])
    parser.add_argument("--amp", type=_csv(_on_off), default=[False, True], help="comma-separated on/off")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="steps before measuring (default: 5 CUDA, 1 CPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--lava", choices=("full", "quick", "none"), default=None,
                        help="Lava rows from lava_throughput.py (default: full on CPU, none on CUDA)")
    parser.add_argument("--out", default="runs/benchmarks/training_throughput.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return 0
    import torch

    from lava_spikeformer.fileio import atomic_write
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    on_cuda = device.startswith("cuda")
    default_cases = CUDA_CASES if on_cuda else CPU_CASES
    cases = ([(m, args.img_size or dict(default_cases).get(m, 224)) for m in args.models] if args.models
             else [(m, args.img_size or s) for m, s in default_cases])
    steps = args.steps or (20 if on_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (5 if on_cuda else 1)
    rows = []
    for model, size in cases:
        for t in args.timesteps:
            for amp in args.amp:
                for fast in (False, True):
                    case = dict(model=model, img_size=size, timesteps=t, amp=amp, fast=fast, batch=args.batch,
                                steps=steps, warmup=warmup, device=device, threads=args.threads)
                    rows.append(run_case(case))
                    print(f"{model} {size}² T={t} amp={'on' if amp else 'off'} {'fast' if fast else 'plain'}: "
                          f"{rows[-1]['img_per_s']:.1f} img/s, peak {rows[-1]['peak_gib']:.2f} GiB", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lava_mode = args.lava or ("none" if on_cuda else "full")
    lava = lava_rows(lava_mode == "quick", out) if lava_mode != "none" else []
    print(f"training throughput on {torch.cuda.get_device_name() if on_cuda else 'CPU'} "
          f"(peak memory: {rows[0]['peak_kind']})")
    print(table(rows))
    if lava:
        print()
        print(lava_table(lava))
    payload = json.dumps({"device": device, "training": rows, "lava": lava}, indent=2)
    atomic_write(out, lambda tmp: Path(tmp).write_text(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
