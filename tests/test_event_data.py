"""Fashion-MNIST-DVS sensor emulation, frame pipeline, frame cache, event-data training."""
import numpy as np
import pytest
import torch

from event_data import EVENT_DTYPE, FashionMNISTDVS, SaccadeSensor, emulate, frame_transform
from lava_spikeformer.data.frame_cache import cached_frames
from event_data.transforms import frame_of, time_bins


@pytest.fixture(scope="module")
def dataset():
    return FashionMNISTDVS("test", transform=None)


def test_samples_are_sorted_tonic_events_on_the_sensor(dataset):
    sensor = dataset.sensor
    for i in range(4):
        events, label = dataset[i]
        assert events.dtype == EVENT_DTYPE and label == int(dataset.targets[i])
        assert len(events) > 1000                                   # edges of a moving garment
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["t"].min() >= 0 and events["t"].max() < sensor.duration_us
        assert events["x"].min() >= 0 and events["x"].max() < 34 and events["y"].min() >= 0 and events["y"].max() < 34
        assert 0.3 < events["p"].mean() < 0.7                       # ON and OFF edges both present


def test_emulation_is_deterministic_and_batching_does_not_change_it(dataset):
    single = [dataset[i][0] for i in range(3)]
    batched = [events for events, _ in dataset.iter_samples(range(3), chunk=2)]
    for a, b in zip(single, batched):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(single[0], FashionMNISTDVS("test", seed=1)[0][0])


def test_a_static_scene_gives_only_background_noise():
    """No motion, no intensity change: every event is noise, about noise_hz per pixel and polarity."""
    sensor = SaccadeSensor(path=((0.0, 0.0),) * 3)
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    counts = [len(e) for e in emulate(images, range(20), sensor)]
    expected = sensor.noise_hz * sensor.duration_us * 1e-6 * 34 * 34 * 2        # 346.8
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / 20)


def test_refractory_period_bounds_the_rate_of_every_pixel():
    sensor = SaccadeSensor(noise_hz=0.0)
    images = np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    for events in emulate(images, range(8), sensor):
        for polarity in (False, True):
            same = events[events["p"] == polarity]
            pixel = same["y"].astype(np.int64) * 34 + same["x"]
            order = np.lexsort((same["t"], pixel))
            gaps = np.diff(same["t"][order])[np.diff(pixel[order]) == 0]
            assert gaps.size and gaps.min() >= sensor.refractory_us


def test_frames_have_the_model_shape_and_count_every_kept_event(dataset):
    events, _ = dataset[0]
    frames = frame_transform(dataset.sensor_size, n_time_bins=8, size=(32, 32))(events)
    assert frames.shape == (8, 2, 32, 32)
    inside = (events["x"] >= 1) & (events["x"] < 33) & (events["y"] >= 1) & (events["y"] < 33)
    # tonic's time binning drops the events after the last whole bin (floor of span / T)
    span = (events["t"][-1] - events["t"][0]) // 8
    binned = inside & (events["t"] < events["t"][0] + 8 * span)
    assert frames.sum() == binned.sum()


def test_streaming_bins_reproduce_tonic_to_frame(dataset):
    """What the Lava EventSource sends step by step equals tonic's ToFrame(n_time_bins=8)."""
    transform = frame_transform(dataset.sensor_size, n_time_bins=8)
    for i in range(3):
        events = dataset[i][0]
        per_step = np.stack([frame_of(part, dataset.sensor_size) for part in time_bins(events, 8)])
        np.testing.assert_array_equal(per_step, transform(events))


def test_frame_cache_is_written_once_and_reread(dataset, tmp_path):
    dataset = FashionMNISTDVS("test", transform=frame_transform(FashionMNISTDVS.sensor_size, n_time_bins=8,
                                                                size=(32, 32)))
    first = cached_frames(dataset, limit=6, cache_dir=tmp_path, progress=False)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".npy", ".npy"]
    stamps = [f.stat().st_mtime_ns for f in files]
    second = cached_frames(dataset, limit=6, cache_dir=tmp_path, progress=False)
    assert [f.stat().st_mtime_ns for f in sorted(tmp_path.iterdir())] == stamps
    assert first.frames.shape == (6, 8, 2, 32, 32) and first.frames.dtype == torch.uint8
    torch.testing.assert_close(first.frames, second.frames, rtol=0, atol=0)
    expected = np.stack([dataset[i][0] for i in range(6)])
    np.testing.assert_array_equal(first.frames.numpy(), np.clip(expected, 0, 255))
    assert first.labels.tolist() == dataset.targets[:6].tolist()
    batch = first.batch(slice(0, 4))
    assert batch.shape == (8, 4, 2, 32, 32) and batch.dtype == torch.float32


@pytest.mark.parametrize("damage", [lambda data: data[:200], lambda data: data.replace(b"}", b" ", 1)],
                         ids=["truncated", "garbled header"])       # numpy raises EOF/ValueError, TokenError
def test_a_damaged_cache_file_is_reported(dataset, tmp_path, damage):
    from event_data import EventDataError
    dataset = FashionMNISTDVS("test", transform=frame_transform(FashionMNISTDVS.sensor_size, n_time_bins=8,
                                                                size=(32, 32)))
    cached_frames(dataset, limit=2, cache_dir=tmp_path, progress=False)
    frames_file = next(tmp_path.glob("*.frames.npy"))
    frames_file.write_bytes(damage(frames_file.read_bytes()))
    with pytest.raises(EventDataError, match="frames.npy: unreadable frame cache"):
        cached_frames(dataset, limit=2, cache_dir=tmp_path, progress=False)


def test_cli_trains_the_event_model_on_fmnist_dvs(tmp_path, monkeypatch):
    import json
    from lava_spikeformer.cli import main
    monkeypatch.setenv("LAVA_SPIKEFORMER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["train", "--data", "fmnist-dvs", "--model", "meta_spikeformer_hardvs_small", "--epochs", "1",
                 "--train-subset", "64", "--test-subset", "32", "--batch-size", "32", "--energy-images", "16",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == "fmnist-dvs" and summary["timesteps"] == 8 and summary["params"] == 267_754
    assert 0 < summary["mean_spike_rate"] < 1
