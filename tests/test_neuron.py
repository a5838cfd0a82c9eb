import pytest
import torch

from lava_spikeformer.nn.neuron import LIF, lif_sequence

# tau=2, threshold=1: h = v + (x - v)/2, spike iff h >= 1, hard reset.
SEQUENCE = [1.0, 1.0, 3.0, 2.0, 0.0, 4.0, 1.5]
#            h=0.5  0.75  1.875 1.0(=th) 0.0  2.0   0.75
EXPECTED_H = [0.5, 0.75, 1.875, 1.0, 0.0, 2.0, 0.75]
EXPECTED_S = [0, 0, 1, 1, 0, 1, 0]


def test_hand_computed_membrane_and_spikes_including_exactly_at_threshold():
    x = torch.tensor(SEQUENCE, dtype=torch.float64)[:, None]
    spikes, h = lif_sequence(x, 1.0, tau=2.0)
    assert h[:, 0].tolist() == EXPECTED_H
    assert spikes[:, 0].tolist() == EXPECTED_S
    assert LIF()(x)[:, 0].tolist() == EXPECTED_S


def test_float_lif_fires_exactly_at_threshold_and_not_below():
    assert LIF()(torch.tensor([[1.999]])).item() == 0 and LIF()(torch.tensor([[2.0]])).item() == 1
    assert LIF().v_th_mant == 128 and LIF().device_params["vDecay"] == 2048


@pytest.mark.parametrize("count,fires", [(7, 0), (8, 1), (9, 1)])
def test_attention_neuron_fires_iff_count_at_least_8(count, fires):
    # reference SDSA-3: scale 0.125, threshold 0.5 -> h = 0.0625 * count >= 0.5 iff count >= 8 (T=1)
    lif = LIF(threshold=0.5)
    assert lif(torch.tensor([[count * 0.125]])).item() == fires


def _autograd_reference(x, threshold, tau=2.0, alpha=4.0):
    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        sg = torch.sigmoid(alpha * (h - threshold))
        s = (h >= threshold).to(x.dtype).detach() + (sg - sg.detach())
        out.append(s)
        v = h * (1 - s.detach())
    return torch.stack(out)


@pytest.mark.parametrize("steps", [1, 4])
def test_gradients_match_the_autograd_definition(steps):
    torch.manual_seed(0)
    x = (2 * torch.randn(steps, 5, 7, dtype=torch.float64)).requires_grad_()
    lif = LIF(learnable_threshold=True).double()
    grad_out = torch.randn(steps, 5, 7, dtype=torch.float64)
    (lif(x) * grad_out).sum().backward()
    grad_x, grad_th = x.grad.clone(), lif.threshold_param.grad.clone()
    x.grad = None
    th = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    (_autograd_reference(x, th) * grad_out).sum().backward()
    torch.testing.assert_close(grad_x, x.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_th, th.grad, rtol=0, atol=1e-12)


def test_bad_neuron_arguments():
    with pytest.raises(ValueError, match="threshold"):
        LIF(threshold=0.0)
