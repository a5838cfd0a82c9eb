"""Every registered op is complete everywhere: HDF5 round trip, reference simulator (float and
integer), a Lava binding, and both Lava tags equal to the simulator. Adding an op to
``graph.ops.OPS`` without an example here fails ``test_every_op_has_an_example``."""
import numpy as np
import pytest

from lava_spikeformer.graph import OPS, Graph, GraphError, Node, read_graph, simulate, write_graph
from lava_spikeformer.lava.bindings import BINDINGS
from lava_spikeformer.lava.run import run_network

C, H, W = 4, 6, 6


def _conv(name, src, rng, c_in=C, c_out=C, groups=1, spikes=False):
    w = rng.normal(0, 0.6 if spikes else 0.4, (c_out, c_in // groups, 3, 3))
    return Node(name, "conv", (src,), (c_out, H, W), {"weight": w, "bias": rng.normal(0, 0.2, c_out)},
                {"stride": 1, "padding": 1, "groups": groups}, block="b0")


def _lif(name, src, shape=(C, H, W)):
    return Node(name, "lif", (src,), shape, attrs={"threshold": 1.0, "tau": 2.0}, block="b0")


def _head(src, rng, shape):
    mean = Node("head.mean", "mean", (src,), (shape[0],), block="head")
    fc = Node("head.fc", "dense", ("head.mean",), (3,), {"weight": rng.normal(0, 1, (3, shape[0])),
                                                         "bias": rng.normal(0, 0.1, 3)}, block="head")
    return [mean, fc]


def _example(op: str, rng) -> Graph:
    """A small graph exercising ``op`` (the node named 'x'), with a mean + dense head."""
    inp = Node("input", "input", (), (C, H, W))
    if op == "conv":
        nodes = [inp, _conv("x", "input", rng), _lif("l", "x")]
    elif op in ("lif", "add", "delay"):
        body = {"lif": [_lif("x", "c")],
                "add": [_lif("s", "c"), _conv("c2", "s", rng, spikes=True),
                        Node("x", "add", ("c", "c2"), (C, H, W), block="b0")],
                "delay": [Node("x", "delay", ("c",), (C, H, W), attrs={"steps": 2}, block="b0")]}[op]
        nodes = [inp, _conv("c", "input", rng), *body]
    elif op == "sdsa":
        nodes = [inp, _conv("c", "input", rng), _lif("l", "c")]
        for key in "qkv":
            nodes += [_conv(key, "l", rng, spikes=True), _lif(f"{key}_lif", key)]
        nodes.append(Node("x", "sdsa", ("q_lif", "k_lif", "v_lif"), (C, H, W), {"scale": np.array([0.5, 0.25])},
                          {"variant": 3, "heads": 2, "threshold": 0.5, "tau": 2.0}, block="b0"))
    elif op == "mean":
        nodes = [inp, _conv("c", "input", rng), Node("x", "mean", ("c",), (C,), block="head")]
        fc = Node("head.fc", "dense", ("x",), (3,), {"weight": rng.normal(0, 1, (3, C))}, block="head")
        return Graph((*nodes, fc), "head.fc", 3, True)
    elif op == "dense":
        nodes = [inp, _conv("c", "input", rng), Node("head.mean", "mean", ("c",), (C,), block="head"),
                 Node("x", "dense", ("head.mean",), (3,), {"weight": rng.normal(0, 1, (3, C)),
                                                           "bias": rng.normal(0, 0.1, 3)}, block="head")]
        return Graph(tuple(nodes), "x", 3, True)
    else:
        raise KeyError(op)
    return Graph((*nodes, *_head(nodes[-1].name, rng, (C, H, W))), "head.fc", 3, True)


EXAMPLES = [op for op in OPS if op != "input"]


def test_every_op_has_an_example_and_a_lava_binding():
    rng = np.random.default_rng(0)
    for op in EXAMPLES:
        graph = _example(op, rng)
        assert graph.by_name["x"].op == op
        assert op in BINDINGS, f"op {op!r} has no Lava binding (lava/bindings.py)"
    assert set(BINDINGS) == set(EXAMPLES)


@pytest.mark.parametrize("op", EXAMPLES)
def test_op_round_trips_simulates_and_runs_on_both_lava_tags(op, tmp_path):
    rng = np.random.default_rng(1)
    graph = _example(op, rng)
    back = read_graph(write_graph(graph, tmp_path / f"{op}.h5"))
    for a, b in zip(graph.nodes, back.nodes):
        assert (a.name, a.op, a.inputs, a.shape, a.block) == (b.name, b.op, b.inputs, b.shape, b.block)
        assert dict(a.attrs) == dict(b.attrs)
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    x = rng.normal(0, 1, (2, C, H, W))
    for precision, tag in (("float", "floating_pt"), ("fixed", "fixed_pt")):
        ref = simulate(back, x, probes=["x"], precision=precision)
        assert np.abs(ref["x"]).sum() > 0, f"{op}: the example is silent in {precision}"
        lava = run_network(back, x, granularity="fine", tag=tag, probes=["x"])
        for name in ("x", back.output):
            if precision == "float":
                np.testing.assert_allclose(lava[name], ref[name], rtol=0, atol=1e-12, err_msg=f"{op} {name}")
            else:
                np.testing.assert_array_equal(lava[name], ref[name], err_msg=f"{op} {name}")


def test_validation_reads_the_registry():
    rng = np.random.default_rng(2)
    graph = _example("sdsa", rng)
    nodes = list(graph.nodes)
    i = [n.name for n in nodes].index("x")
    for attrs, message in (({"variant": 9}, "variant must be 1, 2, 3 or 4"), ({"heads": 0}, "heads=0 must be >= 1"),
                           ({"heads": 3}, "heads=3 must be >= 1 and divide")):
        bad = Node("x", "sdsa", nodes[i].inputs, nodes[i].shape, nodes[i].params, {**nodes[i].attrs, **attrs})
        with pytest.raises(GraphError, match=message):
            Graph((*nodes[:i], bad, *nodes[i + 1:]), graph.output, 3, True)
    with pytest.raises(GraphError, match="unknown op"):
        Graph((*nodes[:i], Node("x", "pool", nodes[i].inputs[:1], nodes[i].shape), *nodes[i + 1:]), graph.output, 3, True)
