"""CLI: export a checkpoint, then run it on Lava with accuracy, steps/s and plots."""
import json

from lava_spikeformer.cli import main

from .conftest import TRAINED


def test_export_then_run_lava_reports_accuracy_and_writes_plots(tmp_path, capsys):
    model_path = tmp_path / "small.h5"
    assert main(["export", str(TRAINED), "--out", str(model_path), "--timesteps", "2"]) == 0
    assert "latency 24 steps" in capsys.readouterr().out
    assert main(["run-lava", str(model_path), "--granularity", "fine", "--images", "8", "--batch", "8",
                 "--out", str(tmp_path / "lava")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 8 and result["timesteps"] == 2 and result["latency_steps"] == 24
    assert 0.5 <= result["accuracy"] <= 1.0 and result["steps_per_second_incl_startup"] > 0
    assert 0 < result["mean_firing_rate"] < 0.5
    assert (tmp_path / "lava" / "lava_rates.png").stat().st_size > 1000
    assert (tmp_path / "lava" / "lava_raster.png").stat().st_size > 1000


def test_run_lava_rejects_too_few_steps(tmp_path, capsys):
    model_path = tmp_path / "small.h5"
    main(["export", str(TRAINED), "--out", str(model_path)])
    assert main(["run-lava", str(model_path), "--images", "2", "--steps", "5"]) == 2
    assert "steps=5 is too few" in capsys.readouterr().err
