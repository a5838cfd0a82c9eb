"""Loihi 2 fit report: exact counts on a hand-countable graph, each limit broken with its numbers,
the shipped model's report and the CLI."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lava_spikeformer.analysis.loihi import LIMITS, loihi_report
from lava_spikeformer.training.checkpoint import load_model
from lava_spikeformer.cli import main
from lava_spikeformer.graph import read_graph
from lava_spikeformer.graph import Graph, Node

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "netx_models" / "meta_spikeformer_small28_fmnist.pt"
LIF = {"threshold": 1.0, "tau": 2.0}
CONV = {"stride": 1, "padding": 1, "groups": 1}


def hand_graph() -> Graph:
    """input 1x4x4 -> conv1 3x3 pad 1 (2 ch, one zero tap) -> lif1 -> conv2 1x1 -> add(conv1, conv2)
    -> mean -> lif_h -> fc (3). conv1 reaches the add one step before conv2: the loader delays it."""
    w1 = np.full((2, 1, 3, 3), 0.25)
    w1[0, 0, 0, 0] = 0.0
    return Graph((
        Node("input", "input", (), (1, 4, 4)),
        Node("conv1", "conv", ("input",), (2, 4, 4), {"weight": w1, "bias": np.array([0.5, -0.25])}, CONV),
        Node("lif1", "lif", ("conv1",), (2, 4, 4), attrs=LIF),
        Node("conv2", "conv", ("lif1",), (2, 4, 4), {"weight": np.full((2, 2, 1, 1), 0.5)},
             {"stride": 1, "padding": 0, "groups": 1}),
        Node("add", "add", ("conv1", "conv2"), (2, 4, 4)),
        Node("mean", "mean", ("add",), (2,)),
        Node("lif_h", "lif", ("mean",), (2,), attrs=LIF),
        Node("fc", "dense", ("lif_h",), (3,), {"weight": np.ones((3, 2))}),
    ), output="fc", timesteps=1, static_input=True)


def test_counts_of_a_hand_countable_graph():
    report = loihi_report(hand_graph(), input_abs_max=1.0)
    rows = report.by_name
    assert [l.name for l in report.layers] == ["input", "conv1", "lif1", "conv2", "conv1.delay1", "add", "mean",
                                               "lif_h", "fc"]
    count = {name: (l.neurons, l.synapses, l.unique_weights, l.fan_in, l.fan_out) for name, l in rows.items()}
    # conv1 on 4x4, pad 1: output rows 0..3 see 2, 3, 3, 2 taps inside the image -> 10 per axis,
    # 10 * 10 = 100 connections per channel; channel 0's zero tap (0, 0) lands inside for rows 1..3
    # and cols 1..3 -> 9 fewer. Input fan-out: an interior pixel is reached by 9 outputs of
    # channel 1 and 8 of channel 0 (the one using tap (0, 0) is gone).
    assert count["input"] == (16, 0, 0, 0, 9 + 8)
    assert count["conv1"] == (2 * 16, 100 + 100 - 9, 18 - 1, 9, 2)        # -> lif1 and the delay line
    assert count["lif1"] == (32, 32, 0, 1, 2)                              # conv2: 2 output channels
    assert count["conv2"] == (32, 2 * 2 * 16, 4, 2, 1)
    assert count["conv1.delay1"] == (32, 32, 0, 1, 1)
    assert count["add"] == (32, 2 * 32, 0, 2, 1)
    assert count["mean"] == (2, 32, 0, 16, 1)                              # 16 positions per channel
    assert count["lif_h"] == (2, 2, 0, 1, 3)
    assert count["fc"] == (3, 6, 6, 2, 0)
    assert rows["conv1.delay1"].delay_steps == 1 and rows["conv1.delay1"].inputs == ("conv1",)
    assert rows["add"].inputs == ("conv1.delay1", "conv2")
    assert report.totals["neurons"] == 16 + 32 * 5 + 2 + 2 + 3 == 183
    assert report.totals["synapses"] == 191 + 32 + 64 + 32 + 64 + 32 + 2 + 6 == 423
    assert report.totals["unique_weights"] == 17 + 4 + 6
    assert [l.cores for l in report.layers] == [1] * 9 and report.totals["chips"] == 1
    # weights 0.25: exponent floor(log2(127 / 0.25)) = 8, mantissa 64 (8 signed bits)
    assert (rows["conv1"].weight_bits, rows["conv1"].weight_exponents) == (8, [8])
    assert rows["conv2"].weight_exponents == [7] and rows["fc"].weight_exponents == [6]
    # bits in 2**-6 units, |input| <= 1 -> 64 (8 bits). conv1: 8 or 9 taps x 64 x 64 >> 8 = 128 / 144,
    # + |bias| 32 / 16 -> 160 (9 bits); lif1's membrane v (2**-12 units: input << 6, + 1 bias)
    # <= (160 * 64 + 1) * 4096 / 2048 = 20482 (16 bits);
    # conv2 on spikes: 2 x 64 >> (7 - 6) = 64 (8 bits); add: 160 + 64 = 224 (9 bits).
    bits = {name: (l.message_bits, l.state_bits) for name, l in rows.items()}
    assert bits["input"] == (8, 8) and bits["conv1"] == (9, 9) and bits["lif1"] == (1, 16)
    assert bits["conv2"] == (8, 8) and bits["conv1.delay1"] == (9, 9) and bits["add"] == (9, 9)
    assert bits["lif_h"] == (1, 16)                                        # (224 * 64 + 1) * 2 = 28674
    assert report.violations == []


def test_fan_in_over_the_axon_limit_and_more_than_one_chip():
    n = 500_000
    graph = Graph((Node("input", "input", (), (n,)),
                   Node("fc", "dense", ("input",), (1,), {"weight": np.full((1, n), 0.01)})),
                  output="fc", timesteps=1, static_input=True)
    report = loihi_report(graph)
    rows = report.by_name
    assert rows["input"].cores == math.ceil(n / 4096) == 123                # neurons
    assert (rows["fc"].cores, rows["fc"].binding) == (math.ceil(n / 16384), "axons") == (31, "axons")
    assert rows["fc"].cores > math.ceil(n / (12000 * 4))                     # 11 by SynMem
    assert report.totals["cores"] == 154 and report.totals["chips"] == 2
    found = [(v.layer, v.kind, v.value, v.limit, v.estimate) for v in report.violations]
    assert found == [("fc", "fan_in", n, 16384, True), ("(total)", "chip_cores", 154, 120, True)]
    assert "500,000 inputs" in report.violations[0].message and "needs 2 chips" in report.violations[1].message


def limits_graph() -> Graph:
    """Each remaining kind of limit once: per-channel exponents and a wide bias (c), a wide
    threshold (k), SDSA products (a), a long delay (d), a mean over 9 positions (m)."""
    w = np.array([[1.0, 0.0], [0.0, 0.01]]).reshape(2, 2, 1, 1)
    one = {"stride": 1, "padding": 0, "groups": 1}
    return Graph((
        Node("input", "input", (), (2, 3, 3)),
        Node("c", "conv", ("input",), (2, 3, 3), {"weight": w, "bias": np.array([0.0, 6401 / 64])}, one),
        Node("q", "lif", ("c",), (2, 3, 3), attrs=LIF),
        Node("k", "lif", ("c",), (2, 3, 3), attrs={"threshold": 1024.0, "tau": 2.0}),
        Node("v", "lif", ("c",), (2, 3, 3), attrs=LIF),
        Node("a", "sdsa", ("q", "k", "v"), (2, 3, 3), {"scale": np.array([1.0])},
             {"variant": 3, "heads": 1, "threshold": 0.5, "tau": 2.0}),
        Node("d", "delay", ("a",), (2, 3, 3), attrs={"steps": 70}),
        Node("m", "mean", ("d",), (2,)),
        Node("fc", "dense", ("m",), (1,), {"weight": np.ones((1, 2))}),
    ), output="fc", timesteps=1, static_input=True)


def test_each_limit_is_reported_with_its_numbers():
    report = loihi_report(limits_graph(), input_abs_max=2.0 ** 20)
    found = [(v.layer, v.kind, v.value, v.limit) for v in report.violations]
    assert found == [
        ("input", "message_bits", 28, 24),             # 2**20 x 64 = 2**26: 27 bits + sign
        ("c", "per_channel_exponent", 2, None),        # 1.0 -> exponent 6, 0.01 -> 13
        ("c", "message_bits", 28, 24),                 # 2**26 (channel 0) + 0
        ("q", "state_bits", 35, 24),                   # v in 2**-12: 2**26 x 64 x 4096 / 2048 = 2**33
        ("k", "threshold_bits", 18, 17),               # 1024 x 2 x 64 = 2**17
        ("k", "state_bits", 35, 24),
        ("v", "state_bits", 35, 24),
        ("a", "two_signal_product", 72, None),         # Kᵀ V: D Dh N = 2*2*9 ANDs; Q(Kᵀ V): N D Dh = 36
        ("d", "synaptic_delay", 70, 62),
    ]
    message = {(v.layer, v.kind): v.message for v in report.violations}
    assert "2 weight exponents (6..13)" in message["c", "per_channel_exponent"]
    assert "36 spike x spike products" in message["a", "two_signal_product"]
    assert "36 spike x count products" in message["a", "two_signal_product"]
    sdsa = report.by_name["a"]
    assert (sdsa.fan_in, sdsa.products, sdsa.synapses) == (2 + 2 * 9 + 9, 72, 0)   # Dh + Dh N + N
    assert report.by_name["k"].fan_out == 2 * 9 and report.by_name["q"].fan_out == 2  # Dh N, Dh
    assert (report.by_name["d"].message_bits, report.by_name["m"].message_bits) == (1, 2)
    assert report.totals["chips"] == 1


def test_input_bound_must_be_positive():
    with pytest.raises(ValueError, match="input_abs_max must be a positive number, got -1.0"):
        loihi_report(hand_graph(), input_abs_max=-1.0)


@pytest.fixture(scope="module")
def shipped_h5(tmp_path_factory):
    """The shipped Fashion-MNIST model, exported the way users do (no .h5 ships with the repo)."""
    model, _ = load_model(SHIPPED)
    return model.eval().export_hdf5(tmp_path_factory.mktemp("export") / "model.h5")


def test_report_of_the_shipped_model(shipped_h5):
    graph = read_graph(shipped_h5)
    report = loihi_report(graph)
    adds = [n for n in graph.nodes if n.op == "add"]
    delays = [l for l in report.layers if l.op == "delay"]
    assert len(report.layers) == len(graph.nodes) + len(delays) and len(delays) == len(adds) == 8
    assert {l.name: l.neurons for l in report.layers if l.op != "delay"} == {
        n.name: int(np.prod(n.shape)) for n in graph.nodes}
    for key in ("neurons", "synapses", "unique_weights", "products", "cores", "cores_expanded"):
        assert report.totals[key] == sum(getattr(l, key) for l in report.layers), key
    assert report.totals["chips"] == math.ceil(report.totals["cores"] / 120)
    assert all(l.cores_expanded >= l.cores >= 1 for l in report.layers)
    kinds = [v.kind for v in report.violations]
    assert kinds.count("two_signal_product") == 2 and "fan_in" not in kinds and "message_bits" not in kinds
    assert all(l.message_bits <= 24 and l.state_bits <= 24 for l in report.layers)


def test_cli_writes_table_json_and_plot(shipped_h5, tmp_path, capsys):
    assert main(["loihi-report", str(shipped_h5), "--out", str(tmp_path / "fit")]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "fit" / "loihi.json").read_text())
    assert saved["totals"] == loihi_report(read_graph(shipped_h5)).totals
    assert saved["limits"]["neurons_per_core"] == {"value": 4096, "source": LIMITS["neurons_per_core"].source,
                                                   "estimate": True}
    table = (tmp_path / "fit" / "loihi.txt").read_text()
    assert table.splitlines()[0] in printed and f"{saved['totals']['cores']}" in table.split("\ntotal")[1]
    assert (tmp_path / "fit" / "loihi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "fit").iterdir()) == ["loihi.json", "loihi.png", "loihi.txt"]


def test_cli_names_a_missing_file(tmp_path, capsys):
    assert main(["loihi-report", str(tmp_path / "absent.h5")]) == 2
    assert "absent.h5: no such export file" in capsys.readouterr().err


def test_lowered_report_counts_the_stock_processes(tmp_path, capsys):
    from lava_spikeformer import create_model
    from lava_spikeformer.analysis.stock_fit import stock_report
    from lava_spikeformer.config import StageConfig
    from lava_spikeformer.lava import stock
    model = create_model("meta_spikeformer_small28", timesteps=2, img_size=12, num_heads=2,
                         stages=(StageConfig("conv", 8, 1), StageConfig("transformer", 16, 1, stride=1)))
    path = model.eval().export_hdf5(tmp_path / "tiny.h5")
    graph = read_graph(path)
    report, costs = stock_report(graph), stock.cost(graph)
    assert report.totals["neurons"] == sum(c["neurons"] for c in costs.values())
    assert report.totals["synapses"] == sum(c["synapses"] for c in costs.values())
    attn = report.by_name["s1.b1.attn.branch.attn"]
    # SDSA-3, N = 6*6 = 36 tokens, D = 16, H = 2, d = 8: 2 H N d^2 + H d^2 lowering neurons, 6 H N d^2 synapses
    assert (attn.extra_neurons, attn.extra_synapses) == (2 * 2 * 36 * 64 + 2 * 64, 6 * 2 * 36 * 64)
    assert attn.processes["ProdNeuron"] == 1 and attn.latency == 4
    assert set(report.totals) >= {"processes_LIF", "processes_Sparse", "processes_GradedVec", "cores", "chips"}
    assert main(["loihi-report", str(path), "--lowered", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "lava.proc processes:" in out and "SDSA lowering adds 9,344 neurons" in out
    assert (tmp_path / "r" / "loihi_stock.json").is_file()
