import pytest

from lava_spikeformer import ABLATIONS, create_model, count_parameters, list_models
from lava_spikeformer.config import ModelConfig, build_config

REFERENCE_PARAMS = {
    "meta_spikeformer_c32": 15_112_208,
    "meta_spikeformer_c48": 31_333_864,
    "meta_spikeformer_c64": 55_350_248,
}


@pytest.mark.parametrize("name,expected", sorted(REFERENCE_PARAMS.items()))
def test_reference_parameter_counts(name, expected):
    model = create_model(name)
    assert model.cfg.img_size == 224 and model.cfg.num_classes == 1000 and not model.cfg.kd_head
    assert count_parameters(model) == expected


def test_kd_head_adds_one_linear():
    base = count_parameters(create_model("meta_spikeformer_c32"))
    assert count_parameters(create_model("meta_spikeformer_c32", kd_head=True)) == base + 360 * 1000 + 1000


def test_small_variant_fits_the_cpu_budget():
    assert count_parameters(create_model("meta_spikeformer_small28")) <= 2_000_000


@pytest.mark.parametrize("ablation,expected_delta", [
    # Table 5 changes that are fully determined by the architecture, for c32
    ("sdsa1", 0), ("sdsa4", 0), ("vs_shortcut", 0), ("sew_shortcut", 0),
])
def test_ablations_that_keep_the_parameter_count(ablation, expected_delta):
    base = count_parameters(create_model("meta_spikeformer_c32"))
    extra = 8 if ablation == "sdsa4" else 0          # one learnable threshold per SDSA (8 blocks)
    assert count_parameters(create_model("meta_spikeformer_c32", ablations=[ablation])) == base + extra


def test_sdsa2_drops_the_key_projection():
    base = create_model("meta_spikeformer_c32")
    without_k = create_model("meta_spikeformer_c32", ablations=["sdsa2"])
    key_params = sum(count_parameters(b.attn.branch.k) for st in base.stages for b in st[1:]
                     if hasattr(b, "attn"))
    assert count_parameters(without_k) == count_parameters(base) - key_params


def test_unknown_model_name_is_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown model name 'meta_spikeformer_c99'.*meta_spikeformer_c32"):
        create_model("meta_spikeformer_c99")


def test_unknown_override_and_ablation_are_named():
    with pytest.raises(ValueError, match="unknown override.*'heads'"):
        create_model("meta_spikeformer_c32", heads=4)
    with pytest.raises(ValueError, match="unknown ablation 'no_attention'"):
        create_model("meta_spikeformer_c32", ablations=["no_attention"])
    with pytest.raises(ValueError, match="ModelConfig.sdsa"):
        create_model("meta_spikeformer_c32", sdsa=5)


def test_config_round_trips_through_plain_dicts():
    cfg = build_config("meta_spikeformer_c48", ["no_pyramid", "sdsa1"], num_classes=10)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.stages[-1].dim == cfg.stages[-2].dim == 384


def test_registry_lists_the_family():
    names = list_models()
    assert {"meta_spikeformer_c32", "meta_spikeformer_c48", "meta_spikeformer_c64", "meta_spikeformer_small28",
            "meta_spikeformer_small32", "meta_spikeformer_hardvs"} <= set(names)
    assert set(ABLATIONS) == {"remove_sepconv", "channel_mlp", "linear_qkv", "linear_proj", "sdsa1", "sdsa2",
                              "sdsa4", "vs_shortcut", "sew_shortcut", "no_pyramid", "fully_cnn",
                              "fully_transformer"}


def test_event_variants_differ_only_in_width():
    """hardvs_medium is small28's layout on two polarities: its parameters are small28's plus the
    first conv's second input channel (3x3x32); hardvs_small is the same layout at half width."""
    small28, medium, small = (build_config(n) for n in ("meta_spikeformer_small28", "meta_spikeformer_hardvs_medium",
                                                        "meta_spikeformer_hardvs_small"))
    assert [s.dim for s in medium.stages] == [s.dim for s in small28.stages] == [2 * s.dim for s in small.stages]
    assert medium.replace(stages=small.stages) == small.replace(name=medium.name)
    medium_params, small28_params = (count_parameters(create_model(n)) for n in
                                     ("meta_spikeformer_hardvs_medium", "meta_spikeformer_small28"))
    assert medium_params == small28_params + 3 * 3 * 32 == 1_038_266
