"""Benchmark: train the small Meta-SpikeFormer on Fashion-MNIST on CPU and report the README row.

No augmentation by default (7 epochs under-train the model; augmentation cost 0.5-1 pt here).
Measured, not estimated: wall time of training (bfloat16 autocast) and of evaluation (float32, 2,000
test images after each epoch, the full 10k test set after the last), top-1 on the full 10k test set,
mean input spike rate and App. B energy on 500 test images (the exported graph's, the paper convention's
on the training graph in brackets). Run: ``make benchmark``.
"""
import argparse
import json
import sys
from pathlib import Path

from lava_spikeformer.cli import main

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="runs/fmnist-benchmark")
parser.add_argument("--epochs", type=int, default=7)
parser.add_argument("--augment", action="store_true", help="random shift/flip (slower to converge in 7 epochs)")
args = parser.parse_args()
rc = main(["train", "--model", "meta_spikeformer_small28", "--epochs", str(args.epochs), "--out", args.out,
           "--threads", "2", "--amp", "--epoch-eval-subset", "2000"] + ([] if args.augment else ["--no-augment"]))
if rc == 0:
    s = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"| {s['model']} | {s['params']:,} | {s['timesteps']} | {s['epochs']} | {s['train_seconds'] / 60:.1f} min "
          f"(+{(s['wall_seconds'] - s['train_seconds']) / 60:.1f} min eval) "
          f"| {100 * s['test_acc']:.2f} % | {s['mean_spike_rate']:.4f} | {1e3 * s['energy_mj']:.1f} µJ "
          f"({1e3 * s['energy_mj_paper']:.1f} µJ) |")
sys.exit(rc)
