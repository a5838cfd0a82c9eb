"""Importing reference checkpoints (BICLab/Spike-Driven-Transformer-V2): key map, errors, logits, CLI.

The reference layouts come from tests/data/official_keys/keys_c*.txt (key, shape, dtype dumped
from the reference model); the logits are checked against ``reference_forward`` below, a compact
functional rewrite of the reference's ``Spiking_vit_MetaFormer.forward`` that reads the reference
state dict directly.
"""
import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lava_spikeformer.training.checkpoint import load_model
from lava_spikeformer.cli import main
from lava_spikeformer.interop.official import ConvertError, from_official, load_official, to_official

REFERENCE_KEYS = Path(__file__).parent / "data" / "official_keys"
EXPECTED_PARAMS = {32: 15_112_208, 48: 31_333_864, 64: 55_350_248}


def reference_layout(width: int):
    """``[(key, shape, dtype)]`` in the reference's state-dict order."""
    rows = []
    for line in (REFERENCE_KEYS / f"keys_c{width}.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip()),
                     getattr(torch, dtype)))
    return rows


def random_reference_state(width: int, *, kd: bool = False, seed: int = 0):
    """Random weights and BatchNorm statistics in the reference layout, scaled so that every LIF
    layer of the network fires at a moderate rate (checked in the logits test)."""
    gen = torch.Generator().manual_seed(seed)
    rows = reference_layout(width)
    if kd:
        rows += [(k.replace("head.", "head_kd."), s, d) for k, s, d in rows if k.startswith("head.")]
    bn_modules = {k.rsplit(".", 1)[0] for k, _, _ in rows if k.endswith(".running_mean")}
    state = {}
    for key, shape, dtype in rows:
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            state[key] = torch.randint(0, 10_000, shape, generator=gen, dtype=dtype)
        elif module in bn_modules:
            low, high = {"weight": (0.5, 1.5), "bias": (-0.5, 0.5), "running_mean": (-0.3, 0.3),
                         "running_var": (0.5, 2.0)}[leaf]
            state[key] = torch.empty(shape, dtype=dtype).uniform_(low, high, generator=gen)
        elif leaf == "weight":
            fan_in = torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=gen, dtype=dtype) * (3.0 / fan_in ** 0.5)
        else:
            state[key] = torch.randn(shape, generator=gen, dtype=dtype) * 0.1
    return state


# --------------------------------------------------------------------------- the reference, rewritten
def lif(x, rates, threshold=1.0):
    """spikingjelly MultiStepLIFNode(tau=2, decay_input, v_reset=0, hard reset) on ``x[T, ...]``."""
    v, spikes = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / 2.0
        s = (h - threshold >= 0).to(x.dtype)
        spikes.append(s)
        v = h * (1.0 - s)
    out = torch.stack(spikes)
    rates.append(float(out.mean()))
    return out


def bn(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)


def per_step(fn, x):
    """Apply a 4-D op to ``[T, B, ...]`` the reference's way: ``fn(x.flatten(0, 1)).reshape(T, B, ...)``."""
    y = fn(x.flatten(0, 1))
    return y.reshape(*x.shape[:2], *y.shape[1:])


def downsample(sd, p, x, k, s, rates):
    if p != "downsample1_1":
        x = lif(x, rates)
    return per_step(lambda z: bn(sd, f"{p}.encode_bn", F.conv2d(z, sd[f"{p}.encode_conv.weight"],
                                                                  sd[f"{p}.encode_conv.bias"], s, k // 2)), x)


def conv_block(sd, p, x, rates):
    c = x.shape[2]
    y = per_step(lambda z: bn(sd, f"{p}.Conv.bn1", F.conv2d(z, sd[f"{p}.Conv.pwconv1.weight"])), lif(x, rates))
    y = per_step(lambda z: bn(sd, f"{p}.Conv.bn2", F.conv2d(
        F.conv2d(z, sd[f"{p}.Conv.dwconv.weight"], padding=3, groups=2 * c), sd[f"{p}.Conv.pwconv2.weight"])),
        lif(y, rates))
    x = x + y
    y = per_step(lambda z: bn(sd, f"{p}.bn1", F.conv2d(z, sd[f"{p}.conv1.weight"], padding=1)), lif(x, rates))
    y = per_step(lambda z: bn(sd, f"{p}.bn2", F.conv2d(z, sd[f"{p}.conv2.weight"], padding=1)), lif(y, rates))
    return x + y


def rep_conv(sd, p, z):
    """conv1x1 -> BN, padded by one pixel with the BN's value for a zero input -> dw 3x3 -> conv1x1 -> BN."""
    y = bn(sd, f"{p}.0.body.1.bn", F.conv2d(z, sd[f"{p}.0.body.0.weight"]))
    g = f"{p}.0.body.1.bn"
    pad = sd[f"{g}.bias"] - sd[f"{g}.running_mean"] * sd[f"{g}.weight"] / torch.sqrt(sd[f"{g}.running_var"] + 1e-5)
    y = F.pad(y, [1, 1, 1, 1])
    y[:, :, 0, :] = y[:, :, -1, :] = pad.view(1, -1, 1)
    y[:, :, :, 0] = y[:, :, :, -1] = pad.view(1, -1, 1)
    y = F.conv2d(y, sd[f"{p}.0.body.2.0.weight"], groups=y.shape[1])
    return bn(sd, f"{p}.1", bn(sd, f"{p}.0.body.2.2", F.conv2d(y, sd[f"{p}.0.body.2.1.weight"])))


def ms_block(sd, p, x, rates, attn_rates, heads=8):
    t, b, c, h, w = x.shape
    n = h * w
    xs = lif(x, rates)

    def qkv(name):
        s = lif(per_step(lambda z: rep_conv(sd, f"{p}.attn.{name}_conv", z), xs), rates).flatten(3)
        return s.transpose(-1, -2).reshape(t, b, n, heads, c // heads).permute(0, 1, 3, 2, 4)

    q, k, v = qkv("q"), qkv("k"), qkv("v")
    a = (q @ (k.transpose(-2, -1) @ v)) * 0.125
    a = lif(a.transpose(3, 4).reshape(t, b, c, n), attn_rates, threshold=0.5).reshape(t, b, c, h, w)
    x = x + per_step(lambda z: rep_conv(sd, f"{p}.attn.proj_conv", z), a)
    y = lif(x.flatten(3), rates)
    y = per_step(lambda z: bn(sd, f"{p}.mlp.fc1_bn", F.conv1d(z, sd[f"{p}.mlp.fc1_conv.weight"],
                                                               sd[f"{p}.mlp.fc1_conv.bias"])), y)
    y = per_step(lambda z: bn(sd, f"{p}.mlp.fc2_bn", F.conv1d(z, sd[f"{p}.mlp.fc2_conv.weight"],
                                                               sd[f"{p}.mlp.fc2_conv.bias"])), lif(y, rates))
    return x + y.reshape(t, b, c, h, w)


def reference_forward(sd, images, timesteps, rates, attn_rates):
    x = images.unsqueeze(0).repeat(timesteps, 1, 1, 1, 1)
    x = downsample(sd, "downsample1_1", x, 7, 2, rates)
    x = conv_block(sd, "ConvBlock1_1.0", x, rates)
    x = downsample(sd, "downsample1_2", x, 3, 2, rates)
    x = conv_block(sd, "ConvBlock1_2.0", x, rates)
    x = downsample(sd, "downsample2", x, 3, 2, rates)
    x = conv_block(sd, "ConvBlock2_1.0", x, rates)
    x = conv_block(sd, "ConvBlock2_2.0", x, rates)
    x = downsample(sd, "downsample3", x, 3, 2, rates)
    for j in range(6):
        x = ms_block(sd, f"block3.{j}", x, rates, attn_rates)
    x = downsample(sd, "downsample4", x, 3, 1, rates)
    for j in range(2):
        x = ms_block(sd, f"block4.{j}", x, rates, attn_rates)
    pooled = lif(x.flatten(3).mean(3), rates)
    logits = F.linear(pooled, sd["head.weight"], sd["head.bias"]).mean(0)
    if "head_kd.weight" in sd:
        logits = (logits + F.linear(pooled, sd["head_kd.weight"], sd["head_kd.bias"]).mean(0)) / 2
    return logits


# --------------------------------------------------------------------------- tests
@pytest.fixture(autouse=True)
def single_thread():
    """Small float64 convs and memory copies: on shared cores a second OpenMP thread mostly spins
    (measured: the logits test takes 1 s on one thread, 10-30 s on two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("width", [32, 48, 64])
@pytest.mark.parametrize("kd", [False, True])
def test_reference_layout_imports_and_round_trips_bit_exactly(width, kd):
    state = random_reference_state(width, kd=kd, seed=width)
    model = from_official({"model": state}, f"meta_spikeformer_c{width}", timesteps=4)
    assert not model.training and model.cfg.kd_head is kd and model.timesteps == 4
    assert model.cfg.num_classes == 1000
    kd_head_params = (model.num_features + 1) * 1000
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[width] + kd * kd_head_params
    back = to_official(model)
    assert list(back) == list(state)                       # same keys, same order, nothing extra
    for key, value in state.items():
        assert back[key].shape == value.shape and back[key].dtype == value.dtype, key
        assert torch.equal(back[key], value), key


def test_mismatched_state_dict_names_every_bad_key():
    state = random_reference_state(32)
    del state["block3.2.attn.k_conv.0.body.2.1.weight"]
    state["block3.9.mlp.fc1_conv.weight"] = torch.zeros(1024, 256, 1)
    state["ConvBlock2_1.0.conv1.weight"] = torch.zeros(512, 128, 3)
    state["block4.0.mlp.fc2_conv.weight"] = torch.zeros(360, 1440, 1, 1)   # a Conv2d shape for the Conv1d
    with pytest.raises(ConvertError) as info:
        from_official(state, "meta_spikeformer_c32")
    message = str(info.value)
    assert "does not fit meta_spikeformer_c32" in message
    assert "1 missing keys: block3.2.attn.k_conv.0.body.2.1.weight" in message
    assert "1 unexpected keys: block3.9.mlp.fc1_conv.weight" in message
    assert "ConvBlock2_1.0.conv1.weight (512, 128, 3) (expected (512, 128, 3, 3))" in message
    assert "block4.0.mlp.fc2_conv.weight (360, 1440, 1, 1) (expected (360, 1440, 1))" in message
    assert info.value.missing == ["block3.2.attn.k_conv.0.body.2.1.weight"]
    assert info.value.unexpected == ["block3.9.mlp.fc1_conv.weight"]
    assert len(info.value.mis_shaped) == 2


def test_long_key_lists_are_capped_and_non_reference_models_rejected():
    state = {f"backbone.layer{i}.weight": torch.zeros(1) for i in range(30)}
    with pytest.raises(ConvertError) as info:
        from_official(state, "meta_spikeformer_c32")
    message = str(info.value)
    # 825 reference keys, less the 133 optional BatchNorm num_batches_tracked
    assert "692 missing keys: downsample1_1.encode_conv.weight," in message
    assert "(682 more)" in message and "30 unexpected keys" in message and "(20 more)" in message
    with pytest.raises(ConvertError, match=r"meta_spikeformer_small28 is not in the reference layout .*"
                                           r"models that are: meta_spikeformer_c32, meta_spikeformer_c48"):
        from_official(random_reference_state(32), "meta_spikeformer_small28")
    with pytest.raises(ConvertError, match="entries are not tensors: args, epoch"):
        from_official({"args": "namespace", "epoch": 3, "weights": torch.zeros(1)}, "meta_spikeformer_c32")


@pytest.mark.parametrize("width, kd, timesteps", [(32, True, 2), (48, False, 1), (64, True, 1)])
def test_logits_equal_the_reference_computation_in_float64(width, kd, timesteps):
    """64x64 images (the reference is size-agnostic: stage 3 then has 4x4 tokens), float64: every
    spike must agree, so the logits agree to rounding (measured: bit-identical)."""
    torch.manual_seed(width)
    state = random_reference_state(width, kd=kd, seed=width + 1)
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    model = from_official(state, f"meta_spikeformer_c{width}", timesteps=timesteps, img_size=64).double()
    with torch.no_grad():
        ours = model(images)
        rates, attn_rates = [], []
        expected = reference_forward({k: v.double() for k, v in state.items()}, images, timesteps, rates,
                                     attn_rates)
    assert ours.shape == (2, 1000) and ours.dtype == torch.float64
    relative = float((ours - expected).abs().max() / expected.abs().max())
    assert relative < 1e-10, relative
    # the comparison means something only if the spikes do: every layer fires, none saturates
    assert len(rates) == 69 and len(attn_rates) == 8   # 4 downsampling + 4x4 ConvBlock + 8x6 MS_Block + head
    assert min(rates) > 0.005 and max(rates) < 0.9, rates
    assert min(attn_rates) > 0.01 and max(attn_rates) < 0.95, attn_rates


def test_cli_import_official_writes_a_checkpoint_load_model_reads(tmp_path, capsys):
    state = random_reference_state(32, kd=True, seed=2)
    source = tmp_path / "checkpoint-199.pth"
    torch.save({"model": state, "epoch": 199}, source)
    out = tmp_path / "imported.pt"
    assert main(["import-official", str(source), "--model", "meta_spikeformer_c32", "--out", str(out),
                 "--timesteps", "4"]) == 0
    assert "meta_spikeformer_c32" in capsys.readouterr().out
    model, payload = load_model(out)
    assert model.timesteps == 4 and model.cfg.kd_head and payload["imported_from"] == str(source)
    round_trip = to_official(model)
    assert all(torch.equal(round_trip[k], v) for k, v in state.items())
    broken = tmp_path / "broken.pth"
    del state["head.bias"]
    torch.save(state, broken)
    assert main(["import-official", str(broken), "--model", "meta_spikeformer_c32", "--out",
                 str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "1 missing keys: head.bias" in err
    assert not (tmp_path / "x.pt").exists()


def test_unreadable_reference_files_name_the_file_and_the_way_out(tmp_path):
    with pytest.raises(ConvertError, match=r"reference checkpoint .*absent.pth does not exist"):
        load_official(tmp_path / "absent.pth", "meta_spikeformer_c32")
    training_checkpoint = tmp_path / "checkpoint-0.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=6e-4)}, training_checkpoint)
    with pytest.raises(ConvertError, match=r"checkpoint-0.pth cannot be read with torch.load\(weights_only=True\)"
                                           r".*argparse.Namespace.*keep only the weights"):
        load_official(training_checkpoint, "meta_spikeformer_c32")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ConvertError, match=r"garbage.pth cannot be read") as info:
        load_official(garbage, "meta_spikeformer_c32")
    assert "argparse" not in str(info.value)


def test_float64_checkpoint_imports_without_rounding():
    state = {k: v.double() if v.is_floating_point() else v for k, v in random_reference_state(32, seed=3).items()}
    state["head.bias"] += 1e-12                       # below float32 resolution
    model = from_official(state, "meta_spikeformer_c32")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    back = to_official(model)
    assert all(torch.equal(back[k], v) for k, v in state.items())
