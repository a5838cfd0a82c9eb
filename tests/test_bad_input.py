"""Bad and hostile input at every boundary (issue 16): one clear error each, naming the file, field or
argument; no hang, no silent wrong answer, nothing overwritten, no code run. Tiny models, tmp files:
the whole module runs in well under a minute. Grow it with every user-facing path."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from event_data import frame_transform
from event_data.events import EventDataError, make_events, require_events
from lava_spikeformer import cli, create_model
from lava_spikeformer.config import StageConfig
from lava_spikeformer.data.fashion_mnist import ImageSet
from lava_spikeformer.graph import ExportError, read_graph
from lava_spikeformer.interop.official import ConvertError, load_official
from lava_spikeformer.lava.processes import EventSource
from lava_spikeformer.lava.run import recorders, run, running, stream_events   # at import: Lava sets 'fork'
from lava_spikeformer.training import train as train_module
from lava_spikeformer.training.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from lava_spikeformer.training.config import TrainConfig
from lava_spikeformer.training.recipe import load_teacher

from .conftest import edited_export

CONV = (StageConfig("conv", 4, 0, stride=2), StageConfig("conv", 8, 0, stride=2))
ATTN = (StageConfig("conv", 4, 0, stride=2), StageConfig("transformer", 8, 1, stride=1))
TORCH_HINT = ("will likely succeed", "weights_only` set to `False`")


def tiny(stages=CONV, **overrides):
    return create_model("meta_spikeformer_small28", stages=stages, **overrides)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, tiny(), epoch=1)
    return path


def cli_error(capsys, argv):
    """Exit code and stderr of the CLI; argparse's SystemExit counts as its code."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------- CLI arguments
BAD_ARGUMENTS = [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-3"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--warmup-epochs", "nan"], "--warmup-epochs"),
    (["train", "--weight-decay", "inf"], "--weight-decay"),
    (["train", "--distill-alpha", "nan"], "--distill-alpha"),
    (["train", "--distill-alpha", "1.5"], "--distill-alpha"),
    (["train", "--timesteps", "0"], "--timesteps"),
    (["train", "--workers", "-1"], "--workers"),
    (["evaluate", "ck.pt", "--threads", "0"], "--threads"),
    (["evaluate", "ck.pt", "--threads", "-1"], "--threads"),
    (["evaluate", "ck.pt", "--timesteps", "0"], "--timesteps"),
    (["evaluate", "ck.pt", "--test-subset", "0"], "--test-subset"),
    (["energy", "ck.pt", "--images", "-9998"], "--images"),
    (["energy", "ck.pt", "--images", "0"], "--images"),
    (["run-lava", "m.h5", "--images", "0"], "--images"),
    (["run-lava", "m.h5", "--batch", "0"], "--batch"),
    (["run-lava", "m.h5", "--steps", "0"], "--steps"),
    (["export", "ck.pt", "--out", "x.h5", "--timesteps", "0"], "--timesteps"),
    (["import-official", "r.pth", "--model", "meta_spikeformer_c32", "--out", "o.pt", "--timesteps", "0"],
     "--timesteps"),
]


@pytest.mark.parametrize("argv, argument", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_argument_values_are_refused_before_any_work(capsys, argv, argument):
    code, err = cli_error(capsys, argv)
    assert code == 2 and f"argument {argument}" in err and "Traceback" not in err


@pytest.mark.parametrize("command, kind", [
    (["export", "{ck}", "--out", "{dir}"], "is a folder, expected a file"),
    (["export", "{ck}", "--out", "{file}/x.h5"], "is a file, not a folder"),
    (["export", "{ck}", "--out", "m.h5", "--nir", "{dir}"], "is a folder, expected a file"),
    (["import-official", "{ck}", "--model", "meta_spikeformer_c32", "--out", "{dir}"], "is a folder"),
    (["train", "--out", "{file}"], "is an existing file, expected a folder"),
    (["energy", "{ck}", "--out", "{file}"], "is an existing file, expected a folder"),
    (["run-lava", "m.h5", "--out", "{file}"], "is an existing file, expected a folder"),
])
def test_output_paths_of_the_wrong_kind_are_refused_before_the_work(tmp_path, capsys, checkpoint, command, kind):
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain").write_text("keep me")
    argv = [a.format(ck=checkpoint, dir=tmp_path / "folder", file=tmp_path / "plain") for a in command]
    code, err = cli_error(capsys, argv)
    assert code == 2 and kind in err and "Traceback" not in err
    assert (tmp_path / "plain").read_text() == "keep me" and not any((tmp_path / "folder").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder_is_refused_before_the_work(tmp_path, capsys, checkpoint):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = cli_error(capsys, ["export", checkpoint, "--out", locked / "m.h5"])
    finally:
        locked.chmod(0o700)
    assert code == 2 and "is not writable" in err


@pytest.mark.parametrize("error", [FileExistsError(17, "File exists", "o.h5"), PermissionError(13, "denied", "o"),
                                   IsADirectoryError(21, "Is a directory", "o")])
def test_os_errors_during_a_command_are_one_error_line(monkeypatch, capsys, error):
    def fail(args):
        raise error
    monkeypatch.setattr(cli, "cmd_models", fail)
    code, err = cli_error(capsys, ["models"])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_an_output_never_replaces_an_input(tmp_path, capsys, checkpoint):
    before = checkpoint.read_bytes()
    code, err = cli_error(capsys, ["export", checkpoint, "--out", checkpoint])
    assert code == 2 and "is the input" in err
    code, err = cli_error(capsys, ["import-official", checkpoint, "--model", "meta_spikeformer_c32", "--out", checkpoint])
    assert code == 2 and "is the input" in err
    run = tmp_path / "run"
    run.mkdir()
    source = run / "checkpoint.pt"
    source.write_bytes(before)
    code, err = cli_error(capsys, ["train", "--finetune-from", source, "--out", run, "--epochs", "1"])
    assert code == 2 and "is the input" in err
    assert checkpoint.read_bytes() == before == source.read_bytes()


@pytest.mark.parametrize("source_timesteps, expected", [(1, 4), (2, 2)])
def test_finetune_without_timesteps_runs_at_the_documented_t(tmp_path, capsys, source_timesteps, expected):
    """Help: 'with --finetune-from a T=1 checkpoint: 4' (it trained at T=1 before)."""
    source = tmp_path / "t1.pt"
    save_checkpoint(source, tiny(timesteps=source_timesteps))
    args = cli.build_parser().parse_args(["train", "--finetune-from", str(source), "--out", str(tmp_path / "run")])
    assert cli._train_config(args).timesteps == expected
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--help"])
    assert "T=1 checkpoint: 4" in " ".join(capsys.readouterr().out.split())


def test_resumed_finetune_takes_its_t_from_its_own_checkpoint(tmp_path):
    """--resume of a --finetune-from run whose source was moved: T comes from the run's checkpoint."""
    source, run = tmp_path / "t1.pt", tmp_path / "run"
    save_checkpoint(source, tiny(timesteps=1))
    args = ["train", "--finetune-from", str(source), "--out", str(run)]
    save_checkpoint(run / "checkpoint.pt", tiny(timesteps=cli._train_config(cli.build_parser().parse_args(args)).timesteps))
    source.unlink()
    assert cli._train_config(cli.build_parser().parse_args(args + ["--resume"])).timesteps == 4
    with pytest.raises(CheckpointError, match="t1.pt"):
        cli._train_config(cli.build_parser().parse_args(args))


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, capsys, value):
    model = tiny()
    with torch.no_grad():
        model.head.fc.weight[0, 0] = value
    path = tmp_path / "nan.pt"
    save_checkpoint(path, model)
    with pytest.raises(CheckpointError, match=r"nan.pt: tensor 'head.fc.weight' .*NaN/inf"):
        load_model(path)
    code, err = cli_error(capsys, ["evaluate", path])
    assert code == 2 and "head.fc.weight" in err


def test_a_flipped_bit_in_a_weight_is_refused_as_damage(tmp_path, capsys):
    """torch's zip reader ignores its CRCs, so a flipped bit in a weight used to load silently; the
    weights' SHA-256 saved beside them catches it. Checkpoints without it (older ones) still load."""
    model = tiny()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    data = bytearray(path.read_bytes())
    at = bytes(data).find(model.head.fc.weight.detach().numpy().tobytes())
    assert at > 0                                                  # stored raw, as torch writes tensors
    data[at] ^= 0x01                                               # the lowest mantissa bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"m.pt is damaged: its weights no longer match the SHA-256"):
        load_model(path)
    code, err = cli_error(capsys, ["evaluate", path])
    assert code == 2 and "is damaged" in err
    payload = torch.load(path, weights_only=True)
    del payload["model_sha256"]
    torch.save(payload, path)
    assert load_model(path)[0].head.fc.weight[0, 0] != model.head.fc.weight[0, 0]   # unsealed: loads as stored


def tiny_data(n=8):
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10)


@pytest.fixture
def tiny_training(monkeypatch):
    """``train`` builds the tiny model instead of the registered one."""
    monkeypatch.setattr(train_module, "create_model", lambda name, **overrides: tiny(**overrides))
    data = tiny_data()
    return lambda **fields: train_module.train(
        TrainConfig(**{"batch_size": 8, "epochs": 1, "device": "cpu", **fields}), data, data, progress=False)


def test_resume_without_optimizer_state_is_a_clear_error(tmp_path, tiny_training):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", tiny())                     # weights only, like best.pt
    with pytest.raises(CheckpointError, match=r"cannot be resumed: .*'optimizer'"):
        tiny_training(out_dir=str(run), resume=True, epochs=2)


def test_nothing_to_train_is_a_clear_error_and_leaves_the_run_alone(tmp_path, capsys, tiny_training):
    run = tmp_path / "run"
    tiny_training(out_dir=str(run), epochs=1)
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(CheckpointError, match=r"is at epoch 1: epochs=1 leaves nothing to train"):
        tiny_training(out_dir=str(run), epochs=1, resume=True, lr=0.5)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        tiny_training(out_dir=str(run), epochs=0)
    code, err = cli_error(capsys, ["train", "--epochs", "0", "--out", run])
    assert code == 2 and "--epochs" in err and "does not exist" not in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


def test_a_killed_run_keeps_its_config_in_step_with_its_checkpoint(tmp_path, monkeypatch, tiny_training):
    run = tmp_path / "run"
    tiny_training(out_dir=str(run), epochs=1, lr=1e-3)

    def killed(self, x, y):
        raise KeyboardInterrupt                                       # SIGINT/SIGKILL during epoch 2
    monkeypatch.setattr(train_module.TrainStep, "__call__", killed)
    with pytest.raises(KeyboardInterrupt):
        tiny_training(out_dir=str(run), epochs=2, lr=5e-4, resume=True)
    described = json.loads((run / "train_config.json").read_text())
    assert described["lr"] == 1e-3 and described == load_checkpoint(run / "checkpoint.pt")["train_config"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_energy_json_is_replaced_atomically(tmp_path, monkeypatch):
    from lava_spikeformer.analysis import energy_report
    report = energy_report(tiny().eval(), [torch.randn(2, 1, 28, 28)])
    path = tmp_path / "energy.json"
    path.write_text('{"old": true}')
    monkeypatch.setattr(type(report), "to_dict", lambda self: {"broken": object()})   # fails mid-write
    with pytest.raises(TypeError):
        report.save_json(path)
    assert json.loads(path.read_text()) == {"old": True}


# ---------------------------------------------------------------------------- crafted pickles
class _Payload:
    """Unpickling this creates ``marker``: code execution, made visible."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def crafted(tmp_path):
    """(path of a crafted pickle, its marker file); the payload is shown to work when unpickled."""
    probe = tmp_path / "probe_marker"
    torch.save({"model": {"w": torch.zeros(1)}, "x": _Payload(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert probe.exists()
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.pt"
    torch.save({"format": "lava-spikeformer-checkpoint", "state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)},
               path)
    return path, marker


def _read_resume(path, tmp_path, tiny_training):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(Path(path).read_bytes())
    tiny_training(out_dir=str(run), resume=True, epochs=2)


READERS = {
    "checkpoint": lambda path, tmp, t: load_checkpoint(path),
    "model": lambda path, tmp, t: load_model(path),
    "teacher checkpoint": lambda path, tmp, t: load_teacher(str(path), num_classes=10, device=torch.device("cpu")),
    "teacher timm file": lambda path, tmp, t: load_teacher(f"timm:resnet10t:{path}", num_classes=10,
                                                           device=torch.device("cpu")),
    "official import": lambda path, tmp, t: load_official(path, "meta_spikeformer_c32"),
    "resume": _read_resume,
    "finetune": lambda path, tmp, t: t(out_dir=str(tmp / "ft"), finetune_from=str(path)),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_a_crafted_pickle_never_runs(tmp_path, crafted, tiny_training, reader):
    path, marker = crafted
    with pytest.raises((CheckpointError, ConvertError, ValueError)) as info:
        READERS[reader](path, tmp_path, tiny_training)
    assert not marker.exists()
    named = "checkpoint.pt" if reader == "resume" else path.name            # resume reads OUT/checkpoint.pt
    assert named in str(info.value) and not any(hint in str(info.value) for hint in TORCH_HINT)


@pytest.mark.parametrize("command", [["evaluate", "{p}"], ["export", "{p}", "--out", "{o}"],
                                     ["import-official", "{p}", "--model", "meta_spikeformer_c32", "--out", "{o}"]])
def test_a_crafted_pickle_on_the_command_line(tmp_path, capsys, crafted, command):
    path, marker = crafted
    code, err = cli_error(capsys, [a.format(p=path, o=tmp_path / "out.x") for a in command])
    assert code == 2 and not marker.exists() and not any(hint in err for hint in TORCH_HINT)


def test_timm_teacher_weights_still_load_from_a_safe_file(tmp_path):
    import timm
    reference = timm.create_model("resnet10t", num_classes=10)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "w.pth")
    teacher = load_teacher(f"timm:resnet10t:{tmp_path / 'w.pth'}", num_classes=10, device=torch.device("cpu"))
    ours, theirs = teacher.state_dict(), reference.state_dict()
    kept = [k for k in theirs if not k.startswith("fc.")]       # timm re-initializes a 1000-class head for 10
    assert len(kept) > 10 and all(torch.equal(ours[k], theirs[k]) for k in kept)


# ---------------------------------------------------------------------------- images / frames
@pytest.mark.parametrize("x, message", [
    (torch.full((2, 1, 28, 28), float("nan")), "NaN or inf"),
    (torch.full((2, 1, 28, 28), float("inf")), "NaN or inf"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "got torch.uint8: normalize them first"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.int64), "got torch.int64"),
    (torch.zeros(2, 1, 8, 8), "must be 28x28 .* got 8x8"),
    (torch.zeros(2, 1, 28, 32), "must be 28x28 .* got 28x32"),
])
def test_model_refuses_bad_images(x, message):
    with pytest.raises(ValueError, match=message):
        tiny().eval()(x)


def test_event_model_refuses_non_finite_frames():
    model = create_model("meta_spikeformer_hardvs_small", stages=CONV, img_size=8, timesteps=2).eval()
    frames = torch.zeros(2, 1, 2, 8, 8)
    frames[1, 0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        model(frames)


# ---------------------------------------------------------------------------- event arrays
def _events(t=(0, 10, 20), p=(0, 1, 1), t_dtype=np.int64, p_dtype=np.int8):
    events = np.zeros(3, dtype=[("x", np.int16), ("y", np.int16), ("t", t_dtype), ("p", p_dtype)])
    events["x"], events["y"], events["t"], events["p"] = (1, 2, 3), (1, 2, 3), t, p
    return events


BAD_EVENTS = {
    "NaN timestamp": (_events(t=(0, np.nan, 20), t_dtype=np.float64), r"field 't' has dtype float64 .*NaN or inf"),
    "inf timestamp": (_events(t=(0, np.inf, 20), t_dtype=np.float64), r"field 't' .*NaN or inf"),
    "float timestamps": (_events(t=(0.0, 10.5, 20.0), t_dtype=np.float64), r"field 't' .*expected integer microseconds"),
    "polarity -1": (_events(p=(0, -1, 1)), r"field 'p' holds polarity -1, expected 0..1"),
    "polarity 2": (_events(p=(0, 2, 1)), r"field 'p' holds polarity 2, expected 0..1"),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS))
def test_bad_event_arrays_are_refused_in_one_check(case):
    events, message = BAD_EVENTS[case]
    with pytest.raises(EventDataError, match=message):
        require_events(events, polarities=2)
    with pytest.raises(EventDataError, match=message):
        frame_transform((8, 8, 2), n_time_bins=2)(events)


def test_make_events_refuses_float_timestamps():
    with pytest.raises(EventDataError, match="column 't' has dtype float64"):
        make_events([1, 2], [1, 2], [0.0, np.nan], [True, False])


# ---------------------------------------------------------------------------- exports
@pytest.fixture(scope="module")
def export(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "m.h5"
    tiny(ATTN, num_heads=2).eval().export_hdf5(path)
    return path


def _layer(f, op):
    return next(f["layer"][i] for i in f["layer"] if f["layer"][i]["type"][()].decode() == op)


def _set(group, key, value):
    del group[key]
    group[key] = value


TAMPERED = {
    "string weights": (lambda f: _set(_layer(f, "conv"), "weight", np.array(["a"], dtype=h5py.string_dtype())),
                       r"layer/\d+/weight: must hold numbers"),
    "non-JSON model_config": (lambda f: f.attrs.__setitem__("model_config", "{not json"),
                              "'model_config' is not valid JSON"),
    "model_config not an object": (lambda f: f.attrs.__setitem__("model_config", "[1, 2]"),
                                   "'model_config' must be a JSON object"),
    "conv groups=0": (lambda f: _set(_layer(f, "conv"), "groups", 0), "groups=0"),
    "conv stride=0": (lambda f: _set(_layer(f, "conv"), "stride", 0), "stride must be >= 1"),
    "conv groups not a number": (lambda f: _set(_layer(f, "conv"), "groups", "x"), r"layer/\d+/groups: must be one integer"),
    "timesteps 10**12": (lambda f: f.attrs.__setitem__("timesteps", 10 ** 12), r"timesteps must be an int in 1..1000000"),
    "timesteps not a number": (lambda f: f.attrs.__setitem__("timesteps", "abc"), "'timesteps': must be one integer"),
    "SDSA variant 9": (lambda f: _set(_layer(f, "sdsa"), "variant", 9), "variant must be 1, 2, 3 or 4"),
    "SDSA heads 0": (lambda f: _set(_layer(f, "sdsa"), "heads", 0), "heads=0 must be >= 1"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_defective_exports_raise_one_export_error_naming_the_field(tmp_path, export, case):
    tamper, message = TAMPERED[case]
    path = tmp_path / "bad.h5"
    path.write_bytes(export.read_bytes())
    with edited_export(path) as f:
        tamper(f)
    with pytest.raises(ExportError, match=message) as info:
        read_graph(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------- Lava runs
@pytest.fixture
def deadline():
    """A hang fails the test (SIGALRM), and the test says how long the failure took to surface."""
    def timeout(signum, frame):
        raise TimeoutError("Lava run hung")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(90)
    t0 = time.perf_counter()
    yield lambda: time.perf_counter() - t0
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def event_graph():
    from lava_spikeformer.nn.fold import to_graph
    model = create_model("meta_spikeformer_hardvs_small", stages=CONV, img_size=8, timesteps=2)
    return to_graph(model.double().eval())


@pytest.mark.parametrize("runner", ["lava", "lava fixed_pt", "simulate fixed"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_frames_are_refused_on_lava_and_in_the_simulator(event_graph, runner, value):
    from lava_spikeformer.graph import simulate
    frames = np.zeros((2, 1, 2, 8, 8))
    frames[0, 0, 0, 0, 0] = value
    with pytest.raises(ValueError, match="input holds NaN or inf"):
        if runner == "simulate fixed":
            simulate(event_graph, frames, precision="fixed")
        else:
            run(event_graph, frames, tag="fixed_pt" if "fixed" in runner else "floating_pt")


@pytest.mark.parametrize("polarity", [2, -1])
def test_lava_streaming_refuses_bad_polarity_before_running(event_graph, deadline, polarity):
    with pytest.raises(EventDataError, match=f"streams\\[0\\]: field 'p' holds polarity {polarity}"):
        stream_events(event_graph, [_events(p=(0, polarity, 1))], sensor_size=(8, 8, 2))
    assert deadline() < 30


def _boom(events):
    raise RuntimeError("transform failed")


@pytest.mark.parametrize("where", ["step", "build"])
def test_a_failing_event_source_raises_within_seconds(deadline, where):
    """'step': np.add.at fails on an event outside the sensor (no transform drops it) while the run
    steps; 'build': the transform raises while Lava builds the process (it used to hang in stop())."""
    events = _events()
    events["x"][1] = 100
    source = EventSource(streams=[events], sensor_size=(8, 8, 2), n_time_bins=2,
                         transform=None if where == "step" else _boom)
    with pytest.raises(Exception, match="index 100 is out of bounds" if where == "step" else "transform failed"):
        with recorders([("s", source.s_out)], 3):
            with running(source, 3):
                pass
    assert deadline() < 30


def _failing_lif(*args, **kwargs):
    raise FloatingPointError("LIF failed")


def test_a_failing_network_process_raises_and_threads_stay_flat(event_graph, deadline, monkeypatch):
    """Measured on Lava 0.10: every failing run used to leave the runtime's two channel threads behind."""
    from lava_spikeformer.graph import kernels
    monkeypatch.setattr(kernels, "lif_step", _failing_lif)        # the forked Lava workers inherit it
    frames = np.ones((2, 1, 2, 8, 8))
    with pytest.raises(RuntimeError, match="LIF failed"):
        run(event_graph, frames, granularity="fine")
    threads = threading.active_count()
    for _ in range(10):
        with pytest.raises(RuntimeError, match="LIF failed"):
            run(event_graph, frames, granularity="fine")
    assert threading.active_count() == threads
    assert deadline() < 60


def test_init_from_a_corrupt_file_is_one_error_naming_it(tmp_path, capsys):
    bad = tmp_path / "image_model.pt"
    bad.write_bytes(b"not a checkpoint")
    code, err = cli_error(capsys, ["train", "--init-from", bad, "--out", tmp_path / "run", "--epochs", "1"])
    assert code == 2 and f"checkpoint {bad} is corrupt or not a torch file" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
