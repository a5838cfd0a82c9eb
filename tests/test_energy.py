import pytest
import torch
from torch import nn

from lava_spikeformer.analysis import E_AC_PJ, E_MAC_PJ, energy_report
from lava_spikeformer.nn.attention import SDSA
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
