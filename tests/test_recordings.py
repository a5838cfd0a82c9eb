"""Event-camera recordings from files (issue 15, item 3): the package's writers, independent readers
(the ``aedat`` decoder, tonic.io), the command line on the shipped event model -- Lava's decision per
step equals PyTorch's on the same frames -- and one clear error naming the file for each defect."""
import json
import struct

import numpy as np
import pytest
import torch

from event_data import FashionMNISTDVS, HARDVS, frame_transform, make_events
from event_data.events import EventDataError
from event_data.fixtures import T0_US
from event_data.recordings import (AEDAT4_MAGIC, FORMATS, aedat4_streams, read_recording, write_aedat4,
                                   write_recording)
from lava_spikeformer import cli
from lava_spikeformer.recordings import recording_frames, running_decisions
from lava_spikeformer.training.checkpoint import load_model

from .conftest import EVENT_MODEL

EXPORT = EVENT_MODEL.with_suffix(".h5")          # the shipped export of the same model (T=8, 32x32, 34x34 sensor)
FIELDS = ("x", "y", "t", "p")


def davis_events(n=20_000, seed=0):
    """A DAVIS346 recording: an edge sweeping left to right, ON in front, OFF behind, absolute µs."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 1_000_000, n))
    leading = rng.integers(0, 2, n).astype(bool)
    x = np.clip(40 + 260 * t / 1e6 + np.where(leading, 12, -12) + rng.normal(0, 3, n), 0, 345).round()
    return make_events(x.astype(np.int64), rng.integers(30, 230, n), T0_US + t, leading)


@pytest.fixture(scope="module")
def streams():
    dataset = FashionMNISTDVS("test")
    return [dataset[i][0] for i in range(3)], [int(dataset.targets[i]) for i in range(3)]


def cli_run(capsys, argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------------- formats
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_round_trips_exactly(tmp_path, streams, suffix):
    events = streams[0][0]
    path = write_recording(tmp_path / f"r{suffix}", events, (34, 34))
    recording = read_recording(path, None if suffix == ".aedat4" else (34, 34))
    assert recording.sensor_size == (34, 34, 2) and recording.events.dtype == events.dtype
    for field in FIELDS:
        np.testing.assert_array_equal(recording.events[field], events[field])


def test_aedat4_written_here_is_read_by_the_aedat_decoder_and_tonic(tmp_path):
    """The writer follows the AEDAT 4.0 layout: iniVation's decoder (via tonic.io) reads it back."""
    import aedat
    import tonic.io
    events = davis_events()
    path = write_aedat4(tmp_path / "davis.aedat4", events, (346, 260), packet_events=3000)
    assert path.read_bytes().startswith(AEDAT4_MAGIC)
    assert aedat.Decoder(str(path)).id_to_stream() == {0: {"type": "events", "width": 346, "height": 260}}
    assert aedat4_streams(path) == {0: {"type": "EVTS", "width": 346, "height": 260}}
    packets = [p for p in aedat.Decoder(str(path))]
    assert [len(p["events"]) for p in packets] == [3000] * 6 + [2000]
    decoded = tonic.io.read_aedat4(str(path))
    np.testing.assert_array_equal(decoded["t"], events["t"])
    np.testing.assert_array_equal(decoded["x"], events["x"])
    np.testing.assert_array_equal(decoded["on"], events["p"])
    recording = read_recording(path)
    assert recording.sensor_size == (346, 260, 2) and recording.duration_us == events["t"].ptp()


def test_nmnist_bin_is_read_by_tonic_and_matches_the_documented_bytes(tmp_path):
    events = make_events([0, 33, 5], [0, 33, 17], [0, 300_000, 2 ** 23 - 1], [True, False, True])
    path = write_recording(tmp_path / "00002.bin", events, (34, 34))
    assert path.read_bytes() == bytes([0, 0, 0x80, 0, 0,  33, 33, 0x04, 0x93, 0xE0,  5, 17, 0xFF, 0xFF, 0xFF])
    from tonic.io import read_mnist_file
    np.testing.assert_array_equal(read_mnist_file(str(path), dtype=events.dtype), events)


def test_model_frames_follow_the_input_contract(streams, tmp_path):
    """A 34x34 recording into the Fashion-MNIST-DVS model is framed as its training data (crop to 32);
    a DAVIS346 recording is downsampled by 32/260 and cropped, as HAR-DVS is."""
    spec = load_model(EVENT_MODEL)[0].cfg.input_spec
    recording = read_recording(write_recording(tmp_path / "r.npy", streams[0][0], (34, 34)), (34, 34))
    expected = frame_transform((34, 34, 2), n_time_bins=8, size=(32, 32))(streams[0][0])
    np.testing.assert_array_equal(recording_frames(spec, recording), expected)
    davis = read_recording(write_recording(tmp_path / "d.aedat4", davis_events(), (346, 260)))
    frames = recording_frames(spec, davis)
    hardvs = frame_transform((346, 260, 2), n_time_bins=8, size=(32, 32), downsample=32 / 260)(davis.events)
    assert frames.shape == (8, 2, 32, 32)
    np.testing.assert_array_equal(frames, hardvs)
    assert frames[:, 1].sum() > 0 and frames[:, 0].sum() > 0


# ---------------------------------------------------------------------------- the command line
def test_run_lava_on_recordings_decides_as_pytorch_at_every_step(tmp_path, capsys, streams):
    """aedat4 (DAVIS346 sweep), N-MNIST .bin, HAR-DVS .npz and .npy through ``run-lava --events``: one
    Lava run per sensor size; each decision equals PyTorch's (float64) on the same frames."""
    events, labels = streams
    files = [write_recording(tmp_path / "a.bin", events[0], (34, 34)),
             write_recording(tmp_path / "b.npy", events[1], (34, 34)),
             write_recording(tmp_path / "c.npz", events[2], (34, 34))]
    davis = write_recording(tmp_path / "d.aedat4", davis_events(), (346, 260))
    code, out, err = cli_run(capsys, ["run-lava", EXPORT, "--events", *files, "--sensor", 34, 34,
                                      "--labels", *labels, "--out", tmp_path / "out"])
    assert code == 0, err
    result = json.loads(out)
    assert result["agree"] is True and result["latency_steps"] == 24 and result["timesteps"] == 8
    assert "Lava decides as the reference at every step: yes" in err
    for entry, path in zip(result["recordings"], files):
        assert entry["file"] == str(path) and entry["lava_steps"] == list(range(24, 32))
    code, out, err = cli_run(capsys, ["run-lava", EXPORT, "--events", davis])
    assert code == 0, err
    davis_result = json.loads(out)
    assert davis_result["recordings"][0]["sensor"] == [346, 260, 2]

    model = load_model(EVENT_MODEL)[0].double().eval()
    spec = model.cfg.input_spec
    for entry, path in zip(result["recordings"] + davis_result["recordings"], files + [davis]):
        recording = read_recording(path, None if path.suffix == ".aedat4" else (34, 34))
        frames = torch.from_numpy(recording_frames(spec, recording))[:, None]
        with torch.no_grad():
            torch_decisions = [int(model(frames[:t + 1]).argmax(1)) for t in range(8)]
        assert entry["decisions"] == entry["reference_decisions"] == torch_decisions
    assert [entry["final"] for entry in result["recordings"]] == labels        # the shipped model gets these right
    assert result["accuracy_per_step"] == [np.mean([e["decisions"][t] == label for e, label in
                                                    zip(result["recordings"], labels)]) for t in range(8)]
    assert result["accuracy_per_step"][-1] == 1.0
    assert (tmp_path / "out" / "recording_decisions.png").stat().st_size > 5000
    assert json.loads((tmp_path / "out" / "recordings.json").read_text())["agree"] is True

    code, out, err = cli_run(capsys, ["evaluate", EVENT_MODEL, "--events", *files, "--sensor", 34, 34])
    assert code == 0, err
    assert [e["decisions"] for e in json.loads(out)["recordings"]] == [e["decisions"] for e in result["recordings"]]


def test_running_decisions_are_the_class_decision_rule():
    logits = np.array([[[0.0, 1.0]], [[3.0, 0.0]], [[0.0, 2.5]]])
    np.testing.assert_array_equal(running_decisions(logits)[:, 0], [1, 0, 1])


# ---------------------------------------------------------------------------- one clear error per defect
def _corrupt_header(path):
    data = bytearray(path.read_bytes())
    data[len(AEDAT4_MAGIC) + 4:len(AEDAT4_MAGIC) + 8] = struct.pack("<I", 0x7FFFFF00)   # root offset far away
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-37])


BAD_FILES = [
    ("missing.aedat4", None, None, "recording not found"),
    ("r.aedat4", lambda p: p.write_bytes(b"#!AER-DAT3.1\r\n# jAER\r\n"), None, "it is #!AER-DAT3.1; only 4.0"),
    ("r.aedat4", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40)), None, "not an AEDAT 4.0 file"),
    ("r.aedat4", _corrupt_header, None, "corrupt AEDAT 4 header"),
    ("r.aedat4", _truncate, None, "truncated or corrupt AEDAT 4 file"),
    ("r.aedat4", None, (34, 34), "the file records a 346x260 sensor, but the sensor size given is 34x34"),
    ("r.bin", lambda p: p.write_bytes(p.read_bytes()[:-2]), (34, 34), "not a multiple of the 5-byte event"),
    ("r.bin", None, None, "do not record the sensor size; give it as W H (--sensor W H (N-MNIST: 34 34))"),
    ("r.npy", None, (20, 20), "events lie outside the 20x20 sensor, e.g. event"),
    ("r.npy", lambda p: np.save(p, np.zeros(3)), (34, 34), "must be a tonic event array"),
    ("r.npy", lambda p: p.write_bytes(b"garbage"), (34, 34), "unreadable .npy file"),
    ("r.npy", lambda p: p.write_bytes(p.read_bytes().replace(b"}", b" ", 1)), (34, 34),       # numpy: TokenError
     "unreadable .npy file"),
    ("r.npz", lambda p: p.write_bytes(b"PK\x03\x04 broken"), None, "unreadable .npz"),
    ("r.npz", lambda p: np.savez(p, t=np.arange(3)), None, "no key(s) x, y, p"),
    ("r.dat", lambda p: p.write_bytes(b"% Prophesee"), None, "unknown recording type '.dat'"),
    ("r.npy", lambda p: np.save(p, make_events([1], [1], [0], [True])[:0]), (34, 34), "holds no events"),
]


@pytest.mark.parametrize("name, damage, sensor, message", BAD_FILES,
                         ids=[f"{n}:{m[:30]}" for n, _, _, m in BAD_FILES])
def test_a_bad_recording_gives_one_error_naming_it(tmp_path, capsys, name, damage, sensor, message):
    path = tmp_path / name
    if name != "missing.aedat4" and path.suffix in FORMATS:
        sensor_written = (346, 260) if path.suffix in (".aedat4", ".npz") else (34, 34)
        events = davis_events(2000) if sensor_written == (346, 260) else make_events([1, 33], [2, 30], [0, 9], [1, 0])
        write_recording(path, events, sensor_written)
    if damage is not None:
        damage(path)
    with pytest.raises(EventDataError) as error:
        read_recording(path, sensor)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)
    code, out, err = cli_run(capsys, ["run-lava", EXPORT, "--events", path]
                             + (["--sensor", *sensor] if sensor else []))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {error.value}"]


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_randomly_damaged_recordings_read_or_raise_event_data_error(tmp_path, suffix):
    """200 damaged copies of a written recording (bytes overwritten, most in the header, or the file
    cut short): each reads (damage in event payloads is undetectable in these formats) or raises
    EventDataError naming the file -- no other exception. Found numpy's tokenize.TokenError."""
    rng = np.random.default_rng(7)
    events = make_events(rng.integers(0, 34, 3000), rng.integers(0, 34, 3000),
                         np.sort(rng.integers(0, 300_000, 3000)), rng.integers(0, 2, 3000))
    good = write_recording(tmp_path / f"good{suffix}", events, (34, 34)).read_bytes()
    sensor = None if suffix in (".aedat4", ".npz") else (34, 34)
    path, outcomes = tmp_path / f"damaged{suffix}", {"read": 0, "refused": 0}
    for _ in range(200):
        data = bytearray(good)
        if rng.random() < 0.2:
            data = data[:rng.integers(0, len(data))]
        else:
            reach = 400 if rng.random() < 0.5 else len(data)
            for at in rng.integers(0, min(reach, len(data)), rng.choice([1, 4, 32])):
                data[at] = rng.integers(0, 256)
        path.write_bytes(bytes(data))
        try:
            read_recording(path, sensor)
            outcomes["read"] += 1
        except EventDataError as error:
            assert str(error).startswith(f"{path}: "), str(error)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 100, outcomes


def test_image_models_and_label_counts_are_refused_before_any_run(tmp_path, capsys):
    path = write_recording(tmp_path / "r.npy", make_events([1], [2], [0], [True]), (34, 34))
    image_model = tmp_path / "image.h5"
    assert cli.main(["export", str(EVENT_MODEL.parent / "meta_spikeformer_small28_fmnist.pt"), "--out",
                     str(image_model)]) == 0
    capsys.readouterr()
    code, _, err = cli_run(capsys, ["run-lava", image_model, "--events", path, "--sensor", 34, 34])
    assert code == 2 and "takes image of shape (1, 28, 28); event recordings give 2-polarity event frames" in err
    code, _, err = cli_run(capsys, ["run-lava", EXPORT, "--events", path, "--sensor", 34, 34, "--labels", 1, 2])
    assert code == 2 and "1 recording(s), 2 label(s)" in err
    code, _, err = cli_run(capsys, ["run-lava", EXPORT, "--events", path, "--sensor", 34, 0])
    assert code == 2 and "--sensor" in err


def test_writers_refuse_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(EventDataError, match=r"timestamps 0 <= t < 2\*\*23"):
        write_recording(tmp_path / "r.bin", make_events([1], [1], [2 ** 23], [True]), (34, 34))
    with pytest.raises(EventDataError, match="y < 240"):
        write_recording(tmp_path / "r.bin", make_events([1], [1], [0], [True]), (346, 260))
    with pytest.raises(EventDataError, match="outside the 34x34 sensor"):
        write_recording(tmp_path / "r.aedat4", make_events([40], [1], [0], [True]), (34, 34))


# ---------------------------------------------------------------------------- tonic conventions (item 4)
@pytest.mark.parametrize("dataset", [HARDVS, FashionMNISTDVS])
def test_datasets_declare_their_format_as_tonic_does(dataset):
    import tonic
    assert isinstance(dataset.classes, (tuple, list)) and len(set(dataset.classes)) == len(dataset.classes)
    assert len(dataset.sensor_size) == 3 and dataset.sensor_size[2] == 2
    assert dataset.dtype == tonic.io.events_struct
    assert dataset.ordering == dataset.dtype.names == tonic.datasets.NMNIST.ordering
    assert type(dataset.ordering) is type(tonic.datasets.NMNIST.ordering)


def test_hardvs_classes_are_the_published_300():
    assert len(HARDVS.classes) == 300
    assert HARDVS.classes[:3] == ("L type clamp back", "wink_ Blink an eye", "W type clamp back")
    assert HARDVS.classes[299] == "Mobile Card 3" and FashionMNISTDVS.classes[9] == "Ankle boot"


# ---------------------------------------------------------------------------- plots (item 6)
def test_lava_raster_is_a_time_course_against_the_lava_step(tmp_path):
    """Timestep t of a layer arriving at step a is drawn at step a + t: T > 1 spreads over T steps per
    layer, and even T = 1 walks through the pipeline instead of being one column."""
    from lava_spikeformer.analysis.evaluation import LavaEvaluation
    spikes = np.zeros((4, 3))
    spikes[[0, 2, 3], [0, 1, 2]] = 1
    evaluation = LavaEvaluation(model="m.h5", data="fmnist-dvs", tag="floating_pt", granularity="fine", images=1,
                                accuracy=1.0, accuracy_per_step=[0.0] * 9, steps_per_second_incl_startup=1.0,
                                latency_steps=5, timesteps=4, firing_rates={"a": 0.25, "b": 0.25},
                                raster={"a": spikes, "b": spikes}, raster_arrival={"a": 1, "b": 4})
    fig = evaluation.raster_figure()
    ax = fig.axes[0]
    drawn = [sorted(c.get_offsets()[:, 0].tolist()) for c in ax.collections]
    assert drawn == [[1, 3, 4], [4, 6, 7]]
    assert ax.get_xlabel() == "Lava step" and ax.get_xlim() == (-0.5, 8.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (1)", "b (4)"]
    paths = evaluation.plot(tmp_path)
    assert [p.name for p in paths] == ["lava_decisions.png", "lava_rates.png", "lava_raster.png"]
    assert "raster" not in json.dumps(evaluation.to_dict())
