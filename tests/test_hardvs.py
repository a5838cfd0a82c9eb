"""HAR-DVS: both release formats from fixture trees, model frames, caching, and one clear error per defect."""
import io
import warnings
import zipfile

import numpy as np
import pytest

from event_data import EVENT_DTYPE, EventDataError, make_events
from event_data.fixtures import (T0_US, class_name, write_class_file, write_event_npz, write_hardvs_events_tree,
                                 write_hardvs_frames_tree)
from event_data.hardvs import (HARDVS, FitFrames, decode_event_png, fit_factor, hardvs_for_model,
                               model_transform, parse_class_file, read_event_npz, sample_frame_indices)
from lava_spikeformer.data.event_frames import frame_set
from event_data.transforms import frame_transform
from lava_spikeformer.config import build_config

from .conftest import write_bomb_png

SMALL = {"train": 1, "val": 1, "test": 1}


@pytest.fixture(scope="module")
def events_tree(tmp_path_factory):
    return write_hardvs_events_tree(tmp_path_factory.mktemp("hardvs_events"), missing=1)


@pytest.fixture(scope="module")
def frames_tree(tmp_path_factory):
    return write_hardvs_frames_tree(tmp_path_factory.mktemp("hardvs_frames"))


def events_dataset(root, split="train"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # the fixture's deliberately missing .npz
        return HARDVS(root, split)


# --------------------------------------------------------------------------- events release
def test_events_release_returns_stored_events_and_folder_labels(events_tree):
    with pytest.warns(UserWarning, match=r"1 of 6 listed clips have no \.npz file .*HARDVS#8.*"
                                         r"action_001/dvSave-2021_10_15_19_00_00\.npz"):
        dataset = HARDVS(events_tree.root, "train")
    assert dataset.release == "events" and dataset.sensor_size == (346, 260, 2)
    assert dataset.missing == ("action_001/dvSave-2021_10_15_19_00_00.npz",)
    expected = events_tree.present("train")
    assert len(dataset) == 5 and dataset.targets.tolist() == [0, 1, 1, 299, 299]
    for i, clip in enumerate(expected):
        events, label = dataset[i]
        assert events.dtype == EVENT_DTYPE and len(events) == 500 and label == clip.label
        for field in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(events[field], clip.events[field])
    assert events["t"][0] >= T0_US                            # absolute µs survive as int64
    assert [len(events_dataset(events_tree.root, s)) for s in ("val", "test")] == [3, 3]
    assert dataset[-1][1] == 299
    with pytest.raises(IndexError, match="index 5 out of range for 5 samples"):
        dataset[5]


def test_class_names_parsed_from_every_separator_style(events_tree, tmp_path):
    classes = events_dataset(events_tree.root).classes
    assert len(classes) == 300 and classes[0] == class_name(1) and classes[299] == class_name(300)
    assert all(name == class_name(n) for n, name in enumerate(classes, 1))
    real_style = ["Action001-L type clamp back", "Action002 wink_ Blink an eye", "Action003- Alternate Front Kick",
                  "Action004 - jumping jack"] + [f"Action{n:03d}- activity {n}" for n in range(5, 301)]
    (tmp_path / "HARDVS_300_class.txt").write_text("\n".join(real_style) + "\n\n")
    names = parse_class_file(tmp_path / "HARDVS_300_class.txt")
    assert names[:4] == ("L type clamp back", "wink_ Blink an eye", "Alternate Front Kick", "jumping jack")
    assert names[299] == "activity 300"


def test_class_names_are_the_published_ones_with_or_without_a_folder_copy(tmp_path):
    write_hardvs_events_tree(tmp_path, labels=(4,), clips=SMALL, events_per_clip=5, class_file=False)
    assert HARDVS(tmp_path, "test").classes == HARDVS.classes and len(HARDVS.classes) == 300


def test_a_folder_class_file_that_disagrees_is_refused(tmp_path):
    write_hardvs_events_tree(tmp_path, labels=(4,), clips=SMALL, events_per_clip=5)
    names = list(HARDVS.classes)
    names[4] = "Four Step Run"
    write_class_file(tmp_path / "HARDVS_300_class.txt", names)
    with pytest.raises(EventDataError, match=r"HARDVS_300_class.txt: 1 class name\(s\) differ from the published "
                                             r"HARDVS_300_class.txt \(Event-AHU/HARDVS\), e.g. Action005 is "
                                             r"'Four Step Run' here, 'Three Step Run' there"):
        HARDVS(tmp_path, "test")


@pytest.mark.parametrize("label_base", [0, 1, None])
def test_label_column_zero_or_one_based_or_absent(tmp_path, label_base):
    write_hardvs_events_tree(tmp_path, labels=(0, 7, 299), clips=SMALL, events_per_clip=5, label_base=label_base)
    assert HARDVS(tmp_path, "val").targets.tolist() == [0, 7, 299]


def test_events_to_model_frames_exactly(tmp_path):
    """Hand-placed events through the model transform: full sensor, then 32x32 (factor 32/260, crop x 5..36)."""
    tree = write_hardvs_events_tree(tmp_path, labels=(2,), clips=SMALL, events_per_clip=5)
    x = np.array([100, 300, 40, 100, 173, 0, 345, 100, 300])
    y = np.array([200, 259, 10, 200, 131, 0, 259, 200, 0])
    p = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1], dtype=bool)
    t = T0_US + 1000 * np.arange(9)                          # bins of 1000 µs: event k in frame k
    write_event_npz(tmp_path / f"{tree.splits['test'][0].entry}.npz", make_events(x, y, t, p))
    full, label = hardvs_for_model(tmp_path, "test", n_time_bins=8, size=(260, 346))[0]
    expected = np.zeros((8, 2, 260, 346), dtype=np.int16)
    for k in range(8):                                       # tonic bins [t0 + k·w, t0 + (k+1)·w), w = 8000 // 8:
        expected[k, int(p[k]), y[k], x[k]] += 1              # the event at t[-1] = t0 + 8·w is not counted
    assert label == 2 and full.shape == (8, 2, 260, 346)
    np.testing.assert_array_equal(full, expected)
    small, _ = hardvs_for_model(tmp_path, "test", n_time_bins=8, size=(32, 32))[0]
    assert small.shape == (8, 2, 32, 32) and small.dtype == np.int16
    # x' = int(x·32/260) − 5, y' = int(y·32/260): (100,200)→(7,24), (300,259)→(31,31), (173,131)→(16,16);
    # x=40→-1, x=0→-5 and x=345→42 (≥ the 42-pixel downsampled width) fall outside
    hits = {(k, c, yy, xx): v for (k, c, yy, xx), v in np.ndenumerate(small) if v}
    assert hits == {(0, 1, 24, 7): 1, (1, 0, 31, 31): 1, (3, 1, 24, 7): 1, (4, 0, 16, 16): 1, (7, 1, 24, 7): 1}


def test_unsorted_and_out_of_range_streams(tmp_path):
    tree = write_hardvs_events_tree(tmp_path, labels=(0,), clips={"train": 2}, events_per_clip=5)
    rng = np.random.default_rng(1)
    events = make_events(rng.integers(0, 346, 400), rng.integers(0, 260, 400),
                         T0_US + np.sort(rng.integers(0, 10**6, 400)), rng.integers(0, 2, 400).astype(bool))
    shuffled = events[rng.permutation(400)]
    outside = make_events([346, 5, -1, 5, 345], [5, 260, 5, -3, 259], np.full(5, events["t"][200]),
                          [1, 1, 0, 0, 1])                              # mid-stream: the bins do not move
    entries = [clip.entry for clip in tree.splits["train"]]
    write_event_npz(tmp_path / f"{entries[0]}.npz", shuffled)
    write_event_npz(tmp_path / f"{entries[1]}.npz", np.concatenate([events, outside]))
    raw = HARDVS(tmp_path, "train")
    assert np.any(np.diff(raw[0][0]["t"]) < 0)                           # stored order is returned as is
    assert len(raw[1][0]) == 405
    framed = HARDVS(tmp_path, "train", transform=model_transform("events", 8, (260, 346)))
    reference = frame_transform((346, 260, 2), n_time_bins=8)(events)
    np.testing.assert_array_equal(framed[0][0], reference)               # unsorted -> sorted first
    added = framed[1][0] - reference
    assert added.sum() == 1 and added[:, 1, 259, 345].sum() == 1         # only (345, 259) is on the sensor


def test_empty_and_fully_cropped_streams_give_zero_frames(tmp_path):
    tree = write_hardvs_events_tree(tmp_path, labels=(0,), clips={"train": 2}, events_per_clip=5)
    entries = [clip.entry for clip in tree.splits["train"]]
    write_event_npz(tmp_path / f"{entries[0]}.npz", make_events([], [], [], []))
    write_event_npz(tmp_path / f"{entries[1]}.npz", make_events([0, 1], [0, 1], [T0_US, T0_US + 5], [1, 0]))
    full = HARDVS(tmp_path, "train", transform=model_transform("events", 8, (260, 346)))
    small = HARDVS(tmp_path, "train", transform=model_transform("events", 8, (32, 32)))
    assert full[0][0].shape == (8, 2, 260, 346) and not full[0][0].any()
    for index in (0, 1):                                  # empty; only (0, 0) and (1, 1), cropped away at 32x32
        assert small[index][0].shape == (8, 2, 32, 32) and not small[index][0].any()


# --------------------------------------------------------------------------- frames release
def test_tsn_frame_sampling_matches_mmaction():
    assert sample_frame_indices(10, 8).tolist() == [0, 1, 3, 4, 5, 6, 8, 9]
    assert sample_frame_indices(5, 8).tolist() == [0, 0, 1, 2, 2, 3, 4, 4]
    assert sample_frame_indices(8, 8).tolist() == list(range(8))


def test_frames_release_decodes_sampled_pngs(frames_tree):
    dataset = HARDVS(frames_tree.root, "train")
    assert dataset.release == "frames" and len(dataset) == 6 and dataset.targets.tolist() == [0, 0, 1, 1, 299, 299]
    assert dataset.classes[5] == class_name(6)                         # class file next to the list files
    for i, clip in enumerate(frames_tree.present("train")):
        frames, label = dataset[i]
        assert frames.shape == (8, 2, 260, 346) and frames.dtype == np.uint8 and label == clip.label
        np.testing.assert_array_equal(frames, clip.masks[sample_frame_indices(len(clip.masks), 8)])
    assert [len(clip.masks) for clip in frames_tree.present("train")] == [10, 5, 13, 10, 5, 13]
    assert HARDVS(frames_tree.root, "train", n_frames=4)[0][0].shape == (4, 2, 260, 346)


def test_png_colours_decode_to_off_on_channels(frames_tree):
    clip = frames_tree.present("test")[0]
    png = frames_tree.root / "rawframes" / clip.entry / "00000001.png"
    decoded = decode_event_png(png)
    np.testing.assert_array_equal(decoded, clip.masks[0])
    assert decoded.shape == (2, 260, 346) and 0 < decoded.sum() <= 300 and not (decoded[0] & decoded[1]).any()


def test_frames_numbered_from_zero_and_missing_folders(tmp_path):
    write_hardvs_frames_tree(tmp_path / "one", labels=(3,), clips=SMALL)
    zeros = write_hardvs_frames_tree(tmp_path / "zero", labels=(3,), clips=SMALL, start_index=0)
    assert (tmp_path / "zero/rawframes" / zeros.splits["val"][0].entry / "00000000.png").is_file()
    np.testing.assert_array_equal(HARDVS(tmp_path / "one", "val")[0][0], HARDVS(tmp_path / "zero", "val")[0][0])
    write_hardvs_frames_tree(tmp_path / "gap", labels=(3, 4), clips={"train": 1}, missing=1)
    with pytest.warns(UserWarning, match=r"1 of 2 listed clips have no frame folder .*rawframes/action_004"):
        dataset = HARDVS(tmp_path / "gap", "train")
    assert len(dataset) == 1 and dataset.targets.tolist() == [4]


def test_frame_geometry_equals_event_geometry(frames_tree):
    """A PNG pixel and an event at that pixel land in the same model pixel (both releases agree)."""
    masks = frames_tree.present("train")[0].masks[:3]
    fitted = FitFrames((32, 32))(masks)
    assert fitted.shape == (3, 2, 32, 32) and fitted.sum() > 0
    per_event = frame_transform((346, 260, 2), n_time_bins=1, size=(32, 32), downsample=fit_factor(260, 346, (32, 32)))
    for k, frame in enumerate(masks):
        p, y, x = np.nonzero(frame)
        events = make_events(x, y, np.zeros(len(x), dtype=np.int64), p.astype(bool))
        np.testing.assert_array_equal(fitted[k], per_event(events)[0])


def test_fit_frames_by_hand():
    frames = np.arange(24, dtype=np.int16).reshape(1, 1, 4, 6)   # factor max(2/4, 2/6) = 0.5 -> 2x3, crop 2x2
    np.testing.assert_array_equal(FitFrames((2, 2))(frames)[0, 0], [[0 + 1 + 6 + 7, 2 + 3 + 8 + 9],
                                                                    [12 + 13 + 18 + 19, 14 + 15 + 20 + 21]])


# --------------------------------------------------------------------------- into training
@pytest.mark.parametrize("release", ["events", "frames"])
def test_frame_set_builds_and_caches_model_frames(release, tmp_path):
    writer = write_hardvs_events_tree if release == "events" else write_hardvs_frames_tree
    writer(tmp_path / "data", labels=(0, 1, 299), clips=SMALL)
    cfg = build_config("meta_spikeformer_hardvs_small", num_classes=300)
    data = frame_set("hardvs", cfg, "test", root=tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert tuple(data.frames.shape) == (3, 8, 2, 32, 32) and data.labels.tolist() == [0, 1, 299]
    assert len(data.classes) == 300 and data.frames.sum() > 0
    assert tuple(data.batch(slice(0, 2)).shape) == (8, 2, 2, 32, 32)
    assert sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache").iterdir()) == ["frames.npy", "labels.npy"]
    for path in (tmp_path / "data").rglob("*.np[z]"):
        path.write_bytes(b"corrupt")                          # a second call is served from the cache
    for path in (tmp_path / "data").rglob("*.png"):
        path.write_bytes(b"corrupt")
    again = frame_set("hardvs", cfg, "test", root=tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(again.frames.numpy(), data.frames.numpy()) and len(list((tmp_path / "cache").iterdir())) == 2


def test_frame_set_needs_root_and_300_classes(events_tree):
    with pytest.raises(EventDataError, match="--root"):
        frame_set("hardvs", build_config("meta_spikeformer_hardvs_small", num_classes=300), "test", root=None)
    with pytest.raises(ValueError, match="meta_spikeformer_hardvs_small has 10 classes; HAR-DVS has 300"):
        frame_set("hardvs", build_config("meta_spikeformer_hardvs_small"), "test", root=events_tree.root)


# --------------------------------------------------------------------------- one clear error per defect
def _fail(call, *fragments):
    with pytest.raises(EventDataError) as error:
        call()
    for fragment in fragments:
        assert str(fragment) in str(error.value), str(error.value)


@pytest.fixture
def tiny_events(tmp_path):
    tree = write_hardvs_events_tree(tmp_path, labels=(0,), clips=SMALL, events_per_clip=5)
    return tmp_path, tmp_path / f"{tree.splits['test'][0].entry}.npz"


def test_corrupt_npz_files(tiny_events):
    root, npz = tiny_events
    good = npz.read_bytes()
    npz.write_bytes(b"not a zip archive at all")
    _fail(lambda: HARDVS(root, "test")[0], npz, "unreadable .npz")
    npz.write_bytes(good[: len(good) // 2])
    _fail(lambda: read_event_npz(npz), npz, "unreadable .npz")
    with zipfile.ZipFile(npz, "w") as archive:               # members whose .npy header is garbled:
        for key in "txyp":                                    # numpy raises tokenize.TokenError
            member = io.BytesIO()
            np.save(member, np.arange(3))
            archive.writestr(f"{key}.npy", member.getvalue().replace(b"}", b" ", 1))
    _fail(lambda: read_event_npz(npz), npz, "unreadable .npz")
    np.save(npz.with_suffix(".npy"), np.zeros(3))
    npz.write_bytes(npz.with_suffix(".npy").read_bytes())
    _fail(lambda: read_event_npz(npz), npz, "not an .npz archive")


@pytest.mark.parametrize("columns, message", [
    ({"t": np.arange(3), "x": np.arange(3), "y": np.arange(3)}, "no key(s) p (has t, x, y)"),
    ({"t": np.arange(3), "x": np.arange(3.0), "y": np.arange(3), "p": np.ones(3)}, "key 'x' has dtype float64, "
                                                                                     "expected integer"),
    ({"t": np.arange(3) * 0.5, "x": np.arange(3), "y": np.arange(3), "p": np.ones(3, bool)},
     "key 't' has dtype float64, expected integer microseconds"),
    ({"t": np.arange(3), "x": np.arange(3), "y": np.arange(3), "p": np.ones(3, np.float32)},
     "key 'p' has dtype float32, expected bool or integer"),
    ({"t": np.arange(3), "x": np.arange(3), "y": np.arange(2), "p": np.ones(3, bool)}, "1-D of equal length"),
    ({"t": np.arange(3), "x": np.array([0, 1, 40000]), "y": np.arange(3), "p": np.ones(3, bool)}, "outside int16"),
])
def test_npz_with_wrong_keys_or_dtypes(tiny_events, columns, message):
    root, npz = tiny_events
    np.savez(npz, **columns)
    _fail(lambda: HARDVS(root, "test")[0], npz, message)


@pytest.fixture
def tiny_frames(tmp_path):
    tree = write_hardvs_frames_tree(tmp_path, labels=(0,), clips=SMALL, frames_per_clip=(3,))
    return tmp_path, tmp_path / "rawframes" / tree.splits["test"][0].entry


def test_corrupt_missing_or_grey_png(tiny_frames):
    from PIL import Image
    root, folder = tiny_frames
    png = folder / "00000001.png"
    good = png.read_bytes()
    png.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _fail(lambda: HARDVS(root, "test")[0], png, "unreadable PNG")
    png.write_bytes(good[: len(good) // 2])
    _fail(lambda: HARDVS(root, "test")[0], png, "unreadable PNG")
    Image.new("L", (346, 260), 128).save(png)
    _fail(lambda: HARDVS(root, "test")[0], png, "L image; HAR-DVS event frames are colour")
    write_bomb_png(png)                                       # PIL's DecompressionBombError
    _fail(lambda: HARDVS(root, "test")[0], png, "unreadable PNG (Image size (900000000 pixels) exceeds limit")
    png.write_bytes(good)
    second = (folder / "00000002.png").read_bytes()
    Image.new("RGB", (100, 50), (255, 255, 255)).save(folder / "00000002.png")
    _fail(lambda: HARDVS(root, "test")[0], folder / "00000002.png",
          "100x50 image, earlier frames of the clip are 346x260")
    (folder / "00000002.png").write_bytes(second)
    (folder / "00000003.png").unlink()
    _fail(lambda: HARDVS(root, "test")[0], folder / "00000003.png", "frame missing", "test_label.txt:1 lists 3 frames")


def test_missing_list_file(tiny_frames):
    root, _ = tiny_frames
    (root / "HarDvs300_list" / "val_label.txt").unlink()
    _fail(lambda: HARDVS(root, "val"), root / "val_label.txt", "list file missing",
          root / "HarDvs300_list" / "val_label.txt")
    (root / "HarDvs300_list" / "test_label.txt").write_text("\n\n")
    _fail(lambda: HARDVS(root, "test"), root / "HarDvs300_list" / "test_label.txt", "empty list file")
    (root / "HarDvs300_list" / "train_label.txt").write_bytes(b"action_001/\xff\xfe 3 0\n")
    _fail(lambda: HARDVS(root, "train"), root / "HarDvs300_list" / "train_label.txt", "not a UTF-8 text file")


@pytest.mark.parametrize("line, message", [
    ("action_001/dvSave-x 5 300", ":1: label 300 out of range 0..299"),
    ("action_001/dvSave-x 5 -1", ":1: label -1 out of range 0..299"),
    ("action_001/dvSave-x 0 1", ":1: total_frames must be >= 1, got 0"),
    ("action_001/dvSave-x three 1", ":1: total_frames must be an integer, got 'three'"),
])
def test_bad_frame_list_lines(tiny_frames, line, message):
    root, _ = tiny_frames
    listing = root / "HarDvs300_list" / "train_label.txt"
    listing.write_text(line + "\n")
    _fail(lambda: HARDVS(root, "train"), f"{listing}{message}")


@pytest.mark.parametrize("lines, message", [
    (["action_001/dvSave-a 5"], ":1: label 5 does not match folder action_001; expected 0 (0-based) or 1 (1-based)"),
    (["action_001/dvSave-a 0", "action_002/dvSave-b 2"], ":2: label 2 does not match folder action_002; expected 1"),
    (["action_301/dvSave-a"], ":1: class folder action_301 is outside action_001..action_300"),
    (["action_000/dvSave-a"], ":1: class folder action_000 is outside"),
    (["dvSave-a 0"], ":1: expected 'action_NNN/<clip> [label]'"),
    (["action_001/dvSave-a x"], ":1: label must be an integer, got 'x'"),
])
def test_bad_event_list_lines(tiny_events, lines, message):
    root, _ = tiny_events
    (root / "train_label.txt").write_text("\n".join(lines) + "\n")
    _fail(lambda: HARDVS(root, "train"), f"{root / 'train_label.txt'}{message}")


def test_bad_class_file_release_mismatch_and_nothing_present(tiny_events):
    root, npz = tiny_events
    classes = root / "HARDVS_300_class.txt"
    lines = classes.read_text().splitlines()
    classes.write_text("\n".join(lines[:6] + ["Activity 7 without number"] + lines[7:]))
    _fail(lambda: HARDVS(root, "test"), f"{classes}:7: expected 'ActionNNN<separator><name>'")
    classes.write_text("\n".join(lines[:-1]))
    _fail(lambda: HARDVS(root, "test"), classes, "1 of 300 classes missing, e.g. Action300")
    classes.write_text("\n".join(lines + ["Action005- again"]))
    _fail(lambda: HARDVS(root, "test"), f"{classes}:301: Action005 is listed twice")
    classes.unlink()
    _fail(lambda: HARDVS(root, "test", release="frames"), root / "test_label.txt",
          "lines are in the events release's format, but release='frames' was asked for")
    npz.unlink()
    with pytest.warns(UserWarning):
        _fail(lambda: HARDVS(root, "test"), root / "test_label.txt", "none of the 1 listed clips exist")


def test_cli_trains_the_small_event_model_on_hardvs_with_300_classes(tmp_path, monkeypatch):
    import json
    from lava_spikeformer.cli import main
    monkeypatch.setenv("LAVA_SPIKEFORMER_CACHE", str(tmp_path / "cache"))
    write_hardvs_events_tree(tmp_path / "hardvs", labels=(0, 1, 299), events_per_clip=50)
    args = ["train", "--data", "hardvs", "--root", str(tmp_path / "hardvs"), "--model", "meta_spikeformer_hardvs_small",
            "--epochs", "1", "--batch-size", "2", "--energy-images", "2", "--out", str(tmp_path / "run")]
    assert main(args) == 2                                   # 10 classes: refused with a clear error
    assert main(args + ["--num-classes", "300"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"] == "hardvs" and summary["timesteps"] == 8
    assert json.loads((tmp_path / "run" / "model_config.json").read_text())["num_classes"] == 300
