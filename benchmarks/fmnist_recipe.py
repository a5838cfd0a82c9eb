"""Benchmark: the Fashion-MNIST recipe of issue 18, one change at a time at the same budget, then a
T=4 finetune of a chosen run. Every run is a normal ``lava-spikeformer train`` run folder under
``--root``; a run interrupted (the machine's session ended) is resumed with ``--resume`` and ends
with the weights an uninterrupted run would have (tests/test_train.py), so the benchmark can be
spread over several sittings: re-run the same command.

    python benchmarks/fmnist_recipe.py --epochs 20                       # every variant below
    python benchmarks/fmnist_recipe.py --epochs 20 --only base erase      # some of them
    python benchmarks/fmnist_recipe.py --finetune base --finetune-epochs 3

Prints the README table (params, T, epochs, training minutes, top-1 on the full 10k, train accuracy,
spike rate, energy of the deployed graph) and writes the per-epoch test curves of all runs to
``--curves`` (PNG).
"""
import argparse
import json
import sys
from pathlib import Path

from lava_spikeformer.cli import main
from lava_spikeformer.training.train import read_metrics

COMMON = ["--model", "meta_spikeformer_small28", "--amp", "--epoch-eval-subset", "2000", "--warmup-epochs", "1"]
#: one change at a time against ``base`` (shift +-2 / flip, label smoothing 0.1, AdamW 2e-3, cosine)
VARIANTS = {
    "base": [],
    "no_augment": ["--no-augment"],
    "erase": ["--random-erasing", "0.25"],
    "no_smoothing": ["--label-smoothing", "0"],
}


def _rows(run: Path):
    return read_metrics(run / "metrics.csv")


def _finished(run: Path, epochs: int) -> bool:
    return (run / "summary.json").exists() and len(_rows(run)) >= epochs


def _train(run: Path, epochs: int, extra, threads: int) -> int:
    if _finished(run, epochs):
        return 0
    resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
    return main(["train", *COMMON, "--epochs", str(epochs), "--out", str(run), "--threads", str(threads),
                 *extra, *resume])


def _table(runs) -> str:
    """One row per run; a variant's top-1 also as its change against ``base`` (same budget)."""
    lines = ["| run | params | T | epochs | training time | top-1 (10k) | vs base | train acc (last epoch) "
             "| spike rate | energy (deployed graph) |", "|---|---|---|---|---|---|---|---|---|---|"]
    finished = {name: json.loads((run / "summary.json").read_text()) for name, run, _ in runs
                if (run / "summary.json").exists()}
    for name, run, _ in runs:
        if name not in finished:
            lines.append(f"| {name} | (running: {len(_rows(run))} epochs) "
                         f"| | | | | | | | |")
            continue
        s, last = finished[name], _rows(run)[-1]
        delta = (f"{100 * (s['test_acc'] - finished['base']['test_acc']):+.2f} pt"
                 if "base" in finished and name != "base" else "")
        lines.append(f"| {name} | {s['params']:,} | {s['timesteps']} | {s['epochs']} | {s['train_seconds'] / 60:.1f} min "
                     f"| {100 * s['test_acc']:.2f} % | {delta} | {100 * last['train_acc']:.2f} % "
                     f"| {s['mean_spike_rate']:.4f} | {1e3 * s['energy_mj']:.1f} µJ |")
    return "\n".join(lines)


def _curves(runs, path: Path) -> None:
    """Test and train accuracy per epoch; a finetune's epochs continue its source's on the x axis."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, run, offset in runs:
        rows = _rows(run)
        if rows:
            epochs = [offset + r["epoch"] for r in rows]
            ax.plot(epochs, [100 * r["test_acc"] for r in rows], "o-", ms=3, label=f"{name}: test")
            ax.plot(epochs, [100 * r["train_acc"] for r in rows], ":", color=ax.lines[-1].get_color(),
                    label=f"{name}: train")
    ax.set(xlabel="epoch", ylabel="top-1 % (from 80 %: the first epochs lie below)", ylim=(80, 97.5),
           title="small28, Fashion-MNIST (test: 2,000 per epoch, 10k after a run's last)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="runs/recipe")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--finetune", choices=sorted(VARIANTS), default=None,
                        help="finetune this (finished) run at T=4 instead of training the variants")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--curves", default=None, help="PNG of the per-epoch curves (default: "
                        "benchmarks/results/fmnist_recipe_curves.png for a finetune, "
                        "fmnist_recipe_ablation_curves.png for the variants)")
    args = parser.parse_args()
    root = Path(args.root)
    runs = [(name, root / name, 0) for name in args.only]
    if args.finetune:
        source = root / args.finetune
        if not _finished(source, 1):
            raise SystemExit(f"--finetune {args.finetune}: {source} has no finished run")
        run = root / f"{args.finetune}_t4_e{args.finetune_epochs}"       # its own cosine: a folder per length
        rc = _train(run, args.finetune_epochs, ["--finetune-from", str(source / "checkpoint.pt"), "--timesteps", "4",
                                                "--lr", "2e-4", "--warmup-epochs", "0"], args.threads)
        runs = [(args.finetune, source, 0), (f"{args.finetune} -> T=4", run, len(_rows(source)))]
    else:
        rc = 0
        for name, run, _ in runs:
            rc = rc or _train(run, args.epochs, VARIANTS[name], args.threads)
    print(_table(runs))
    curves = Path(args.curves or f"benchmarks/results/fmnist_recipe_{'' if args.finetune else 'ablation_'}curves.png")
    _curves(runs, curves)
    print(f"wrote {curves}")
    return rc


if __name__ == "__main__":
    sys.exit(cli())
