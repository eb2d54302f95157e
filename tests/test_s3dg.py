"""S3D-G backbone: parameter count (against the pace paper's 9.6M), feature shapes at 16x112 and 64x224,
feature gating as a per-channel multiplication, TF 'SAME' max pooling, and pace-prediction training steps."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from train.backbones import build_backbone, load_backbone, save_backbone
from commands.pipeline import load_pipeline
from common.settings import parse_overrides
from preprocess.extract import extract
from train.backbones.s3dg import S3DG, FeatureGate, InceptionBlock, MaxPool3dSame
from train.loop import train
from train.methods.pace import ColorJitterSettings, PacePrediction, PaceSettings

# Inception-v1 widths (Szegedy et al. 2015, Fig. 3 / Table 1), restated here independently of the module:
# (input width, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj) for Mixed_3b .. Mixed_5c.
INCEPTION_V1 = [
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
]


CLIPS = ("Turn_1_42.mp4", "Turn_1_47.mp4", "Turn_7_38.mp4", "Turn_1_1.mp4")  # ARID, 33-36 frames each


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def s3dg_count(in_channels: int, gating: bool) -> int:
    """Layer-by-layer count: bias-free convs + BN (scale, shift); separable k=3 conv = 1x3x3 (in -> out) + BN
    + 3x1x1 (out -> out) + BN; gate = C x C weights + C biases; no classifier."""

    def conv(cin: int, cout: int, taps: int) -> int:
        return cin * cout * taps + 2 * cout

    def sep(cin: int, cout: int) -> int:
        return conv(cin, cout, 9) + conv(cout, cout, 3)

    def gate(c: int) -> int:
        return c * c + c if gating else 0

    total = conv(in_channels, 64, 3 * 7 * 7) + conv(64, 64, 1) + sep(64, 192) + gate(192)
    for cin, b0, b1r, b1, b2r, b2, b3 in INCEPTION_V1:
        total += conv(cin, b0, 1) + conv(cin, b1r, 1) + sep(b1r, b1) + conv(cin, b2r, 1) + sep(b2r, b2)
        total += conv(cin, b3, 1)
        total += gate(b0) + gate(b1) + gate(b2) + gate(b3)
    return total


def test_parameter_count_matches_the_pace_papers_9_6m() -> None:
    backbone = n_params(build_backbone("s3dg"))
    assert backbone == s3dg_count(3, gating=True) == 9_125_072
    assert n_params(build_backbone("s3dg", gating=False)) == s3dg_count(3, gating=False) == 7_900_064  # S3D
    assert n_params(build_backbone("s3dg", in_channels=2)) == s3dg_count(2, gating=True)
    # The pace paper's 9.6M is the authors' S3D class with its default 1024 -> 512 fc layer (models/s3d_g.py,
    # num_classes=512): backbone + 524,800. Their pace run (num_classes=4) has 9,129,172 = 9.1M.
    with_fc512 = backbone + 1024 * 512 + 512
    assert with_fc512 == 9_649_872 and round(with_fc512 / 1e6, 1) == 9.6
    assert round((backbone + 1024 * 4 + 4) / 1e6, 1) == 9.1


def test_block_widths_and_gates() -> None:
    model = build_backbone("s3dg")
    widths = [block.out_channels for block in model.modules() if isinstance(block, InceptionBlock)]
    assert widths == [row[0] for row in INCEPTION_V1[1:]] + [1024]
    assert model.stage_channels == {"pool3": 480, "pool4": 832, "pool5": 1024} and model.num_features == 1024
    assert sum(isinstance(m, FeatureGate) for m in model.modules()) == 1 + 4 * len(INCEPTION_V1)
    assert not any(isinstance(m, FeatureGate) for m in build_backbone("s3dg", gating=False).modules())
    kernels = [tuple(m.kernel_size) for m in model.stages["conv3"].mixed_3b.branches[1].modules()
               if isinstance(m, torch.nn.Conv3d)]
    assert kernels == [(1, 1, 1), (1, 3, 3), (3, 1, 1)]  # reduce, spatial, temporal
    assert tuple(model.stages["conv1"][0].kernel_size) == (3, 7, 7)  # the stem stays a full 3D conv


def test_feature_shapes_for_16x112() -> None:
    """Shapes of every stage through PyTorch's shape rules on the meta device."""
    with torch.device("meta"):
        model = build_backbone("s3dg").eval()
        x = torch.empty(2, 3, 16, 112, 112)
    shapes = []
    for stage in model.stages.values():
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 8, 56, 56), (192, 8, 28, 28), (480, 8, 14, 14), (832, 4, 7, 7), (1024, 2, 4, 4)]


def test_feature_shapes_for_64x224() -> None:
    """The paper's input: every stage on the meta device, then one real forward (batch 1)."""
    with torch.device("meta"):
        meta_model = build_backbone("s3dg").eval()
        x = torch.empty(1, 3, 64, 224, 224)
    shapes = []
    for stage in meta_model.stages.values():
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 32, 112, 112), (192, 32, 56, 56), (480, 32, 28, 28), (832, 16, 14, 14), (1024, 8, 7, 7)]
    torch.manual_seed(0)
    model = build_backbone("s3dg").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 64, 224, 224))
    assert features.shape == (1, 1024, 8, 7, 7)
    assert torch.isfinite(features).all() and (features >= 0).all()  # gated ReLU outputs
    assert features.amax() > 0


def test_forward_stages_and_embedding() -> None:
    torch.manual_seed(0)
    model = build_backbone("s3dg").eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        stages = model.forward_stages(clip)
        features = model.forward_features(clip)
        embedding = model(clip)
    assert {key: tuple(value.shape) for key, value in stages.items()} == {
        "pool3": (2, 480), "pool4": (2, 832), "pool5": (2, 1024)}
    torch.testing.assert_close(embedding, features.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(stages["pool5"], embedding)


def test_gate_is_a_per_channel_multiplication() -> None:
    """Against a NumPy evaluation of x * sigmoid(W mean(x) + b)."""
    torch.manual_seed(0)
    gate = FeatureGate(6)
    x = torch.randn(3, 6, 2, 4, 5, dtype=torch.float64)
    gate = gate.double()
    with torch.no_grad():
        out = gate(x).numpy()
    xs, weight, bias = x.numpy(), gate.fc.weight.detach().numpy(), gate.fc.bias.detach().numpy()
    for b in range(3):
        for c in range(6):
            logit = sum(weight[c, k] * xs[b, k].mean() for k in range(6)) + bias[c]
            np.testing.assert_allclose(out[b, c], xs[b, c] / (1 + math.exp(-logit)), rtol=1e-12)


def test_zero_gate_input_halves_the_features() -> None:
    """With the gate's linear map at zero, sigmoid(0) = 0.5: each gate, and so each block, halves its input."""
    torch.manual_seed(0)
    gate = FeatureGate(4)
    block = InceptionBlock(8, (4, 4, 6, 2, 3, 5), gating=True).eval()
    for module in (gate, block):
        for g in module.modules():
            if isinstance(g, FeatureGate):
                torch.nn.init.zeros_(g.fc.weight)
                torch.nn.init.zeros_(g.fc.bias)
    x = torch.randn(2, 4, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(gate(x), 0.5 * x)
        clip = torch.randn(2, 8, 4, 6, 6)
        gated = block(clip)
        for branch in block.branches:
            assert isinstance(branch[-1], FeatureGate)
            branch[-1] = torch.nn.Identity()
        ungated = block(clip)
    assert gated.shape == (2, 4 + 6 + 3 + 5, 4, 6, 6) and ungated.abs().sum() > 0
    assert torch.equal(gated, 0.5 * ungated)


@pytest.mark.parametrize("size, kernel, stride", [(7, 2, 2), (8, 3, 2), (7, 3, 2), (9, 3, 2), (5, 1, 2)])
def test_max_pool_same_padding_matches_tensorflow_windows(size: int, kernel: int, stride: int) -> None:
    """TF 'SAME': out = ceil(n / s), total padding max((out - 1) s + k - n, 0), the smaller half before."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, size, size + 1, size)
    pool = MaxPool3dSame((kernel, kernel, 1), (stride, stride, 1))
    out = pool(x).numpy()
    xs = x.numpy()
    windows = []
    for n in x.shape[2:4]:
        n_out = -(-n // stride)
        before = max((n_out - 1) * stride + kernel - n, 0) // 2
        windows.append([range(max(i * stride - before, 0), min(i * stride - before + kernel, n)) for i in range(n_out)])
    assert out.shape == (1, 2, len(windows[0]), len(windows[1]), size)
    for i, rows in enumerate(windows[0]):
        for j, cols in enumerate(windows[1]):
            expected = xs[:, :, list(rows)][:, :, :, list(cols)].max(axis=(2, 3))
            np.testing.assert_array_equal(out[:, :, i, j], expected)


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(1)
    model = build_backbone("s3dg", in_channels=2, gating=False)
    with torch.no_grad():
        model.train()(torch.randn(2, 2, 8, 32, 32))
    model.eval()
    save_backbone(model, tmp_path / "s3d.pt")
    loaded = load_backbone(tmp_path / "s3d.pt")
    assert loaded.build_args == {"name": "s3dg", "in_channels": 2, "kwargs": {"gating": False}}
    clip = torch.randn(1, 2, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))


def test_pace_training_steps_lower_the_loss() -> None:
    """Eight Adam steps (lr 1e-3) of pace prediction on a fixed batch of random uint8 frames [B, V=1, T, S, S, 3]
    at 8x64x64 (no jitter, no flip): gradients reach the whole network and it fits the pace labels."""
    torch.manual_seed(0)
    settings = PaceSettings(color_jitter=ColorJitterSettings(p=0.0), flip_p=0.0)
    method = PacePrediction(build_backbone("s3dg"), settings).train()
    batch = {
        "frames": torch.randint(0, 256, (8, 1, 8, 64, 64, 3), dtype=torch.uint8),
        "pace": torch.arange(8).remainder(4).view(8, 1),
        "video": torch.arange(8),
    }
    inputs = method.prepare(batch, torch.Generator().manual_seed(0))
    assert inputs["clip"].shape == (8, 3, 8, 64, 64)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        output = method(inputs)
        output.loss.backward()
        optimizer.step()
        losses.append(float(output.loss.detach()))
    assert losses[0] == pytest.approx(math.log(4), abs=0.3)  # chance level at the start
    assert min(losses[-3:]) < 0.4 * losses[0], losses


def test_pace_s3dg_pipeline_trains_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    """The ``pace_s3dg`` pipeline, shrunk (8x32x32 clips, batch 4, 3 steps):
    real ARID clips extracted by the CPU stage, trained by ``train.loop.train``, exported as an S3D-G backbone."""
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{shared_data / 'arid/train/Turn' / name}\n" for name in CLIPS))
    overrides = [
        "preprocess.size=[40, 48]", "preprocess.flow.algo=dis", "preprocess.flow.dis_preset=fast",
        "clip_len=8", "crop_size=32", "train.batch_size=4", "train.max_steps=3", "train.num_workers=0",
        "train.log_every=1",
    ]
    pipeline = load_pipeline("pace_s3dg", overrides=parse_overrides(overrides))
    assert (pipeline.train.backbone, pipeline.train.lr, pipeline.train.weight_decay) == ("s3dg", 0.01, 0.005)
    summary = extract(listing, tmp_path / "data", pipeline.preprocess, workers=1, progress=False)
    assert not summary.failed, summary.failed
    exported = train(pipeline.train, tmp_path / "data", tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(math.isfinite(r["loss_cls"]) for r in records)
    backbone = load_backbone(exported)
    assert isinstance(backbone, S3DG) and backbone.build_args["name"] == "s3dg"
