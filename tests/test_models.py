import pytest
import torch

from lava_spikeformer import ABLATIONS, create_model, list_models
from lava_spikeformer.config import build_config


def _input(model, batch=2, size=None):
    cfg = model.cfg
    size = size or min(cfg.img_size, 64)
    shape = (batch, cfg.in_channels, size, size)
    if cfg.event_input:
        return (torch.rand(cfg.timesteps, *shape) < 0.3).float()
    return torch.randn(*shape)


def _first_conv(model):
    return model.stages[0][0].encode.conv


def _check_forward_backward(model, x):
    model.train()
    logits = model(x)
    logits = logits[0] if isinstance(logits, tuple) else logits
    assert logits.shape == (x.shape[-4], model.cfg.num_classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    grad = _first_conv(model).weight.grad
    assert grad is not None and torch.isfinite(grad).all(), "gradient must reach the first layer, finite"
    assert grad.abs().sum() > 0, "gradient at the first layer is identically zero"
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_at_small_size(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, timesteps=2 if "hardvs" in name else None,
                         img_size=min(build_config(name).img_size, 64))      # models check their input size
    _check_forward_backward(model, _input(model))


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_every_ablation_trains_at_small_size(ablation):
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_small32", ablations=[ablation])
    _check_forward_backward(model, _input(model, batch=4))


@pytest.mark.parametrize("ablation", ["sdsa1", "sdsa2", "sdsa4", "vs_shortcut", "sew_shortcut"])
def test_reference_size_ablations_at_t2(ablation):
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_c32", ablations=[ablation], num_classes=10, timesteps=2, img_size=64)
    _check_forward_backward(model, _input(model, size=64))


def test_kd_head_returns_two_heads_in_training_and_their_mean_in_eval():
    torch.manual_seed(0)
    model = create_model("meta_spikeformer_small28", kd_head=True)
    x = torch.randn(3, 1, 28, 28)
    cls, kd = model(x)
    assert cls.shape == kd.shape == (3, 10)
    model.eval()
    with torch.no_grad():
        cls, kd = model.head(model.forward_features(x)), model.head_kd(model.forward_features(x))
        torch.testing.assert_close(model(x), (cls + kd) / 2)


def test_image_is_repeated_over_timesteps():
    model = create_model("meta_spikeformer_small28", timesteps=4).eval()
    x = torch.randn(2, 1, 28, 28)
    encoded = model.encode(x)
    assert encoded.shape == (4, 2, 1, 28, 28) and all(torch.equal(encoded[t], x) for t in range(4))


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 28, 28), (4, 2, 1, 28, 28)])
def test_wrong_image_shape_is_one_clear_error(shape):
    model = create_model("meta_spikeformer_small28")
    with pytest.raises(ValueError, match=r"meta_spikeformer_small28: input must be \[B, C, H, W\] with C=1"):
        model(torch.randn(*shape))
