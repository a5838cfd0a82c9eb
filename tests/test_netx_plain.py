"""Plain netx export: a sequential Meta-SpikeFormer (all stages of depth 0) written in netx's own
schema, built by lava-dl's unchanged ``netx.hdf5.Network`` and run on Lava ``fixed_pt``, equals the
float64 reference of its netx layers bit for bit; graphs netx cannot express are refused by name."""
import dataclasses

import h5py
import numpy as np
import pytest
import torch
from lava.lib.dl.netx import hdf5
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.monitor.process import Monitor

from lava_spikeformer import StageConfig, create_model
from lava_spikeformer.training.checkpoint import save_checkpoint
from lava_spikeformer.cli import main
from lava_spikeformer.fileio import check_seal
from lava_spikeformer.graph import ExportError, simulate
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.interop.netx_plain import equivalent_graph, netx_layers, write_netx
from lava_spikeformer.lava.run import running

T = 4
SEQUENTIAL = (StageConfig("conv", 8, 0), StageConfig("conv", 16, 0), StageConfig("conv", 16, 0))   # 16 -> 8 -> 4 -> 2


def sequential_model(shortcut: str, seed: int = 0):
    """Depth-0 stages on 2x16x16 inputs; BatchNorm and classifier set so that every layer fires."""
    torch.manual_seed(seed)
    model = create_model("meta_spikeformer_small28", stages=SEQUENTIAL, img_size=16, in_channels=2,
                         timesteps=T, shortcut=shortcut)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 1.0)
                m.bias.copy_(torch.randn(c, generator=g) * 0.5 + 0.8)
        model.head.fc.weight.copy_(torch.randn(model.head.fc.weight.shape, generator=g) * 0.5)
        model.head.fc.bias.copy_(torch.randn(model.head.fc.bias.shape, generator=g) * 0.3)
    return model.eval()


def images(n: int, seed: int = 1) -> np.ndarray:
    """Images on the 1/64 grid (what the graded input messages carry), each with its own offset."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, 2, 16, 16)) + rng.uniform(-0.5, 1.0, (n, 1, 1, 1))
    return np.round(x * 64) / 64


@pytest.mark.parametrize("shortcut, ops, layers, file_types", [
    ("ms", ["input", "conv", "lif", "conv", "lif", "conv", "mean", "lif", "dense"],
     [("conv", (8, 8, 8)), ("conv", (16, 4, 4)), ("dense", (16,)), ("dense", (10,))],
     ["input", "conv", "conv", "flatten", "dense", "dense"]),
    ("sew", ["input", "conv", "lif", "conv", "lif", "conv", "lif", "mean", "dense"],
     [("conv", (8, 8, 8)), ("conv", (16, 4, 4)), ("conv", (16, 2, 2)), ("dense", (10,))],
     ["input", "conv", "conv", "conv", "flatten", "dense"]),
])
def test_sequential_model_is_a_chain_written_as_netx_layers(tmp_path, shortcut, ops, layers, file_types):
    graph = to_graph(sequential_model(shortcut))
    assert [n.op for n in graph.nodes] == ops
    assert [(layer.kind, layer.shape) for layer in netx_layers(graph)] == layers
    path = write_netx(graph, tmp_path / "seq.h5")
    assert check_seal(path)                                  # sealed; lava-dl's netx reads it below all the same
    with h5py.File(path, "r") as f:
        types = [f["layer"][str(i)]["type"][()].decode() for i in range(len(f["layer"]))]
        assert types == file_types
        neuron = f["layer/1/neuron"]
        assert (neuron["type"][()], neuron["iDecay"][()], neuron["vDecay"][()]) == (b"CUBA", 4096, 2048)
        assert f["layer"][str(len(types) - 1)]["neuron/vDecay"][()] == 0          # the readout accumulates
        for i in range(1, len(types)):
            group = f["layer"][str(i)]
            if "weight" in group:
                assert np.abs(group["weight"][()]).max() <= 127 and np.abs(group["bias"][()]).max() <= 4095
                assert group["weight"].dtype.kind == "i"
    net = hdf5.Network(net_config=str(path), input_message_bits=16, reset_interval=T, reset_offset=1)
    assert [type(layer).__name__ for layer in net.layers] == [k.capitalize() for k, _ in layers]
    assert net.inp.shape == (16, 16, 2) and net.out.shape == (10,)


@pytest.mark.parametrize("shortcut", ["ms", "sew"])
def test_merged_netx_layers_equal_the_graph_and_quantization_costs_few_spikes(shortcut):
    graph = to_graph(sequential_model(shortcut))
    x = images(16)
    lifs = [n.name for n in graph.nodes if n.op == "lif"]
    reference = simulate(graph, x, probes=lifs)
    merged, quantized = (equivalent_graph(graph, quantized=q) for q in (False, True))
    names = [n.name for n in merged.nodes if n.op == "lif"]
    assert [name.split("+")[-1] for name in names] == lifs
    out_merged = simulate(merged, x, probes=names)
    out_quantized = simulate(quantized, x, probes=names)
    for name, lif in zip(names, lifs):
        assert 0.05 < reference[lif].mean() < 0.5
        np.testing.assert_array_equal(out_merged[name], reference[lif])
        assert (out_quantized[name] == reference[lif]).mean() > 0.95
    np.testing.assert_allclose(out_merged[merged.output], reference[graph.output], rtol=0, atol=1e-12)


def with_thresholds_lowered(graph, by: float):
    nodes = tuple(dataclasses.replace(n, attrs={**n.attrs, "threshold": n.attrs["threshold"] - by})
                  if n.op == "lif" else n for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)


def run_netx_fixed(path, x: np.ndarray):
    """Stream the images (T steps each, back to back) through netx's Network on Lava fixed_pt; returns
    the spikes of every layer but the readout (Lava layout, steps last), the readout voltage per step
    and the network's output spikes."""
    net = hdf5.Network(net_config=str(path), input_message_bits=16, reset_interval=T, reset_offset=1)
    steps = len(x) * T + len(net.layers)
    frames = np.zeros((*net.inp.shape, steps), dtype=np.int64)
    for b, image in enumerate(np.round(x * 64).astype(np.int64)):
        frames[..., b * T:(b + 1) * T] = image.transpose(2, 1, 0)[..., None]          # CHW -> (x, y, c)
    source = Source(data=frames)
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers[:-1]:
        sinks.append(Sink(shape=layer.out.shape, buffer=steps))
        layer.out.connect(sinks[-1].a_in)
    out = Sink(shape=net.out.shape, buffer=steps)
    net.out.connect(out.a_in)
    monitor = Monitor()
    monitor.probe(net.layers[-1].neuron.v, steps)
    with running(net, steps, "fixed_pt"):
        spikes = [s.data.get() for s in sinks]
        (readout_v,) = [v for per_proc in monitor.get_data().values() for v in per_proc.values()]
        out_spikes = out.data.get()
    return spikes, readout_v, out_spikes


@pytest.mark.parametrize("shortcut", ["ms", "sew"])
def test_netx_network_on_lava_fixed_pt_equals_reference_bit_for_bit(tmp_path, shortcut):
    graph = to_graph(sequential_model(shortcut))
    layers = netx_layers(graph)
    path = write_netx(graph, tmp_path / "seq.h5")
    x = images(2)
    reference_graph = equivalent_graph(graph)
    lifs = [n.name for n in reference_graph.nodes if n.op == "lif"]
    reference = simulate(reference_graph, x, probes=lifs)
    at_or_above = simulate(with_thresholds_lowered(reference_graph, 1 / 128), x, probes=lifs)   # V >= vThMant
    assert sum(int((at_or_above[n] != reference[n]).sum()) for n in lifs) > 0     # membranes land on vThMant
    spikes, readout_v, out_spikes = run_netx_fixed(path, x)
    for i, (name, lava) in enumerate(zip(lifs, spikes)):
        assert reference[name].mean() > 0.02
        for b in range(len(x)):
            start = b * T + i + 1                            # layer i sees timestep 0 at Lava step i + 2
            got = np.moveaxis(lava[..., start:start + T], -1, 0)
            if got.ndim == 4:
                got = got.transpose(0, 3, 2, 1)              # (x, y, c) -> (c, y, x)
            np.testing.assert_array_equal(got, reference[name][:, b], err_msg=f"{name}, image {b}")
    assert not out_spikes.any()                              # the readout never fires
    scale = layers[-1].scale * 64
    with h5py.File(path, "r") as f:
        assert f.attrs["output_scale"] == scale and f.attrs["latency"] == len(layers)
    for b in range(len(x)):
        start = b * T + len(layers)
        v = readout_v[start:start + T]                       # reset at the sample's first step, then sums
        per_step = np.diff(v, axis=0, prepend=0) / scale
        np.testing.assert_array_equal(per_step, reference[reference_graph.output][:, b])
        np.testing.assert_array_equal(v[-1] / (scale * T), reference[reference_graph.output][:, b].mean(0))


def test_netx_has_no_floating_point_models(tmp_path):
    path = write_netx(sequential_model("ms"), tmp_path / "seq.h5")
    net = hdf5.Network(net_config=str(path), input_message_bits=16)
    with pytest.raises(AssertionError, match="No ProcessModels found with tag 'floating_pt'"):
        with running(net, 1, "floating_pt"):
            pass


def test_non_sequential_model_is_refused_naming_the_first_node(tmp_path):
    model = create_model("meta_spikeformer_small28").eval()
    with pytest.raises(ExportError, match=r"node 's0\.b1\.sepconv\.add' \(add\): plain netx has no residual "
                                          r"\(membrane-shortcut\) sum; export the full graph with export_hdf5"):
        write_netx(model, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ValueError, match="export format must be 'lava-spikeformer' or 'netx', got 'nxt'"):
        model.export_hdf5(tmp_path / "x.h5", format="nxt")


def test_cli_export_netx(tmp_path, capsys):
    checkpoint = tmp_path / "seq.pt"
    save_checkpoint(checkpoint, sequential_model("ms"))
    out = tmp_path / "seq.h5"
    assert main(["export", str(checkpoint), "--out", str(out), "--netx"]) == 0
    assert f"reset_interval={T}, reset_offset=1" in capsys.readouterr().out
    assert len(hdf5.Network(net_config=str(out), input_message_bits=16).layers) == 4
    checkpoint_small = tmp_path / "small.pt"
    save_checkpoint(checkpoint_small, create_model("meta_spikeformer_small28"))
    assert main(["export", str(checkpoint_small), "--out", str(tmp_path / "s.h5"), "--netx"]) == 2
    assert "plain netx has no residual" in capsys.readouterr().err
