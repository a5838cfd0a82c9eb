"""``lava-spikeformer`` command line: train, evaluate, energy, export, run-lava, loihi-report, import-official,
models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from .config import ABLATIONS, build_config, list_models
from .data.idx import DataError
from .graph import ExportError, GraphError
from .graph.input import KNOWN_DATASETS

DATA_SETS = tuple(KNOWN_DATASETS)
FINETUNE_TIMESTEPS = 4          # the paper's second stage: a T=1 model finetuned at T=4


# ---------------------------------------------------------------------------- argument types
# One place for what an argument may hold: argparse rejects a bad value before any work, with
# "error: argument --NAME: ..." and exit code 2.
def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"int >= {low}"
    return parse


positive_int, non_negative_int = _int_at_least(1), _int_at_least(0)


def _finite_float(low: float = None, high: float = None, *, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
            bounds = f"{'>' if low_open else '>='} {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {value}")
        return value
    parse.__name__ = "finite float"
    return parse


def _writable(path: Path, kind: str) -> Path:
    """``path`` as an output ``kind`` ('file' or 'folder'): refused when it exists as the other kind,
    or when the nearest existing folder above it is not writable. Checked at parse time, before the work."""
    if path.exists():
        if kind == "file" and path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a folder, expected a file name")
        if kind == "folder" and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is an existing file, expected a folder")
    target = path if kind == "folder" and path.is_dir() else path.parent
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {path}: folder {existing} is not writable")
    return path


def output_file(text: str) -> str:
    return str(_writable(Path(text), "file"))


def output_folder(text: str) -> str:
    return str(_writable(Path(text), "folder"))


output_file.__name__, output_folder.__name__ = "output file", "output folder"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=DATA_SETS, default=None,
                   help="default: the data set the model was made for (its input contract). "
                        "fmnist: Fashion-MNIST images; fmnist-dvs: its DVS emulation (event frames, cached); "
                        "hardvs: HAR-DVS from --root; imagefolder: ImageNet-style --root/train/<class>/<image> "
                        "and --root/val/<class>/<image>")
    p.add_argument("--root", "--data-dir", dest="data_dir", default=None,
                   help="data root: the Fashion-MNIST IDX folder (default: Debian's /usr/share/datasets/fashion-mnist) "
                        "for fmnist/fmnist-dvs, the HAR-DVS release folder for hardvs")
    p.add_argument("--test-subset", type=positive_int, default=None, help="evaluate on the first N test images")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")


def _add_events_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--events", nargs="+", default=None, metavar="FILE",
                   help=f"event-camera recordings (.aedat4 DV/DAVIS, .bin N-MNIST/ATIS, .npz HAR-DVS, .npy tonic "
                        f"event array), fitted to the model's input as its input contract says: {what} "
                        f"(instead of a test set)")
    p.add_argument("--sensor", nargs=2, type=positive_int, default=None, metavar=("W", "H"),
                   help="sensor width and height, for recordings that do not store it (.bin, .npy; .npz: "
                        "default 346 260, HAR-DVS's DAVIS346)")
    p.add_argument("--labels", nargs="+", type=non_negative_int, default=None, metavar="CLASS",
                   help="with --events: the true class of each recording, for the accuracy per step")


def _train_args(p: argparse.ArgumentParser) -> None:
    from .training.config import TrainConfig
    defaults = TrainConfig()
    p.add_argument("--model", default=defaults.model, choices=list_models())
    p.add_argument("--out", dest="out_dir", type=output_folder, default=defaults.out_dir, help="run directory")
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                   help="epochs in all (with --resume: including those done)")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    p.add_argument("--lr", type=_finite_float(0.0, low_open=True), default=defaults.lr)
    p.add_argument("--weight-decay", type=_finite_float(0.0), default=defaults.weight_decay)
    p.add_argument("--warmup-epochs", type=_finite_float(0.0), default=defaults.warmup_epochs)
    p.add_argument("--label-smoothing", type=_finite_float(0.0, 1.0), default=defaults.label_smoothing)
    p.add_argument("--timesteps", type=positive_int, default=None,
                   help=f"T (default: the model's; with --finetune-from a T=1 checkpoint: {FINETUNE_TIMESTEPS}, "
                        f"the paper's finetune; from a T>1 checkpoint: its T)")
    p.add_argument("--num-classes", type=positive_int, default=None, help="classes (default: the model's)")
    p.add_argument("--finetune-from", default=None, help="T=1 checkpoint to finetune (e.g. at --timesteps 4)")
    p.add_argument("--init-from", default=None,
                   help="start from another model's checkpoint: same widths, input channels adapted (e.g. the "
                        "image model's weights for meta_spikeformer_hardvs_medium on events)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--train-subset", type=positive_int, default=None)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random shift/flip")
    p.add_argument("--random-erasing", type=_finite_float(0.0, 1.0), default=defaults.random_erasing, metavar="P",
                   help="Fashion-MNIST: erase a random rectangle of each training image with probability P")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast while training (eval stays float32)")
    p.add_argument("--quantized", action="store_true",
                   help="quantization-aware training: the forward is the deployed integer network (Lava fixed_pt "
                        "bit for bit); typically with --finetune-from a float checkpoint")
    p.add_argument("--epoch-eval-subset", type=positive_int, default=None,
                   help="evaluate only the first N test images after each epoch; the last epoch uses all")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--energy-images", type=positive_int, default=500, help="test images for the energy report")
    p.add_argument("--optimizer", choices=("adamw", "lamb"), default=defaults.optimizer)
    p.add_argument("--workers", type=non_negative_int, default=defaults.workers,
                   help="processes building batches (worth it for imagefolder: image decoding and RandAugment)")
    p.add_argument("--teacher", default=None,
                   help="KD teacher: a lava-spikeformer checkpoint, or timm:NAME[:WEIGHTS_FILE]; adds a KD head")
    p.add_argument("--distill-alpha", type=_finite_float(0.0, 1.0), default=defaults.distill_alpha)
    p.add_argument("--recipe", choices=("t1", "t4"), default=None,
                   help="the paper's Table 8 stage (LAMB, lr = base * global batch / 256, cosine, warmup, "
                        "weight decay 0.05, label smoothing 0.1); flags given explicitly override it (a flag at "
                        "its default value counts as not given)")
    _add_data_args(p)


def _data_name(args, model_cfg) -> str:
    """``--data``, else the data set the model was made for."""
    data = args.data or model_cfg.dataset
    if not data:
        raise DataError(f"{model_cfg.name} does not record the data set it was made for; name one with --data "
                        f"({', '.join(DATA_SETS)})")
    return data


def _load_sets(args, model_cfg, *, train: bool = True):
    """(train set, test set) for ``--data``; the train set is None unless ``train``."""
    args.data = _data_name(args, model_cfg)
    if args.data == "imagefolder":
        from .data.folder import load_image_folder, load_image_folders
        if args.data_dir is None:
            raise DataError("--data imagefolder needs --root ROOT (ROOT/train/<class>/..., ROOT/val/<class>/...)")
        if not train:
            return None, load_image_folder(args.data_dir, "val", img_size=model_cfg.img_size)
        return load_image_folders(args.data_dir, img_size=model_cfg.img_size, num_classes=model_cfg.num_classes)
    if args.data == "fmnist":
        from .data import load_fashion_mnist
        test_set = load_fashion_mnist("test", args.data_dir)
        return (load_fashion_mnist("train", args.data_dir) if train else None), test_set
    from .data.event_frames import frame_set
    test_set = frame_set(args.data, model_cfg, "test", root=args.data_dir, limit=getattr(args, "test_subset", None))
    train_set = frame_set(args.data, model_cfg, "train", root=args.data_dir,
                          limit=getattr(args, "train_subset", None)) if train else None
    return train_set, test_set


def _train_config(args, world_size: int = 1):
    from .training.config import TrainConfig
    if getattr(args, "data", None) is None:
        args.data = build_config(args.model).dataset or "fmnist"
    args.dataset = args.data
    if getattr(args, "finetune_from", None) and args.timesteps is None and not getattr(args, "recipe", None):
        from .training.checkpoint import load_checkpoint
        from .training.train import resumed_checkpoint
        run_checkpoint = resumed_checkpoint(args.out_dir, args.resume)
        if run_checkpoint:                                # the run's own T; its source may be gone
            args.timesteps = load_checkpoint(run_checkpoint)["config"].timesteps
        else:
            source_timesteps = load_checkpoint(args.finetune_from)["config"].timesteps
            args.timesteps = FINETUNE_TIMESTEPS if source_timesteps == 1 else source_timesteps
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if not getattr(args, "recipe", None):
        return TrainConfig(**given)
    from .training.recipe import paper_config
    defaults = TrainConfig()
    explicit = {k: v for k, v in given.items() if v != getattr(defaults, k) and k not in ("model", "batch_size")}
    batch_size = given["batch_size"] if given["batch_size"] != defaults.batch_size else None
    return paper_config(args.recipe, model=given["model"], world_size=world_size, batch_size=batch_size, **explicit)


def _energy(model, data, n_images: int, out_dir: Path | None, precision: str = "float"):
    """App. B energy in both views (``analysis.energy``): the exported graph, run by the reference
    simulator (what runs on Lava: the figure reported), and the paper's convention on the PyTorch
    training graph beside it. A quantized model is counted on its float twin (same weights)."""
    from .analysis import energy_views
    subset = data.subset(n_images)
    batches = [subset.batch(slice(i, i + 250)) for i in range(0, len(subset), 250)]
    views = energy_views(model, batches, precision=precision)
    if out_dir is not None:
        views.save_json(out_dir / "energy.json")
        views.plot(out_dir / "energy.png")
    return views


def cmd_train(args) -> int:
    """Under ``torchrun --nproc_per_node=N`` every process trains its shard; rank 0 alone reports."""
    from .training.distributed import session
    with session(args.device) as dist:
        return _train_and_report(args, dist)


def _train_and_report(args, dist) -> int:
    from .training.checkpoint import load_model
    from .training.train import model_overrides, read_metrics, train
    cfg = _train_config(args, dist.world_size)
    teacher_file = (cfg.teacher.split(":", 2)[2] if cfg.teacher.startswith("timm:") and cfg.teacher.count(":") == 2
                    else None if cfg.teacher.startswith("timm:") else cfg.teacher) if cfg.teacher else None
    if cfg.init_from and cfg.finetune_from:
        raise ValueError("--init-from and --finetune-from both give the starting weights: name one")
    _refuse_overwriting([p for p in (cfg.finetune_from, cfg.init_from, teacher_file) if p],
                        [Path(cfg.out_dir) / name for name in ("checkpoint.pt", "best.pt")])
    model_cfg = build_config(cfg.model, **model_overrides(cfg))
    train_set, test_set = _load_sets(args, model_cfg)
    result = train(cfg, train_set, test_set)
    if not dist.is_main:
        return 0
    out = Path(cfg.out_dir)
    model, _ = load_model(out / "checkpoint.pt")
    report = _energy(model, test_set, args.energy_images, out)
    summary = {"model": cfg.model, "data": args.data, "params": result["params"], "timesteps": model.timesteps,
               "epochs": result["epoch"], "test_acc": result["test_acc"],
               "train_seconds": sum(r["train_seconds"] for r in read_metrics(out / "metrics.csv")),
               "wall_seconds": result["elapsed_seconds"],
               "mean_spike_rate": report.mean_spike_rate, "energy_mj": report.total_mj,
               "energy_mj_paper": report.paper.total_mj}
    from .fileio import atomic_write
    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    print(report.table())
    print(json.dumps(summary, indent=2))
    print(f"run directory: {out} (checkpoint.pt, metrics.csv, curves.png, energy.png, summary.json)")
    return 0


def cmd_evaluate(args) -> int:
    from .training.checkpoint import load_model
    from .training.train import evaluate
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    if args.events:
        from .recordings import pytorch_recordings
        result = pytorch_recordings(model, args.events, sensor_size=args.sensor, labels=args.labels,
                                    name=str(args.checkpoint))
        return _report_recordings(result, args.out)
    test_set = _load_sets(args, model.cfg, train=False)[1].subset(args.test_subset)
    loss, acc = evaluate(model, test_set)
    print(json.dumps({"checkpoint": str(args.checkpoint), "model": model.cfg.name, "timesteps": model.timesteps,
                      "images": len(test_set), "test_loss": loss, "test_acc": acc}, indent=2))
    return 0


def cmd_energy(args) -> int:
    from .training.checkpoint import load_model
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    test_set = _load_sets(args, model.cfg, train=False)[1]
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    views = _energy(model, test_set, args.images, out, args.precision)
    print(views.paper.table() if args.view == "paper" else views.table())
    return 0


def _refuse_overwriting(inputs, outputs) -> None:
    """An output must never replace an input (``export ck.pt --out ck.pt`` used to destroy the checkpoint)."""
    sources = {Path(p).resolve(): p for p in inputs}
    for out in outputs:
        if out is not None and Path(out).resolve() in sources:
            raise ValueError(f"output {out} is the input {sources[Path(out).resolve()]}: choose another file name")


def cmd_export(args) -> int:
    from .training.checkpoint import load_model
    _refuse_overwriting([args.checkpoint], [args.out, args.nir])
    model, _ = load_model(args.checkpoint, **({"timesteps": args.timesteps} if args.timesteps else {}))
    if args.nir:                                   # first: a model NIR cannot express writes nothing
        print(f"wrote {model.eval().export_nir(args.nir)}: NIR graph (time unit: one timestep)")
    if args.netx:
        import h5py
        path = model.eval().export_hdf5(args.out, format="netx")
        with h5py.File(path, "r") as f:
            a = f.attrs
            print(f"wrote {path}: netx schema, T={a['timesteps']}, latency {a['latency']} steps; load with "
                  f"hdf5.Network(net_config={str(path)!r}, input_message_bits={a['input_message_bits']}, "
                  f"reset_interval={a['reset_interval']}, reset_offset={a['reset_offset']})")
        return 0
    path = model.eval().export_hdf5(args.out, integers_only=args.integers_only)
    from .graph import read_graph
    graph = read_graph(path)
    print(f"wrote {path}: format v2{' (integers only)' if args.integers_only else ''}, {len(graph.nodes)} nodes, "
          f"T={graph.timesteps}, latency {graph.latency} steps")
    return 0


def _report_recordings(result, out) -> int:
    if out:
        result.save(out)
    print(result.table(), file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_run_lava(args) -> int:
    if args.events:
        from .recordings import run_recordings
        result = run_recordings(args.model, args.events, sensor_size=args.sensor, tag=args.tag,
                                granularity=args.granularity, steps=args.steps, labels=args.labels)
        return _report_recordings(result, args.out)
    from .lava.evaluate import evaluate_on_lava
    result = evaluate_on_lava(args.model, data=args.data, root=args.data_dir, tag=args.tag,
                              granularity=args.granularity, samples=args.images, batch=args.batch, steps=args.steps)
    if args.out:
        result.save(args.out)
    print(result.table(), file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_import_official(args) -> int:
    from . import count_parameters
    from .interop.official import load_official
    from .training.checkpoint import save_checkpoint
    _refuse_overwriting([args.checkpoint], [args.out])
    model = load_official(args.checkpoint, args.model, timesteps=args.timesteps)
    save_checkpoint(args.out, model, imported_from=str(args.checkpoint))
    print(json.dumps({"checkpoint": str(args.out), "model": model.cfg.name, "params": count_parameters(model),
                      "num_classes": model.cfg.num_classes, "kd_head": model.cfg.kd_head,
                      "timesteps": model.timesteps}, indent=2))
    return 0


def cmd_loihi_report(args) -> int:
    from .graph import read_graph
    graph = read_graph(args.model)
    if args.lowered:
        from .analysis.stock_fit import stock_report
        report = stock_report(graph)
    else:
        from .analysis.loihi import loihi_report
        report = loihi_report(graph, **({"input_abs_max": args.input_abs_max} if args.input_abs_max is not None else {}))
    print(report.table())
    if args.out:
        print("wrote " + ", ".join(str(p) for p in report.save(args.out)))
    return 0


def cmd_models(args) -> int:
    from . import create_model, count_parameters
    for name in list_models():
        print(f"{name:36s} {count_parameters(create_model(name)):>12,d} params")
    print("ablations: " + ", ".join(sorted(ABLATIONS)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lava-spikeformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on Fashion-MNIST or event data, then evaluate and report energy")
    _train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="top-1 accuracy of a checkpoint on its test set, or its decisions on "
                                        "event recordings (--events)")
    p.add_argument("checkpoint")
    p.add_argument("--timesteps", type=positive_int, default=None)
    _add_events_args(p, "PyTorch's decision after each timestep")
    p.add_argument("--out", type=output_folder, default=None,
                   help="with --events: folder for recordings.json and recording_decisions.png")
    _add_data_args(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("energy", help="per-layer firing rates and App. B energy of a checkpoint: of the exported "
                                      "graph that runs on Lava, with the paper's training-graph figure beside it")
    p.add_argument("checkpoint")
    p.add_argument("--images", type=positive_int, default=500)
    p.add_argument("--timesteps", type=positive_int, default=None)
    p.add_argument("--view", choices=("deployed", "paper"), default="deployed",
                   help="per-layer table to print: deployed (default; the exported graph, each RepConv one 3x3 conv "
                        "on spikes; followed by both views per block) or paper (the training graph, App. B as the "
                        "paper applies it). energy.json holds both")
    p.add_argument("--precision", choices=("float", "fixed"), default="float",
                   help="the deployed view's spike rates from the float64 reference simulator (default) or the "
                        "integer network (what Lava fixed_pt runs)")
    p.add_argument("--out", type=output_folder, default=None, help="folder for energy.json and energy.png")
    _add_data_args(p)
    p.set_defaults(func=cmd_energy)
    p = sub.add_parser("export", help="fold BatchNorm/RepConv and write the HDF5 export of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", type=output_file, required=True, help="the .h5 file to write")
    p.add_argument("--timesteps", type=positive_int, default=None)
    p.add_argument("--integers-only", action="store_true",
                   help="store only the integers a chip holds (weight/bias mantissas and exponents, neuron integers): "
                        "a fixed-point-only file, ~7x smaller; runs with --tag fixed_pt")
    p.add_argument("--netx", action="store_true",
                   help="write lava-dl netx's own schema (plain netx.hdf5.Network loads it); sequential models only")
    p.add_argument("--nir", type=output_file, default=None, metavar="FILE",
                   help="also write the network as a NIR graph (snnTorch, Norse, Sinabs, Rockpool, ...); "
                        "models without SDSA only, e.g. the fully_cnn ablation")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("run-lava", help="run an export on Lava (CPU backend): accuracy, steps/s, plots")
    p.add_argument("model", help="an .h5 export")
    p.add_argument("--tag", choices=("floating_pt", "fixed_pt"), default="floating_pt")
    p.add_argument("--granularity", choices=("fine", "fused", "loihi"), default="fused",
                   help="fused/fine: this project's processes, the batch in lock step; loihi: lava-nc's stock "
                        "processes only (fixed_pt), samples streamed one after another")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="Lava steps per batch (default and minimum: T + latency; loihi: batch * T + latency)")
    p.add_argument("--images", type=positive_int, default=64)
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--out", type=output_folder, default=None, help="folder for lava_eval.json, lava_decisions.png and (fine "
                                               "granularity) lava_rates.png, lava_raster.png; with --events: "
                                               "recordings.json and recording_decisions.png")
    _add_events_args(p, "stream them into Lava and print the decision per Lava step next to the float (or, "
                        "fixed_pt, integer) reference's on the same frames")
    _add_data_args(p)
    p.set_defaults(func=cmd_run_lava)
    p = sub.add_parser("loihi-report", help="Loihi 2 fit of an export: neurons, synapses, bits, cores, limits broken")
    p.add_argument("model", help="an .h5 export")
    p.add_argument("--input-abs-max", type=float, default=None,
                   help="largest |input value| for the worst-case bit widths (default: from the export's input "
                        "contract, e.g. 2.02 for normalized Fashion-MNIST)")
    p.add_argument("--lowered", action="store_true",
                   help="count the deployable network: lava-nc stock processes (granularity 'loihi') per node and "
                        "process, SDSA lowering broken out (builds the lowering: seconds, GBs for small28)")
    p.add_argument("--out", default=None, help="folder for loihi.txt, loihi.json and loihi.png (--lowered: "
                                               "loihi_stock.txt, loihi_stock.json)")
    p.set_defaults(func=cmd_loihi_report)
    p = sub.add_parser("import-official", help="convert a reference (BICLab) checkpoint into ours")
    p.add_argument("checkpoint", help="a .pth of Spike-Driven-Transformer-V2 (state dict, or under 'model')")
    p.add_argument("--model", required=True, help="meta_spikeformer_c32, _c48 or _c64")
    p.add_argument("--out", type=output_file, required=True,
                   help="the checkpoint to write (export / evaluate / energy take it)")
    p.add_argument("--timesteps", type=positive_int, default=1)
    p.set_defaults(func=cmd_import_official)
    p = sub.add_parser("models", help="registered models with parameter counts")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    # CheckpointError, ConvertError and EventDataError are ValueErrors; OSError: FileExistsError,
    # PermissionError, IsADirectoryError, ... of a file the command reads or writes
    except (DataError, ExportError, GraphError, ValueError, OSError) as exc:
        from .fileio import torch_load_message
        print(f"error: {torch_load_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
