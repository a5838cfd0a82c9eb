"""NIR export and import (``interop/nir.py``): the fully-CNN Meta-SpikeFormer goes through a NIR file and
back bit for bit, an independent consumer (snnTorch's own NIR importer) runs our file and reproduces the
float model step by step, SDSA is refused by name, and ``lava-spikeformer export --nir`` writes both files."""
import contextlib
import io

import nir
import numpy as np
import pytest
import torch
from snntorch import utils as snn_utils
from snntorch.import_nir import import_from_nir

from lava_spikeformer import create_model
from lava_spikeformer.cli import main
from lava_spikeformer.fileio import check_seal
from lava_spikeformer.graph import ExportError, read_graph, simulate
from lava_spikeformer.interop.nir import read_nir, write_nir
from lava_spikeformer.nn.fold import to_graph
from lava_spikeformer.training.checkpoint import save_checkpoint

from .conftest import randomize_bn

T = 4
SNNTORCH_DT = 1e-4            # snnTorch's importer assumes NIR time constants in seconds at this step


def fully_cnn(*ablations):
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_small28", ablations=["fully_cnn", *ablations], timesteps=T)
    return randomize_bn(model).eval()


def images(n=2):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def assert_same_graph(a, b):
    assert (a.output, a.timesteps, a.static_input, a.model_config, a.input_spec) == \
           (b.output, b.timesteps, b.static_input, b.model_config, b.input_spec)
    assert [n.name for n in a] == [n.name for n in b]
    for x, y in zip(a, b):
        assert (x.op, x.inputs, x.shape, x.block, x.attrs) == (y.op, y.inputs, y.shape, y.block, y.attrs), x.name
        assert [type(v) for v in x.attrs.values()] == [type(v) for v in y.attrs.values()], x.name
        assert x.params.keys() == y.params.keys(), x.name
        for key, value in x.params.items():
            assert value.dtype == y.params[key].dtype and np.array_equal(value, y.params[key]), (x.name, key)


def test_round_trip_is_bit_identical(tmp_path):
    model = fully_cnn()
    graph = to_graph(model)
    back = read_nir(write_nir(model, tmp_path / "model.nir"))
    assert_same_graph(graph, back)
    x = images().double().numpy()
    lifs = [n.name for n in graph if n.op == "lif"]
    ours, theirs = simulate(graph, x, probes=lifs), simulate(back, x, probes=lifs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert 0 < ours["head.lif"].mean() < 1                       # the spikes compared are not trivial


def test_our_nir_files_are_sealed_and_damage_is_refused(tmp_path):
    """Sealed as our exports are (NIR readers skip the user block: the tests around this one read the
    same files with nir and snnTorch); a flipped byte is refused before libhdf5 parses the file."""
    path = write_nir(fully_cnn(), tmp_path / "model.nir")
    assert check_seal(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=rf"^{path}: damaged: its bytes no longer match the SHA-256"):
        read_nir(path)


def test_file_maps_ops_onto_nir_nodes(tmp_path):
    """Sums are edges into their readers; the mean is a whole-map AvgPool2d + Flatten; LIF is r=1, v_leak=0."""
    graph = to_graph(fully_cnn())
    g = nir.read(write_nir(graph, tmp_path / "model.nir"), type_check=False)   # depthwise convs: see nir.py
    assert not any(n.op == "add" and n.name in g.nodes for n in graph)
    assert {a for a, b in g.edges if b == "s0.b1.channel_conv.lif"} == {"s0.down.conv", "s0.b1.sepconv.branch.pw2"}
    pool = g.nodes["head.mean.pool"]
    assert isinstance(pool, nir.AvgPool2d) and list(pool.kernel_size) == list(pool.stride) == [7, 7]
    assert isinstance(g.nodes["head.mean"], nir.Flatten) and isinstance(g.nodes["head.fc"], nir.Affine)
    lif = g.nodes["head.lif"]
    assert (lif.tau == 2).all() and (lif.r == 1).all() and (lif.v_leak == 0).all() and (lif.v_threshold == 1).all()
    assert ("head.fc", "output") in g.edges


def test_snntorch_import_equals_float_model(tmp_path):
    """snnTorch 1.0.0's own ``import_from_nir`` runs our file; its per-step logits equal our float64
    reference and the PyTorch model within atol 1e-5 (float32; measured ~5e-8). Where conventions differ:

    * time: our file's unit is one timestep (dt = 1); snnTorch's importer fixes dt = 1e-4 s
      (``beta = 1 - dt/tau``, input scale ``r dt/tau`` folded into the threshold), so every ``tau`` is
      scaled by 1e-4 before the import: ``beta = 0.5``, threshold 2, snnTorch's membrane is ``tau * h``;
    * firing: snnTorch (like NIR's LIF) fires on ``mem > threshold``, ours on ``h >= threshold``: only a
      membrane exactly at threshold differs (none here); its ``reset_mechanism="zero"``,
      ``reset_delay=False`` is our hard reset;
    * NIR's ``Flatten(start_dim=0)`` counts unbatched dims, snnTorch applies it as ``torch.nn.Flatten(0)``
      to a batch, merging the batch axis: samples go in one at a time;
    * grouped (depthwise) convs: snnTorch builds ``Conv2d(in_channels=weight.shape[1], groups=g)``,
      which torch refuses, so this uses the ``remove_sepconv`` ablation (3x3 convs, residual sums, head).
    """
    model = fully_cnn("remove_sepconv")
    graph = to_graph(model)
    nir_graph = nir.read(write_nir(model, tmp_path / "model.nir"))
    for node in nir_graph.nodes.values():
        if isinstance(node, nir.LIF):
            node.tau = node.tau * SNNTORCH_DT
    with contextlib.redirect_stdout(io.StringIO()):              # the importer prints its weight scaling
        net = import_from_nir(nir_graph)
    x = images(3)
    steps = np.zeros((T, len(x), 10), dtype=np.float32)
    with torch.no_grad():
        for b in range(len(x)):
            snn_utils.reset(net)
            state = None
            for t in range(T):
                out, state = net(x[b:b + 1], state)
                steps[t, b] = out.numpy()
        logits = model(x).numpy()
    reference = simulate(graph, x.double().numpy())[graph.output]
    np.testing.assert_allclose(steps, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(steps.mean(0), logits, rtol=0, atol=1e-5)
    assert np.abs(steps).max() > 0.05                            # logits well above the tolerance


def test_sdsa_is_refused_by_name(tmp_path):
    model = create_model("meta_spikeformer_small28", timesteps=T).eval()
    with pytest.raises(ExportError, match=r"node 's2\.b1\.attn\.branch\.attn' \(sdsa\).*ablations=\['fully_cnn'\]"):
        write_nir(model, tmp_path / "model.nir")
    assert not list(tmp_path.iterdir())


def test_cli_export_writes_hdf5_and_nir(tmp_path, capsys):
    ckpt, h5, nir_file = tmp_path / "model.pt", tmp_path / "model.h5", tmp_path / "model.nir"
    save_checkpoint(ckpt, fully_cnn())
    assert main(["export", str(ckpt), "--out", str(h5), "--nir", str(nir_file)]) == 0
    assert_same_graph(read_graph(h5), read_nir(nir_file))
    assert "NIR graph" in capsys.readouterr().out
