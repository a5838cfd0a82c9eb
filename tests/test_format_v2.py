"""Export format v2: the file holds the integers a chip holds; float parameters optional; version 1
files still load; a hostile integer field is one clear error."""
import h5py
import numpy as np
import pytest

from lava_spikeformer import create_model
from lava_spikeformer.cli import main
from lava_spikeformer.graph import ExportError, GraphError, fixed, read_graph, simulate
from lava_spikeformer.nn.fold import export_hdf5, to_graph
from lava_spikeformer.training.checkpoint import save_checkpoint

from .conftest import edited_export, randomize_bn


@pytest.fixture(scope="module")
def model():
    return randomize_bn(create_model("meta_spikeformer_small28", ablations=("sdsa4",), timesteps=2)).eval()


def test_v2_stores_the_integers_lavas_processes_take(model, tmp_path):
    graph = to_graph(model)
    path = export_hdf5(model, tmp_path / "m.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["version"] == 2 and f.attrs["float_params"]
        layers = {f["layer"][k]["name"][()].decode(): f["layer"][k] for k in f["layer"]}
        conv = layers["s0.down.conv"]
        m, e = fixed.quantize_weight(graph.by_name["s0.down.conv"].params["weight"])
        assert conv["weight_mant"].dtype == np.int8 and conv["weight_exp"].dtype == np.int8
        np.testing.assert_array_equal(conv["weight_mant"][()], m)
        np.testing.assert_array_equal(conv["weight_exp"][()], e)
        assert conv["num_message_bits"][()] == 24                          # the image: graded
        assert layers["s0.b1.sepconv.branch.dw"]["num_message_bits"][()] == 0   # after a LIF: spikes
        lif = layers["s0.b1.sepconv.branch.lif"]["neuron"]
        assert (lif["vth"][()], lif["dv"][()], lif["du"][()], lif["bias_mant"][()]) == (128, 2048, 4095, 1)
        attn = layers["s2.b1.attn.branch.attn"]
        np.testing.assert_array_equal(attn["scale_mant"][()] << attn["scale_exp"][()],
                                      fixed.quantized_integer(fixed.quantize_input(
                                          graph.by_name["s2.b1.attn.branch.attn"].params["scale"])))


def test_integers_only_file_runs_the_same_integer_network(model, tmp_path):
    full = export_hdf5(model, tmp_path / "full.h5")
    small = export_hdf5(model, tmp_path / "int.h5", integers_only=True)
    assert small.stat().st_size * 4 < full.stat().st_size
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28))
    a, b = read_graph(full), read_graph(small)
    assert a.float_params and not b.float_params
    names = [n.name for n in a.nodes if n.spec.output == "spikes"]
    ref, got = simulate(a, x, probes=names, precision="fixed"), simulate(b, x, probes=names, precision="fixed")
    for name in names + [a.output]:
        np.testing.assert_array_equal(ref[name], got[name], err_msg=name)
    with pytest.raises(GraphError, match="holds integers only"):
        simulate(b, x)


def test_builders_take_the_files_integers_as_stored(model, tmp_path):
    """Nothing is re-quantized at load: an integers-only file whose first conv stores channel 0 as
    mantissas 2 with exponent 3 (0.25 each; re-quantizing would give 64 with exponent 8) reaches the
    integer reference, lava-nc's Sparse synapses and our fixed_pt Conv Vars as stored; the values,
    and so every output, equal those of the re-quantized encoding."""
    from lava_spikeformer.lava import stock
    from lava_spikeformer.lava.bindings import BuildContext, binding_of

    def with_channel0(name, m0, e0):
        path = export_hdf5(model, tmp_path / name, integers_only=True)
        with edited_export(path) as f:
            conv = next(f["layer"][k] for k in f["layer"] if f["layer"][k]["name"][()] == b"s0.down.conv")
            mant, exp = conv["weight_mant"][()], conv["weight_exp"][()]
            mant[0], exp[0] = m0, e0
            conv["weight_mant"][...], conv["weight_exp"][...] = mant, exp
        return read_graph(path)

    graph, requantized = with_channel0("stored.h5", 2, 3), with_channel0("requantized.h5", 64, 8)
    node = graph.by_name["s0.down.conv"]
    assert fixed.quantize_weight(node.params["weight"])[1][0] == 8            # what re-quantizing would give
    ints = fixed.node_integers(node)
    assert (ints["weight_mant"][0] == 2).all() and ints["weight_exp"][0] == 3
    plan = stock.lower(graph)
    rows = node.shape[1] * node.shape[2]                                     # channel 0's output neurons
    weights = {(syn.exp, int(v)) for syn in plan.synapses if syn.node == node.name and syn.src != plan.valid
               for v in np.unique(syn.matrix[:rows].data)}
    assert weights == {(-3, 2)}                                              # graded input: floor(2x * 2**-3)
    ctx = BuildContext(shape_in=(1, *graph.input.shape), valid_from=0, active_steps=0, spike_input=False)
    proc = binding_of(node).build(node, ctx)
    assert (proc.weight_mant.init[0] == 2).all() and proc.weight_exp.init[0] == 3
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28))
    np.testing.assert_array_equal(simulate(graph, x, precision="fixed")[graph.output],
                                  simulate(requantized, x, precision="fixed")[graph.output])


def test_version_1_files_still_load(model, tmp_path):
    """A v1 file is a v2 file without the integer fields (and without ``float_params``)."""
    path = export_hdf5(model, tmp_path / "m.h5")
    with edited_export(path) as f:
        f.attrs["version"] = 1
        del f.attrs["float_params"]
        for layer in f["layer"].values():
            for key in ("weight_mant", "weight_exp", "bias_mant", "bias_exp", "scale_mant", "scale_exp",
                        "num_message_bits", "neuron/vth", "neuron/dv", "neuron/du", "neuron/bias_mant"):
                if key in layer:
                    del layer[key]
    v1, v2 = read_graph(path), to_graph(model)
    assert v1.float_params
    x = np.random.default_rng(1).normal(size=(2, 1, 28, 28))
    np.testing.assert_array_equal(simulate(v1, x, precision="fixed")[v1.output],
                                  simulate(v2, x, precision="fixed")[v2.output])


@pytest.mark.parametrize("field,value,message", [
    ("weight_mant", lambda v: v.astype(np.float64), "must hold integers"),
    ("weight_exp", lambda v: np.full_like(v, 40), "exponents must lie in -8..24"),
    ("weight_mant", lambda v: (v.astype(np.int16) * 3), "8-bit mantissas must lie in -128..127|does not match"),
    ("weight_mant", lambda v: np.roll(v, 1), "does not match the float 'weight'"),
])
def test_a_bad_integer_field_is_one_clear_error(model, tmp_path, field, value, message):
    path = export_hdf5(model, tmp_path / "m.h5")
    with edited_export(path) as f:
        g = f["layer"]["1"]
        data = value(g[field][()])
        del g[field]
        g.create_dataset(field, data=data)
    with pytest.raises(ExportError, match=rf"layer/1/{field}: ({message})"):
        read_graph(path)


def test_cli_export_integers_only_and_never_over_its_input(model, tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.h5"), "--integers-only"]) == 0
    assert "format v2 (integers only)" in capsys.readouterr().out
    assert not read_graph(tmp_path / "m.h5").float_params
    before = ckpt.read_bytes()
    assert main(["export", str(ckpt), "--out", str(ckpt)]) == 2
    assert "is the input" in capsys.readouterr().err and ckpt.read_bytes() == before
