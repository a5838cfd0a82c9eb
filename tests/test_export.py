"""Export: folding equals the PyTorch model (float64), the HDF5 round trip, and one clear error per defect."""
import h5py
import numpy as np
import pytest
import torch

from lava_spikeformer import create_model
from lava_spikeformer.fileio import USER_BLOCK, check_seal
from lava_spikeformer.graph import ExportError, read_graph, simulate
from lava_spikeformer.nn.fold import export_hdf5, to_graph
from lava_spikeformer.graph import GraphError

from .conftest import edited_export, randomize_bn, torch_run


VARIANTS = [(), ("sdsa1",), ("sdsa2",), ("sdsa4",), ("vs_shortcut",), ("sew_shortcut",), ("linear_qkv", "linear_proj"),
            ("channel_mlp",), ("remove_sepconv",)]


@pytest.mark.parametrize("ablations", VARIANTS, ids=lambda a: "+".join(a) or "reference")
def test_folded_graph_equals_torch_float64(ablations):
    torch.manual_seed(0)
    model = randomize_bn(create_model("meta_spikeformer_small28", ablations=ablations, timesteps=4)).double().eval()
    graph = to_graph(model)
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64) * 2
    compare = [n.name for n in graph.nodes if n.op == "lif" or (n.op == "sdsa" and n.attrs["variant"] >= 3)]
    logits, spikes = torch_run(model, x, compare)
    ref = simulate(graph, x.numpy(), probes=compare)
    np.testing.assert_allclose(ref[graph.output].mean(0), logits, rtol=1e-9, atol=1e-9)
    for name in compare:
        np.testing.assert_array_equal(ref[name], spikes[name], err_msg=name)
    rates = [ref[n].mean() for n in compare]
    assert max(rates) > 0.01, "the comparison is vacuous if nothing spikes"


def test_kd_head_folds_to_the_mean_of_both_heads():
    torch.manual_seed(1)
    model = create_model("meta_spikeformer_small28", kd_head=True).double().eval()
    graph = to_graph(model)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(simulate(graph, x.numpy())[graph.output].mean(0), expected, rtol=1e-9, atol=1e-12)


def test_repconv_folds_into_one_3x3_conv():
    model = randomize_bn(create_model("meta_spikeformer_small28")).eval()
    graph = to_graph(model)
    q = graph.by_name["s2.b1.attn.branch.q"]
    assert q.op == "conv" and q.params["weight"].shape == (128, 128, 3, 3) and q.attrs["padding"] == 1
    assert len(graph.nodes) == 1 + 1 + 11 + 2 + 11 + 2 + 2 * 15 + 3     # input, stages, head


def test_export_does_not_modify_the_model(tmp_path):
    model = randomize_bn(create_model("meta_spikeformer_small28")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.export_hdf5(tmp_path / "m.h5")
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_hdf5_round_trip_is_exact(tmp_path):
    model = randomize_bn(create_model("meta_spikeformer_small28", ablations=("sdsa4",))).eval()
    graph = to_graph(model)
    path = export_hdf5(model, tmp_path / "m.h5")
    back = read_graph(path)
    assert [n.name for n in back] == [n.name for n in graph]
    assert back.latency == graph.latency and back.timesteps == graph.timesteps and back.output == graph.output
    for a, b in zip(graph, back):
        assert (a.op, a.inputs, a.shape, dict(a.attrs)) == (b.op, b.inputs, b.shape, dict(b.attrs)), a.name
        assert a.params.keys() == b.params.keys()
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    with h5py.File(path) as f:                           # netx's layer layout and neuron fields
        assert f["layer/0/type"][()] == b"input"
        assert f["layer/1/type"][()] == b"conv"
        assert f["layer/1/weight"].shape == (32, 1, 3, 3)
        lif = next(k for k in f["layer"] if f[f"layer/{k}/type"][()] == b"lif")
        assert f[f"layer/{lif}/neuron/vThMant"][()] == 128 and f[f"layer/{lif}/neuron/vDecay"][()] == 2048


@pytest.fixture
def export_file(tmp_path):
    return export_hdf5(create_model("meta_spikeformer_small28").eval(), tmp_path / "m.h5")


def test_truncated_file_names_the_file(export_file):
    data = export_file.read_bytes()
    export_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=rf"{export_file}: damaged: .*\(truncated"):
        read_graph(export_file)


@pytest.mark.parametrize("where", [0.0, 0.3, 0.7, 1.0])
def test_a_flipped_bit_anywhere_is_refused_before_hdf5_parses_the_file(export_file, where):
    """libhdf5 can crash the interpreter on a damaged file, or hand back a weight changed in its low
    bits that still quantizes alike; the seal catches both first."""
    data = bytearray(export_file.read_bytes())
    data[USER_BLOCK + round(where * (len(data) - USER_BLOCK - 1))] ^= 0x01
    export_file.write_bytes(data)
    with pytest.raises(ExportError, match=rf"{export_file}: damaged: its bytes no longer match the SHA-256"):
        read_graph(export_file)


def test_unsealed_files_still_load_and_are_still_validated(export_file):
    """Exports from before the seal, and files of other tools, carry no tag: they load as before, and a
    truncated one is still the reader's own error."""
    sealed = read_graph(export_file)
    data = bytearray(export_file.read_bytes())
    data[:USER_BLOCK] = bytes(USER_BLOCK)
    export_file.write_bytes(data)
    assert check_seal(export_file) is False
    assert [n.name for n in read_graph(export_file)] == [n.name for n in sealed]
    export_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=rf"{export_file}: not a readable HDF5 file \(truncated or corrupt"):
        read_graph(export_file)


def test_missing_field_names_the_group(export_file):
    with edited_export(export_file) as f:
        del f["layer/1/weight"]
    with pytest.raises(ExportError, match=r"layer/1/weight: missing"):
        read_graph(export_file)


def test_nan_weight_is_rejected(export_file):
    with edited_export(export_file) as f:
        w = f["layer/1/weight"][()]
        w[0, 0, 0, 0] = np.nan
        f["layer/1/weight"][...] = w
    with pytest.raises(ExportError, match=r"layer/1/weight: holds NaN or inf"):
        read_graph(export_file)


def test_wrong_shape_is_rejected(export_file):
    with edited_export(export_file) as f:
        del f["layer/1/weight"]
        f["layer/1/weight"] = np.zeros((32, 2, 3, 3))
    with pytest.raises(ExportError, match=r"node 's0.down.conv' \(conv\): weight \(32, 2, 3, 3\) does not fit"):
        read_graph(export_file)


def test_unknown_version_is_rejected(export_file):
    with edited_export(export_file) as f:
        f.attrs["version"] = 99
    with pytest.raises(ExportError, match="unsupported format version 99"):
        read_graph(export_file)


def test_missing_file_and_missing_group(tmp_path, export_file):
    with pytest.raises(ExportError, match="no such export file"):
        read_graph(tmp_path / "absent.h5")
    with edited_export(export_file) as f:
        del f["layer"]
    with pytest.raises(ExportError, match="missing group 'layer'"):
        read_graph(export_file)


def test_graph_validation_names_the_node():
    graph = to_graph(create_model("meta_spikeformer_small28").eval())
    nodes = list(graph.nodes)
    nodes[5] = type(nodes[5])(nodes[5].name, nodes[5].op, ("nowhere",), nodes[5].shape, nodes[5].params, nodes[5].attrs)
    with pytest.raises(GraphError, match=f"node '{nodes[5].name}'.*input 'nowhere' is not an earlier node"):
        type(graph)(tuple(nodes), graph.output, graph.timesteps, graph.static_input)
