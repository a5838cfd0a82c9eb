"""The ``loihi`` granularity: the whole network from lava-nc's stock processes (``lava/stock.py``),
run on Lava (fixed_pt), bit-exact with the integer reference ``simulate(..., precision='fixed')``."""
import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer

from lava_spikeformer import create_model
from lava_spikeformer.config import StageConfig
from lava_spikeformer.graph import Graph, Node, read_graph, simulate
from lava_spikeformer.lava import stock
from lava_spikeformer.lava.run import recorders, run

from .conftest import ROOT, randomize_bn

T, BATCH = 4, 16
SMALL28 = ROOT / "netx_models" / "meta_spikeformer_small28_fmnist.h5"
# the shipped model's 8 images at T=4 stream one after another: 32 + latency steps of one sample's network
SMALL28_BATCH = 8
# every SDSA variant (3 is the default) and every shortcut (ms is the default), in four models
CONFIGS = {"sdsa3_ms": [], "sdsa1_vs": ["sdsa1", "vs_shortcut"], "sdsa2_sew": ["sdsa2", "sew_shortcut"],
           "sdsa4_ms": ["sdsa4"]}


def tiny_graph(ablations) -> Graph:
    """A conv stage and a transformer stage at 12x12 (36 tokens, 16 channels, 2 heads)."""
    import torch

    from lava_spikeformer.nn.fold import to_graph
    torch.manual_seed(1)                 # the weights' init: independent of the tests that ran before
    model = create_model("meta_spikeformer_small28", ablations=ablations, timesteps=T, img_size=12, num_heads=2,
                         stages=(StageConfig("conv", 8, 1), StageConfig("transformer", 16, 1, stride=1)))
    return to_graph(randomize_bn(model, seed=1).eval())


def spiking_nodes(graph: Graph):
    return [n.name for n in graph.nodes if n.op in ("lif", "sdsa")]


def images(n: int = BATCH) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 1, 12, 12))


def assert_exact(graph: Graph, x: np.ndarray, granularity: str = "loihi") -> dict:
    probes = spiking_nodes(graph)
    ref = simulate(graph, x, probes=probes, precision="fixed")
    got = run(graph, x, granularity=granularity, tag="fixed_pt", probes=probes).outputs
    for name in probes + [graph.output]:
        assert_array_equal(got[name], ref[name], err_msg=name)
    return ref


def compiled_models(graph: Graph) -> set:
    """``module.Class`` of the ProcessModel Lava selects for every process of the built network."""
    net = stock.build_stock(graph, probes=spiking_nodes(graph)[:1])
    frames = RingBuffer(data=np.zeros((net.inp.size, 2), np.int32))
    valid = RingBuffer(data=np.ones((1, 2), np.int32))
    frames.s_out.connect(net.inp)
    valid.s_out.connect(net.valid)
    with recorders([("out", net.out), ("probe", next(iter(net.probes.values())))], 2):
        exe = frames.compile(Loihi2SimCfg(select_tag="fixed_pt"))
    assert set(net.processes) <= set(exe.process_list)
    return {f"{p.model_class.__module__}.{p.model_class.__name__}" for p in exe.process_list}


def assert_stock_only(models: set) -> None:
    outside = {m for m in models if not m.startswith("lava.proc.")} - set(stock.BOUNDARY)
    assert not outside, outside
    assert not any(m.startswith("lava.proc.conv.") for m in models)   # int8 groups bug


# ----------------------------------------------------------------------------- 1. stock processes only
def test_only_stock_process_models_tiny():
    models = set()
    for ablations in CONFIGS.values():
        models |= compiled_models(tiny_graph(ablations))
    assert_stock_only(models)
    assert {"lava.proc.sparse.models.PyDelaySparseModelBitAcc", "lava.proc.lif.models.PyLifModelBitAcc",
            "lava.proc.lif.models.PyLifResetModelBitAcc",
            "lava.proc.graded.models.PyGradedVecModelFixed",
            "lava.proc.prodneuron.models.PyProdNeuronModelFixed"} <= models


def test_only_stock_process_models_small28():
    assert_stock_only(compiled_models(read_graph(SMALL28)))


# ----------------------------------------------------------------------------- 2. bit-exact
@pytest.mark.parametrize("config", list(CONFIGS))
def test_loihi_equals_integer_reference(config):
    graph = tiny_graph(CONFIGS[config])
    assert {n.attrs["variant"] for n in graph.nodes if n.op == "sdsa"}
    ref = assert_exact(graph, images())
    silent = [name for name in spiking_nodes(graph) if not ref[name].any()]
    assert not silent, f"layers that never spike make the comparison trivial: {silent}"


def test_loihi_equals_integer_reference_small28_fmnist():
    """The shipped model on real Fashion-MNIST test images, T=4 (the export is T=1)."""
    from lava_spikeformer.data.idx import fashion_mnist_arrays
    graph = dataclasses.replace(read_graph(SMALL28), timesteps=T)
    pixels = fashion_mnist_arrays("test")[0][:SMALL28_BATCH]
    ref = assert_exact(graph, graph.input_spec.normalize(pixels[:, None]))
    assert all(ref[name].any() for name in spiking_nodes(graph))


def test_floating_pt_refused():
    with pytest.raises(ValueError, match="fixed_pt"):
        run(tiny_graph([]), images(1), granularity="loihi", tag="floating_pt")


# ----------------------------------------------------------------------------- 3. same reference as fine/fused
@pytest.mark.parametrize("granularity", ["fine", "fused"])
def test_fine_and_fused_equal_the_same_reference(granularity):
    graph = tiny_graph(CONFIGS["sdsa3_ms"])
    ref = simulate(graph, images(4), precision="fixed")
    got = run(graph, images(4), granularity=granularity, tag="fixed_pt").outputs
    assert_array_equal(got[graph.output], ref[graph.output])


# ----------------------------------------------------------------------------- 4. the weight matrices
@pytest.mark.parametrize("co,ci,k,stride,padding,groups,size", [
    (6, 4, 3, 1, 1, 1, 7), (8, 8, 3, 2, 1, 8, 9), (6, 4, 5, 2, 2, 2, 10), (4, 6, 1, 1, 0, 2, 5), (4, 2, 7, 2, 3, 2, 8)])
def test_conv_matrix_is_torch_conv2d(co, ci, k, stride, padding, groups, size):
    """Integer weights and inputs: the sparse matrix times the flattened map is torch's conv2d exactly;
    zero weights hold no entry."""
    import torch
    rng = np.random.default_rng(co * k + groups)
    w = rng.integers(-3, 4, size=(co, ci // groups, k, k))
    x = rng.integers(-5, 6, size=(ci, size, size))
    matrix = stock.conv_matrix(w, x.shape, stride, padding, groups)
    want = torch.nn.functional.conv2d(torch.from_numpy(x[None]).double(), torch.from_numpy(w).double(),
                                      stride=stride, padding=padding, groups=groups)
    assert_array_equal(matrix @ x.ravel(), want.numpy().ravel())
    assert matrix.nnz == int(np.count_nonzero(matrix.toarray())) and matrix.has_canonical_format


def test_split_rows_partitions_by_label():
    rng = np.random.default_rng(0)
    matrix = stock.conv_matrix(rng.integers(-2, 3, size=(4, 3, 3, 3)), (3, 6, 6), 1, 1, 1)
    label = np.repeat(rng.integers(0, 3, 4), 36)
    parts = stock.split_rows(matrix, label)
    assert sorted(parts) == sorted(set(label.tolist()))
    assert_array_equal(sum(parts.values()).toarray(), matrix.toarray())
    for value, part in parts.items():
        assert not part.toarray()[label != value].any()
        assert_array_equal(part.toarray()[label == value], matrix.toarray()[label == value])


# ----------------------------------------------------------------------------- 5. cost, counted by hand
def test_cost_of_one_sdsa3_by_hand():
    """q, k, v = the input's spikes (three LIFs on one conv): heads H=2, d=3 channels each, N=4x5=20 tokens.

    SDSA-3 lowering, per head h, token n, channels i, j (units U = H*N*d^2 = 360):
      neurons:  AND(k[n,i], v[n,j]) U + relay M[h,i,j] H*d^2 (18) + ProdNeuron U + attention LIF C*N (120)
                = 2*360 + 18 + 120 = 858; extra (beyond the attention LIF) 2*H*N*d^2 + H*d^2 = 738
      synapses: k fan-out U + v fan-out U + sum over n U + M fan-out U + q fan-out U + sum over i U
                = 6*H*N*d^2 = 2160 (scales 0.25 = 16/64 for both heads: one exponent, one process)
      processes: 3 neuron populations + attention LIF + 6 Sparse = 10; latency 4.
    """
    h, d, shape = 2, 3, (6, 4, 5)
    rng = np.random.default_rng(0)
    nodes = [Node("x", "input", (), shape),
             Node("c", "conv", ("x",), shape, {"weight": rng.normal(size=(6, 6, 1, 1))},
                  {"stride": 1, "padding": 0, "groups": 1})]
    nodes += [Node(s, "lif", ("c",), shape, attrs={"threshold": 1.0, "tau": 2.0}) for s in "qkv"]
    nodes += [Node("a", "sdsa", ("q", "k", "v"), shape, {"scale": np.full(h, 0.25)},
                   {"variant": 3, "heads": h, "threshold": 0.5, "tau": 2.0}),
              Node("o", "dense", ("a",), (2,), {"weight": rng.normal(size=(2, 120))})]
    graph = Graph(tuple(nodes), output="o", timesteps=1, static_input=True)
    units = h * 20 * d * d
    cost = stock.cost(graph)["a"]
    assert sum(cost.pop("processes").values()) == 10
    assert {k: cost[k] for k in ("neurons", "synapses", "latency", "extra_neurons", "extra_synapses")} == dict(
        neurons=2 * units + h * d * d + 120, synapses=6 * units, latency=4,
        extra_neurons=2 * units + h * d * d, extra_synapses=6 * units)


# ----------------------------------------------------------------------------- 6. the command line
def fitted_small_export(path, steps: int = 150):
    """A 28x28 model of two small stages (49 tokens, 2 heads), fitted for ``steps`` batches of
    Fashion-MNIST so that its decisions differ from image to image (a random one answers one class)."""
    import torch

    from lava_spikeformer.data.idx import fashion_mnist_arrays
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_small28", timesteps=1, num_heads=2,
                         stages=(StageConfig("conv", 8, 1), StageConfig("transformer", 16, 1, stride=2)))
    images, labels = fashion_mnist_arrays("train")
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    for i in range(0, 64 * steps, 64):
        x = torch.from_numpy(model.cfg.input_spec.normalize(images[i:i + 64, None])).float()
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels[i:i + 64]).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().export_hdf5(path)


def test_run_lava_cli_on_stock_processes(tmp_path, capsys):
    """``run-lava --granularity loihi``: the Fashion-MNIST images streamed through stock processes decide
    as the fused fixed_pt network and the integer reference; the per-step curve follows each sample from
    its start. The shipped model's stock build is tested above; a small export keeps this one short."""
    import json

    from lava_spikeformer.cli import main
    from lava_spikeformer.data.idx import fashion_mnist_arrays
    export, count = fitted_small_export(tmp_path / "small.h5"), 8
    graph = read_graph(export)
    images, labels = fashion_mnist_arrays("test")
    logits = simulate(graph, graph.input_spec.normalize(images[:count, None]), precision="fixed")[graph.output]
    decisions = logits.mean(0).argmax(1)
    expected = float((decisions == labels[:count]).mean())
    assert 0 < expected < 1 and len(set(decisions)) >= 3        # neither trivial nor one class for all
    results = {}
    for granularity in ("fused", "loihi"):
        assert main(["run-lava", str(export), "--granularity", granularity, "--tag", "fixed_pt", "--images",
                     str(count), "--batch", str(count)]) == 0
        results[granularity] = json.loads(capsys.readouterr().out)
    fused, loihi = results["fused"], results["loihi"]
    assert loihi["accuracy"] == fused["accuracy"] == expected
    latency = graph.timesteps + stock.lower(graph).latency
    assert len(loihi["accuracy_per_step"]) == latency
    assert loihi["accuracy_per_step"][-1] == expected and max(loihi["accuracy_per_step"][:latency - 1]) == 0
