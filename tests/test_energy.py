import numpy as np
import pytest
import torch
from torch import nn

from lava_spikeformer.analysis import E_AC_PJ, E_MAC_PJ, energy_report, energy_views, graph_energy_report
from lava_spikeformer.graph import Graph, Node, simulate
from lava_spikeformer.nn.attention import SDSA
from lava_spikeformer.nn.layers import RepConv
from lava_spikeformer.nn.neuron import LIF
from lava_spikeformer.nn.synapse import Conv, Dense


class Toy(nn.Module):
    """image -> conv1 (1x1, w=2) -> LIF -> {conv2 3x3, dense}: spikes wherever the image is 1."""

    timesteps = 2

    def __init__(self):
        super().__init__()
        self.conv1 = Conv(1, 2, 1)
        self.lif = LIF()
        self.conv2 = Conv(2, 3, 3, padding=1)
        self.fc = Dense(32, 5)
        nn.init.constant_(self.conv1.weight, 2.0)

    def forward(self, image):
        x = image.unsqueeze(0).expand(self.timesteps, *image.shape)
        s = self.lif(self.conv1(x))
        return self.conv2(s).sum() + self.fc(s.flatten(2)).sum()


def test_energy_of_a_hand_countable_network():
    image = torch.tensor([[1.0, 0.0] * 2, [0.0, 1.0] * 2] * 2).view(1, 1, 4, 4)   # half ones
    report = energy_report(Toy(), [image], static_input=True)
    by_name = {l.name: l for l in report.layers}
    # conv1: 2 out ch * 16 px * 1 MAC, real-valued image, counted once as MACs
    assert by_name["conv1"].op == "MAC" and by_name["conv1"].flops == 32
    # LIF: h = x (w=2 on ones -> 2, /2 -> 1 >= 1) fires on the 8 ones every step: rate 0.5
    assert by_name["conv2"].input_rate == 0.5 and by_name["fc"].input_rate == 0.5
    assert by_name["conv2"].flops == 3 * 16 * 2 * 9 and by_name["fc"].flops == 32 * 5
    hand = E_MAC_PJ * 32 + E_AC_PJ * 2 * 0.5 * 864 + E_AC_PJ * 2 * 0.5 * 160     # 147.2 + 777.6 + 144 pJ
    assert report.total_mj == pytest.approx(hand * 1e-9, rel=1e-12)
    assert report.total_mj == pytest.approx(1068.8e-9, rel=1e-12)


def test_sdsa_operator_term_per_table_6():
    torch.manual_seed(0)
    attn = SDSA(8, neuron=LIF, num_heads=8, variant=3, qkv_proj="linear", out_proj="linear")
    for proj, bias in ((attn.q, 5.0), (attn.k, 5.0), (attn.v, -5.0)):   # Q, K always fire; V never
        nn.init.zeros_(proj.bn.weight)
        nn.init.constant_(proj.bn.bias, bias)
    x = torch.ones(1, 1, 8, 2, 2)                                         # T=1, B=1, D=8, N=4
    report = energy_report(attn, [x], static_input=False, timesteps=1)
    by_name = {l.name: l for l in report.layers}
    for proj in ("q.body", "k.body", "v.body"):
        assert by_name[proj].flops == 8 * 8 * 4 and by_name[proj].input_rate == 1.0
    assert by_name["proj.body"].input_rate == 0.0                         # V silent -> attention silent
    op = by_name["operator"]
    assert op.flops == 4 * 8 * 8 and op.input_rate == 2.0                 # R_hat = R_Q + R_K + R_V = 1 + 1 + 0
    hand = 3 * E_AC_PJ * 256 + E_AC_PJ * 1 * 2.0 * 4 * 64                 # 691.2 + 460.8 pJ
    assert report.total_mj == pytest.approx(hand * 1e-9, rel=1e-12)


def test_energy_report_of_the_small_model_is_consistent():
    from lava_spikeformer import create_model
    model = create_model("meta_spikeformer_small28")
    report = energy_report(model, [torch.randn(4, 1, 28, 28)])
    assert report.layers[0].op == "MAC" and report.layers[0].name == "stages.0.0.encode.conv"
    assert all(l.op == "AC" for l in report.layers[1:])
    assert 0 < report.mean_spike_rate < 1 and report.total_mj > 0
    assert "total" in report.table()


def test_energy_needs_data():
    with pytest.raises(ValueError, match="at least one batch"):
        energy_report(Toy(), [])


# ---------------------------------------------------------------------------- deployed (exported) graph
class ToyRep(nn.Module):
    """image -> conv1 (1x1, w=2) -> LIF -> RepConv(2 -> 3) -> LIF -> dense: hand-countable in both views.

    RepConv weights are all 1 and both its BatchNorms have bias +1 / +10 (eval: running mean 0, var 1),
    so the depthwise conv sees BN outputs that are never zero (padding included: BN(0) = 1) and the
    pointwise conv sees sums of them; the last LIF sees >= 10 everywhere and fires every step."""

    timesteps = 2

    def __init__(self):
        super().__init__()
        self.conv1 = Conv(1, 2, 1)
        self.lif = LIF()
        self.rep = RepConv(2, 3)
        self.lif2 = LIF()
        self.fc = Dense(48, 5)
        nn.init.constant_(self.conv1.weight, 2.0)
        for conv in (self.rep.conv1x1, self.rep.dw, self.rep.pw.conv):
            nn.init.constant_(conv.weight, 1.0)
        nn.init.constant_(self.rep.bn_pad.bias, 1.0)
        nn.init.constant_(self.rep.pw.bn.bias, 10.0)

    def forward(self, image):
        x = image.unsqueeze(0).expand(self.timesteps, *image.shape)
        s = self.lif2(self.rep(self.lif(self.conv1(x))))
        return self.fc(s.flatten(2))


def _toy_graph(toy: ToyRep):
    """The export of ``ToyRep``, folded as ``nn.fold`` folds a model: the RepConv is one 3x3 conv."""
    from lava_spikeformer.nn.fold import _Affine, fold_repconv

    np_ = lambda t: t.detach().double().numpy()
    conv1, rep = _Affine.of_conv(toy.conv1), fold_repconv(toy.rep)
    lif = lambda name, src, shape, m: Node(name, "lif", (src,), shape, attrs={"threshold": float(m.threshold_param),
                                                                             "tau": float(m.tau)})
    nodes = (Node("input", "input", (), (1, 4, 4)),
             Node("conv1", "conv", ("input",), (2, 4, 4), {"weight": np_(conv1.weight)},
                  {"stride": 1, "padding": 0, "groups": 1}),
             lif("lif", "conv1", (2, 4, 4), toy.lif),
             Node("rep", "conv", ("lif",), (3, 4, 4), {"weight": np_(rep.weight), "bias": np_(rep.bias)},
                  {"stride": rep.stride, "padding": rep.padding, "groups": rep.groups}),
             lif("lif2", "rep", (3, 4, 4), toy.lif2),
             Node("fc", "dense", ("lif2",), (5,), {"weight": np_(toy.fc.weight.flatten(1)), "bias": np_(toy.fc.bias)}))
    return Graph(nodes, "fc", ToyRep.timesteps, True)


def test_energy_of_a_repconv_folded_vs_training_view():
    toy = ToyRep().eval()
    image = torch.tensor([[1.0, 0.0] * 2, [0.0, 1.0] * 2] * 2).view(1, 1, 4, 4)   # half ones
    graph = _toy_graph(toy)
    with torch.no_grad():                             # the hand-built export is the same network
        np.testing.assert_allclose(simulate(graph, image.numpy())["fc"], toy(image).double().numpy(), rtol=1e-6)

    # Training view (paper convention): conv1 on the image, counted once as MACs: 2 ch * 16 px * 1 = 32.
    # RepConv: conv1x1 on spikes (LIF fires on the 8 ones, every step: rate 1/2), 2*16*2 = 64 ACs;
    # depthwise 3x3 on the padded BN output (2 x 6 x 6, no zero anywhere: rate 1, graded),
    # 2*16*9 = 288 MACs; pointwise on the depthwise sums (rate 1, graded), 3*16*2 = 96 MACs.
    # The last LIF fires everywhere: dense 48*5 = 240 ACs at rate 1. T = 2.
    paper = energy_report(toy, [image], static_input=True)
    assert [(l.name, l.op, l.flops) for l in paper.layers] == [
        ("conv1", "MAC", 32), ("rep.conv1x1", "AC", 64), ("rep.dw", "MAC", 288), ("rep.pw.conv", "MAC", 96),
        ("fc", "AC", 240)]
    assert [l.input_rate for l in paper.layers] == [0.5, 0.5, 1.0, 1.0, 1.0]
    hand_paper = (E_MAC_PJ * 32 + E_AC_PJ * 2 * 0.5 * 64 + E_MAC_PJ * 2 * 1.0 * 288 + E_MAC_PJ * 2 * 1.0 * 96
                  + E_AC_PJ * 2 * 1.0 * 240)                  # 147.2 + 57.6 + 2649.6 + 883.2 + 432 pJ
    assert paper.total_mj == pytest.approx(hand_paper * 1e-9, rel=1e-12)
    assert paper.total_mj == pytest.approx(4169.6e-9, rel=1e-12)

    # Deployed view (the exported graph): the RepConv is one 3x3 conv 2 -> 3 on the spikes,
    # 3*16*2*9 = 864 ACs at rate 1/2, and no MAC after the first conv.
    deployed = graph_energy_report(graph, [image])
    assert deployed.view == "deployed" and deployed.images == 1 and deployed.timesteps == 2
    assert [(l.name, l.op, l.flops, l.input_rate) for l in deployed.layers] == [
        ("conv1", "MAC", 32, 0.5), ("rep", "AC", 864, 0.5), ("fc", "AC", 240, 1.0)]
    hand_deployed = E_MAC_PJ * 32 + E_AC_PJ * 2 * 0.5 * 864 + E_AC_PJ * 2 * 1.0 * 240    # 147.2 + 777.6 + 432 pJ
    assert deployed.total_mj == pytest.approx(hand_deployed * 1e-9, rel=1e-12)
    assert deployed.total_mj == pytest.approx(1356.8e-9, rel=1e-12)
    assert deployed.energy_by_op() == pytest.approx({"MAC": 147.2, "AC": 1209.6})
    # the integer network fires the same spikes here: the same count
    assert graph_energy_report(graph, [image], precision="fixed").total_mj == pytest.approx(deployed.total_mj)


def test_graded_synapse_inputs_are_macs_in_the_deployed_view():
    """A conv after a conv (a SepConv's pointwise after its depthwise) reads graded values: MACs at
    the rate of its non-zero inputs, every timestep."""
    w = np.ones((2, 1, 1, 1))
    nodes = (Node("input", "input", (), (1, 2, 2)),
             Node("a", "conv", ("input",), (2, 2, 2), {"weight": w}, {"stride": 1, "padding": 0, "groups": 1}),
             Node("b", "conv", ("a",), (2, 2, 2), {"weight": np.ones((2, 2, 1, 1))},
                  {"stride": 1, "padding": 0, "groups": 1}),
             Node("fc", "dense", ("b",), (3,), {"weight": np.ones((3, 8))}))
    graph = Graph(nodes, "fc", 3, True)
    image = np.array([[[[0.5, 0.0], [0.0, 0.0]]]])                  # one non-zero pixel of four
    report = graph_energy_report(graph, [image, image])
    assert report.images == 2
    assert [(l.name, l.op, l.flops, l.input_rate) for l in report.layers] == [
        ("a", "MAC", 8, 0.25), ("b", "MAC", 16, 0.25), ("fc", "MAC", 24, 0.25)]
    assert report.total_mj == pytest.approx((E_MAC_PJ * 8 + E_MAC_PJ * 3 * 0.25 * 16 + E_MAC_PJ * 3 * 0.25 * 24) * 1e-9)


def test_both_views_of_the_small_model_differ_only_in_the_repconvs():
    """The shipped small28 (a random init is silent after its first stage) on 32 test images."""
    from pathlib import Path

    from lava_spikeformer.data import load_fashion_mnist
    from lava_spikeformer.training.checkpoint import load_model
    model, _ = load_model(Path(__file__).parents[1] / "netx_models" / "meta_spikeformer_small28_fmnist.pt")
    views = energy_views(model, [load_fashion_mnist("test").subset(32).batch(slice(0, 32))])
    paper = {l.name: l for l in views.paper.layers}
    deployed = {l.name: l for l in views.deployed.layers}
    assert views.total_mj == views.deployed.total_mj < views.paper.total_mj
    # every RepConv (Q, K, V, output projection of both Transformer blocks) is one 3x3 conv on spikes:
    # the conv1x1's input rate, 9x its synaptic operations, no MAC
    for block in ("s2.b1.attn", "s2.b2.attn"):
        stage, index = block[1], block[4]
        for proj in ("q", "k", "v", "proj"):
            folded = deployed[f"{block}.branch.{proj}"]
            inner = paper[f"stages.{stage}.{index}.attn.branch.{proj}.body.conv1x1"]
            assert folded.op == "AC" and folded.flops == 9 * inner.flops
            assert folded.input_rate == pytest.approx(inner.input_rate, abs=2e-3)
            assert paper[f"stages.{stage}.{index}.attn.branch.{proj}.body.dw"].op == "MAC"
            assert paper[f"stages.{stage}.{index}.attn.branch.{proj}.body.pw.conv"].op == "MAC"
    assert [l.op for l in views.deployed.layers].count("MAC") == 3     # the image conv + 2 SepConv pointwise
    for block, paper_pj, deployed_pj in views.by_block():
        if block.endswith(".attn"):
            assert deployed_pj < paper_pj
        else:                                  # the same layers: equal up to float32 vs float64 spikes
            assert deployed_pj == pytest.approx(paper_pj, rel=0.02, abs=1e3), block
    assert "paper convention" in views.table()
    data = views.to_dict()
    assert data["view"] == "deployed" and data["total_mj"] == views.deployed.total_mj
    assert data["paper_convention"]["total_mj"] == views.paper.total_mj


def test_energy_command_reports_the_deployed_graph_with_the_paper_figure_beside(tmp_path, capsys):
    import json
    from pathlib import Path

    from lava_spikeformer.cli import main
    ckpt = Path(__file__).parents[1] / "netx_models" / "meta_spikeformer_small28_fmnist.pt"
    assert main(["energy", str(ckpt), "--images", "16", "--threads", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "energy.json").read_text())
    assert data["view"] == "deployed" and data["paper_convention"]["view"] == "paper" and data["images"] == 16
    assert data["total_mj"] < data["paper_convention"]["total_mj"]
    assert f"deployed graph {data['total_mj'] * 1e3:.2f} uJ per sample" in printed
    assert "s2.b1.attn.branch.q " in printed and (tmp_path / "energy.png").stat().st_size > 10_000
    assert main(["energy", str(ckpt), "--images", "16", "--threads", "1", "--view", "paper"]) == 0
    assert "stages.2.1.attn.branch.q.body.pw.conv" in capsys.readouterr().out
