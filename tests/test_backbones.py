"""Backbones: published sizes, shapes, feature taps, input channels, save/load."""
from __future__ import annotations

import pytest
import torch

from train.backbones import BACKBONES, Backbone, build_backbone, load_backbone, save_backbone
from train.backbones.r2plus1d import mid_channels

ALL_NAMES = ["c3d", "c3d_bn", "c3d_large_bn", "r3d_10", "r3d_18", "r21d_10", "r21d_18", "s3dg", "r3d_18_ir",
             "r3d_50_slow"]
PREDICTIVE_NAMES = ["resnet18_2d", "r2d3d_18", "r2d3d_34"]  # tested in test_cpc.py / test_dpc.py


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def light_c3d_count(in_channels: int, batch_norm: bool) -> int:
    """Five 3x3x3 convs 64-128-256-256-256 (bias, or BN scale+shift)."""
    widths = [in_channels, 64, 128, 256, 256, 256]
    return sum(27 * a * b + (2 * b if batch_norm else b) for a, b in zip(widths, widths[1:]))


def large_c3d_count(in_channels: int) -> int:
    """Eight 3x3x3 convs 64-128-256-256-512-512-512-512, each with BN."""
    widths = [in_channels, 64, 128, 256, 256, 512, 512, 512, 512]
    return sum(27 * a * b + 2 * b for a, b in zip(widths, widths[1:]))


def resnet_count(in_channels: int, blocks: tuple[int, ...], conv_params) -> int:
    """Stem + basic blocks + 1x1x1 projection shortcuts, all with BN (2 params per channel)."""
    total = conv_params(in_channels, 64, (3, 7, 7), in_channels) + 2 * 64
    width_in = 64
    for n_blocks, width in zip(blocks, (64, 128, 256, 512)):
        for b in range(n_blocks):
            block_in = width_in if b == 0 else width
            total += conv_params(block_in, width, (3, 3, 3), block_in) + 2 * width
            total += conv_params(width, width, (3, 3, 3), block_in) + 2 * width
            if block_in != width:
                total += block_in * width + 2 * width
        width_in = width
    return total


def full_conv(cin: int, cout: int, k: tuple[int, int, int], block_in: int) -> int:
    return cin * cout * k[0] * k[1] * k[2]


def factorised_conv(cin: int, cout: int, k: tuple[int, int, int], block_in: int) -> int:
    t, d = k[0], k[1]
    m = (t * d * d * block_in * cout) // (d * d * block_in + t * cout)
    return cin * m * d * d + 2 * m + m * cout * t


def test_registry_names() -> None:
    assert sorted(BACKBONES) == sorted(ALL_NAMES + PREDICTIVE_NAMES)
    with pytest.raises(ValueError, match="unknown backbone 'r50'"):
        build_backbone("r50")


def test_parameter_counts_match_published_architectures() -> None:
    assert n_params(build_backbone("c3d")) == light_c3d_count(3, False) == 4_651_008
    assert n_params(build_backbone("c3d_bn")) == light_c3d_count(3, True)
    assert n_params(build_backbone("c3d_large_bn")) == large_c3d_count(3) == 27_658_688  # C3D's 27.65M convs
    r3d_18 = n_params(build_backbone("r3d_18"))
    assert r3d_18 == resnet_count(3, (2, 2, 2, 2), full_conv) == 33_166_272  # torchvision r3d_18 minus fc
    assert abs(r3d_18 - 33.2e6) < 0.05e6
    assert n_params(build_backbone("r3d_10")) == resnet_count(3, (1, 1, 1, 1), full_conv)
    r21d_18 = n_params(build_backbone("r21d_18"))
    assert r21d_18 == resnet_count(3, (2, 2, 2, 2), factorised_conv)
    assert abs(r21d_18 - 31.3e6) < 0.05e6
    assert n_params(build_backbone("r21d_10")) == resnet_count(3, (1, 1, 1, 1), factorised_conv)
    # per-convolution M reproduces R3D's size, as Tran et al. intended (within 0.05%)
    per_conv = n_params(build_backbone("r21d_18", per_conv_mid=True))
    assert abs(per_conv - r3d_18) / r3d_18 < 5e-4


def test_mid_channel_formula() -> None:
    assert mid_channels(64, 64, (3, 3, 3)) == 144  # 3*9*64*64 / (9*64 + 3*64)
    assert mid_channels(3, 64, (3, 7, 7)) == 83  # floor(28224 / 339)
    assert mid_channels(64, 128, (3, 3, 3)) == 230  # floor(221184 / 960)
    model = build_backbone("r21d_18")
    first_down = model.stages["conv3"][0]
    assert first_down.conv1[0].out_channels == 230 and first_down.conv2[0].out_channels == 230
    per_conv = build_backbone("r21d_18", per_conv_mid=True).stages["conv3"][0]
    assert per_conv.conv1[0].out_channels == 230 and per_conv.conv2[0].out_channels == 288


@pytest.mark.parametrize(
    "name, feature_shape",
    [("c3d", (256, 1, 4, 4)), ("c3d_bn", (256, 1, 4, 4)), ("c3d_large_bn", (512, 2, 7, 7)),
     ("r3d_10", (512, 2, 7, 7)), ("r3d_18", (512, 2, 7, 7)), ("r21d_10", (512, 2, 7, 7)),
     ("r21d_18", (512, 2, 7, 7))],
)
def test_shapes_for_16x112x112(name: str, feature_shape: tuple[int, ...]) -> None:
    """Shapes through PyTorch's own shape rules on the meta device (no arithmetic, so the test is fast)."""
    with torch.device("meta"):
        model = build_backbone(name).eval()
        clip = torch.empty(2, 3, 16, 112, 112)
    assert isinstance(model, Backbone)
    assert model.forward_features(clip).shape == (2, *feature_shape)
    assert model(clip).shape == (2, model.num_features) and model.num_features == feature_shape[0]
    stages = model.forward_stages(clip)
    assert {key: tuple(value.shape) for key, value in stages.items()} == {
        key: (2, channels) for key, channels in model.stage_channels.items()}


def test_light_c3d_full_size_values() -> None:
    """Real 16x112x112 forward: pool5 keeps the partial last window ('SAME'), embedding = mean of the map."""
    torch.manual_seed(0)
    model = build_backbone("c3d").eval()
    clip = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        before_pool5 = model.stages["conv5"][:-1](
            model.stages["conv4"](model.stages["conv3"](model.stages["conv2"](model.stages["conv1"](clip)))))
        features = model.forward_features(clip)
        embedding = model(clip)
    assert before_pool5.shape == (1, 256, 2, 7, 7) and features.shape == (1, 256, 1, 4, 4)
    torch.testing.assert_close(features[..., 0, 3, 3], before_pool5[..., 6, 6].amax(dim=2))  # 2x1x1 edge window
    torch.testing.assert_close(features[..., 0, 0, 0], before_pool5[..., :2, :2].amax(dim=(2, 3, 4)))
    torch.testing.assert_close(embedding, features.mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_forward_stages_match_stage_channels(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name).eval()
    clip = torch.randn(2, 3, 8, 16, 16)
    with torch.no_grad():
        stages = model.forward_stages(clip)
        embedding = model(clip)
        single = model(clip[1:])
    assert set(stages) == set(model.stage_channels) == {"pool3", "pool4", "pool5"}
    for key, pooled in stages.items():
        assert pooled.shape == (2, model.stage_channels[key])
    torch.testing.assert_close(stages["pool5"], embedding)
    model.stages["conv5"].register_forward_hook(lambda *_: pytest.fail("conv5 runs for pool4"))
    with torch.no_grad():
        early = model.forward_stages(clip, last="pool4")
    assert set(early) == {"pool3", "pool4"}
    torch.testing.assert_close(early["pool4"], stages["pool4"])
    with pytest.raises(ValueError, match="unknown stage 'conv5'"):
        model.forward_stages(clip, last="conv5")
    torch.testing.assert_close(single, embedding[1:], rtol=1e-4, atol=1e-5)  # samples are independent in eval


@pytest.mark.parametrize("name", ["c3d", "r3d_10", "r21d_10"])
@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_input_channels(name: str, in_channels: int) -> None:
    model = build_backbone(name, in_channels=in_channels).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert first_conv.in_channels == in_channels
    expected = {
        "c3d": light_c3d_count(in_channels, False),
        "r3d_10": resnet_count(in_channels, (1, 1, 1, 1), full_conv),
        "r21d_10": resnet_count(in_channels, (1, 1, 1, 1), factorised_conv),
    }
    assert n_params(model) == expected[name]
    with torch.no_grad():
        assert model(torch.randn(1, in_channels, 8, 32, 32)).shape == (1, model.num_features)
    with pytest.raises(ValueError, match=rf"expects a clip \[B, {in_channels}, T, H, W\]"):
        model(torch.randn(1, in_channels + 1, 8, 32, 32))


@pytest.mark.parametrize("name", ["c3d_bn", "r21d_10"])
def test_save_load_round_trip(name: str, tmp_path) -> None:
    torch.manual_seed(1)
    model = build_backbone(name, in_channels=2)
    with torch.no_grad():  # move the BN running statistics away from their initial values
        model.train()(torch.randn(2, 2, 8, 16, 16) * 2 + 1)
    model.eval()
    path = tmp_path / "backbone.pt"
    save_backbone(model, path)
    loaded = load_backbone(path)
    assert type(loaded) is type(model) and loaded.build_args == model.build_args and not loaded.training
    clip = torch.randn(2, 2, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))
        for key, value in model.forward_stages(clip).items():
            assert torch.equal(loaded.forward_stages(clip)[key], value)


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_backbone(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_backbone(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt: not a backbone file"):
        load_backbone(foreign)
    with pytest.raises(ValueError, match="not made by build_backbone"):
        save_backbone(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_mixed_precision_forward_matches_float32() -> None:
    torch.manual_seed(2)
    model = build_backbone("r21d_10").eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        reference = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(clip)
    assert low.dtype == torch.bfloat16
    assert torch.linalg.vector_norm(low.float() - reference) / torch.linalg.vector_norm(reference) < 0.05


def test_save_looks_through_compile_and_ddp_style_wrappers(tmp_path) -> None:
    model = build_backbone("c3d", channels=(4, 4, 8, 8, 8)).eval()

    class Wrapper(torch.nn.Module):
        """Holds the model under ``attribute``, as DDP (``module``) and torch.compile (``_orig_mod``) do."""

        def __init__(self, attribute: str, inner: torch.nn.Module) -> None:
            super().__init__()
            setattr(self, attribute, inner)

    save_backbone(Wrapper("module", Wrapper("_orig_mod", model)), tmp_path / "wrapped.pt")
    loaded = load_backbone(tmp_path / "wrapped.pt")
    assert loaded.state_dict().keys() == model.state_dict().keys()
    clip = torch.randn(1, 3, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))
