"""The training-throughput benchmark runs end to end at its tiniest size and writes its table and JSON."""
import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "training_throughput.py"


def test_benchmark_prints_table_and_writes_json(tmp_path):
    out = tmp_path / "throughput.json"
    proc = subprocess.run([sys.executable, str(BENCHMARK), "--device", "cpu", "--models", "meta_spikeformer_small28",
                           "--batch", "2", "--timesteps", "1", "--amp", "off", "--steps", "1", "--warmup", "1",
                           "--threads", "1", "--lava", "quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=BENCHMARK.parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "training throughput on CPU (peak memory: process peak RSS)"
    assert lines[1].startswith("| model | input | T | AMP | batch | plain img/s | fast img/s | fast / plain |")
    assert lines[3].startswith("| meta_spikeformer_small28 | 28² | 1 | off | 2 |")
    assert any(line.startswith("| meta_spikeformer_small28 | 1x28x28 | fine |") for line in lines)
    result = json.loads(out.read_text())
    assert result["device"] == "cpu"
    assert [(r["fast"], r["timesteps"], r["amp"], r["batch"], r["steps"]) for r in result["training"]] == [
        (False, 1, False, 2, 1), (True, 1, False, 2, 1)]
    for row in result["training"]:
        assert row["img_per_s"] > 0 and 0.05 < row["peak_gib"] < 24
    assert sorted(r["granularity"] for r in result["lava"]) == ["fine", "fused"]
    assert all(r["lava_steps_per_s"] > 0 and r["torch_steps_per_s"] > 0 for r in result["lava"])
