"""CPC on video segments: the 2D ResNet-18 encoder, causality of every autoregressive model, the loss against a
brute-force loop, negatives, parameter counts, a tiny model overfitting real clips, and the evaluation pieces."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from train.backbones import build_backbone
from train.predictive.cpc import (CONTEXT_MODELS, CPC, CausalConv3d, SegmentClassifier, build_context_model,
                                  candidate_keys, cpc_loss, distance_to_pretrained, encode_segments, prediction_pairs)

TORCHVISION_RESNET18 = 11_689_512  # torchvision.models.resnet18(): 1000-way fc included


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_2d_parameter_count_is_torchvision_minus_fc() -> None:
    assert n_params(build_backbone("resnet18_2d")) == TORCHVISION_RESNET18 - (512 * 1000 + 1000) == 11_176_512
    # C·F stacked channels only widen the first 7x7 convolution
    assert n_params(build_backbone("resnet18_2d", in_channels=20)) == 11_176_512 + (20 - 3) * 64 * 7 * 7


def test_resnet18_2d_shapes_at_224() -> None:
    with torch.device("meta"):
        model = build_backbone("resnet18_2d", in_channels=20)
        segment = torch.empty(2, 20, 1, 224, 224)
    assert model.forward_features(segment).shape == (2, 512, 1, 7, 7)
    assert {key: tuple(value.shape) for key, value in model.forward_stages(segment).items()} == {
        "pool3": (2, 128), "pool4": (2, 256), "pool5": (2, 512)}
    assert all(not isinstance(m, torch.nn.Conv3d) for m in model.modules())


def test_resnet18_2d_frames_are_encoded_independently() -> None:
    torch.manual_seed(0)
    model = build_backbone("resnet18_2d", in_channels=2).eval()
    clip = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        together = model.forward_features(clip)
        alone = model.forward_features(clip[:, :, 1:2])
    assert together.shape == (2, 512, 3, 1, 1)
    torch.testing.assert_close(together[:, :, 1:2], alone, rtol=1e-5, atol=1e-5)


def test_causal_conv_equals_masked_full_kernel() -> None:
    """A k_t = 2 causal conv is the 3x3x3 convolution whose future temporal tap is masked to zero."""
    torch.manual_seed(1)
    causal = CausalConv3d(3, 4, (2, 3, 3), bias=False)
    masked = torch.zeros(4, 3, 3, 3, 3)
    masked[:, :, :2] = causal.conv.weight  # taps t-1, t; tap t+1 stays zero
    x = torch.randn(2, 3, 5, 6, 6)
    reference = torch.nn.functional.conv3d(x, masked, padding=1)
    torch.testing.assert_close(causal(x), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CONTEXT_MODELS))
def test_context_models_are_causal(name: str) -> None:
    """Perturbing h_{t+1} leaves c_1..c_t unchanged and changes c_{t+1} (eval mode: BN uses fixed statistics)."""
    torch.manual_seed(2)
    model = build_context_model(name, 8, 6).eval()
    features = torch.randn(2, 6, 8, 4, 4)
    with torch.no_grad():
        contexts = model(features)
        for t in range(5):
            perturbed = features.clone()
            perturbed[:, t + 1] += torch.randn_like(perturbed[:, t + 1])
            changed = model(perturbed)
            assert torch.equal(changed[:, : t + 1], contexts[:, : t + 1]), f"{name}: c_{t} saw segment {t + 1}"
            assert not torch.allclose(changed[:, t + 1], contexts[:, t + 1])
    assert contexts.shape[:3] == (2, 6, 6)


def test_cpc_contexts_are_causal_end_to_end() -> None:
    torch.manual_seed(3)
    model = CPC(build_backbone("resnet18_2d", in_channels=4), context_channels=16, segments=4).eval()
    segments = torch.randn(2, 4, 4, 32, 32)
    with torch.no_grad():
        contexts = model.contexts(encode_segments(model.encoder, segments))
        perturbed = segments.clone()
        perturbed[:, 2] = torch.randn_like(perturbed[:, 2])
        changed = model.contexts(encode_segments(model.encoder, perturbed))
    assert torch.equal(changed[:, :2], contexts[:, :2])
    assert not torch.allclose(changed[:, 2], contexts[:, 2])


def brute_force_cpc_loss(predictions: np.ndarray, targets: np.ndarray, exclude_same_video: bool
                         ) -> tuple[float, list[float]]:
    """Loop over videos b, origins t and steps k (t + k < T): -log softmax of <pred, z_j> at the positive."""
    batch, segments, steps, _ = predictions.shape
    total, correct, counted = 0.0, [0] * steps, [0] * steps
    for b in range(batch):
        for t in range(segments):
            for k in range(1, steps + 1):
                if t + k >= segments:
                    continue
                keys = [(b2, t2) for b2 in range(batch) for t2 in range(segments)
                        if not (exclude_same_video and b2 == b and t2 != t + k)]
                scores = [float(predictions[b, t, k - 1] @ targets[b2, t2]) for b2, t2 in keys]
                positive = scores[keys.index((b, t + k))]
                total += math.log(sum(math.exp(s - max(scores)) for s in scores)) + max(scores) - positive
                correct[k - 1] += int(max(scores) == positive)
                counted[k - 1] += 1
    return total / batch, [c / n for c, n in zip(correct, counted)]


@pytest.mark.parametrize("exclude_same_video", [False, True])
@pytest.mark.parametrize("steps", [3, 2])
def test_cpc_loss_equals_brute_force(exclude_same_video: bool, steps: int) -> None:
    generator = torch.Generator().manual_seed(4)
    batch, segments, dim = 3, 4, 5
    targets = torch.randn(batch, segments, dim, generator=generator, dtype=torch.float64)
    predictions = torch.randn(batch, segments, steps, dim, generator=generator, dtype=torch.float64)
    # make some predictions right so the accuracies are not all zero
    predictions[:, 0, 0] = 2 * targets[:, 1]
    result = cpc_loss(predictions, targets, exclude_same_video)
    expected_loss, expected_accuracy = brute_force_cpc_loss(predictions.numpy(), targets.numpy(), exclude_same_video)
    assert result.loss.item() == pytest.approx(expected_loss, rel=1e-5)
    np.testing.assert_allclose(result.accuracy_per_step.numpy(), expected_accuracy, rtol=1e-6)
    assert result.accuracy_per_step.shape == (steps,) and result.accuracy_per_step[0] > 0


def test_prediction_pairs_and_negatives_count() -> None:
    origin, step = prediction_pairs(segments=10, steps=9)
    assert len(origin) == 45 and bool((origin + step < 10).all())  # sum_{t=1}^{9} (10 - t)
    origin, step = prediction_pairs(segments=10, steps=3)
    assert len(origin) == 9 + 8 + 7 and int(step.max()) == 3
    batch, segments = 4, 5
    positives = torch.tensor([[b * segments + 2, b * segments + 4] for b in range(batch)])
    everything = candidate_keys(batch, segments, positives, exclude_same_video=False)
    assert everything.shape == (batch, 2, batch * segments)
    assert bool((everything.sum(dim=2) - 1 == batch * segments - 1).all())  # B·T - 1 negatives
    other_videos = candidate_keys(batch, segments, positives, exclude_same_video=True)
    assert bool((other_videos.sum(dim=2) - 1 == (batch - 1) * segments).all())
    assert bool(other_videos.gather(2, positives[..., None]).all())


def test_parameter_counts_of_context_models_and_predictions() -> None:
    d = 512
    masked_3d = 3 * (2 * 9 * d * d) + 2 * (2 * d) + d  # 3 convs 2x3x3; BN between; bias on the last
    assert n_params(build_context_model("masked_conv3d", d, d)) == masked_3d == 14_158_336
    mid = 2 * 9 * d * d // (9 * d + 2 * d)  # Tran et al.'s M = 837
    conv2plus1d = 3 * (9 * d * mid + 2 * mid + 2 * mid * d) + 2 * (2 * d) + d
    assert n_params(build_context_model("masked_conv2plus1d", d, d)) == conv2plus1d == 14_149_534
    assert n_params(build_context_model("conv_lstm", d, d)) == 9 * 2 * d * 4 * d + 4 * d
    assert n_params(build_context_model("lstm", d, d)) == 4 * d * (2 * d) + 8 * d
    model = CPC(build_backbone("resnet18_2d", in_channels=20), segments=10)
    assert n_params(model.predictions) == 9 * d * d
    assert CPC(build_backbone("resnet18_2d"), segments=10, max_steps_ahead=3).steps_ahead == 3
    with pytest.raises(ValueError, match="max_steps_ahead must be >= 1"):
        CPC(build_backbone("resnet18_2d"), segments=10, max_steps_ahead=0)
    with pytest.raises(ValueError, match="unknown autoregressive model 'gru'"):
        build_context_model("gru", d, d)


def grey_difference_segments(path: Path, segments: int, frames: int, size: int) -> torch.Tensor:
    """Grey differences of consecutive frames, segments overlapping by half: float [T, F, size, size]."""
    capture = cv2.VideoCapture(str(path))
    grey = []
    stride = frames // 2
    while len(grey) < stride * (segments - 1) + frames + 1:
        ok, frame = capture.read()
        assert ok, f"could not read enough frames from {path}"
        grey.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (size, size), interpolation=cv2.INTER_AREA))
    capture.release()
    differences = np.diff(np.stack(grey).astype(np.float32) / 255.0, axis=0)
    return torch.stack([torch.from_numpy(differences[t * stride: t * stride + frames]) for t in range(segments)])


def test_tiny_cpc_overfits_real_clips(shared_data: Path) -> None:
    videos = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/example.avi",
              "BaseballPitch/v_BaseballPitch_g01_c01.avi"]
    batch = torch.stack([grey_difference_segments(shared_data / "ucf101" / v, 4, 4, 32) for v in videos]) * 10
    torch.manual_seed(5)
    model = CPC(build_backbone("resnet18_2d", in_channels=4), context_channels=32, segments=4).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # 1e-2 diverges on this tiny batch
    losses = []
    for _ in range(12):
        result = cpc_loss(*model(batch))
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(result.loss.item())
    assert losses[0] > 6 * math.log(12) * 0.5  # 6 predictions of 12 keys: chance is 6·log 12
    assert losses[-1] < 0.05 * losses[0], losses
    assert result.accuracy.item() == 1.0


def test_segment_classifier_takes_any_number_of_segments() -> None:
    torch.manual_seed(6)
    head = SegmentClassifier(build_backbone("resnet18_2d", in_channels=5), num_classes=6).eval()
    for segments in (8, 15):
        clips = torch.randn(2, segments, 5, 32, 32)
        with torch.no_grad():
            logits = head(clips)
            per_segment = torch.stack([head.encoder(clips[:, t, :, None]) for t in range(segments)], dim=1)
            expected = head.classifier(head.norm(per_segment.mean(dim=1)))
        assert logits.shape == (2, 6)
        torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert head.classifier[0].p == 0.5


def test_distance_to_pretrained() -> None:
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    pretrained = {name: value.clone() for name, value in model.state_dict().items() if name.startswith("0.")}
    assert distance_to_pretrained(model, pretrained).item() == 0.0
    with torch.no_grad():
        model[0].weight += 0.5
    penalty = distance_to_pretrained(model, pretrained)
    assert penalty.item() == pytest.approx(12 * 0.25)  # 12 weights moved by 0.5; the new head is not penalised
    penalty.backward()
    torch.testing.assert_close(model[0].weight.grad, torch.full((4, 3), 1.0))  # d/dθ ||θ - θ0||² = 2 (θ - θ0)
    assert model[1].weight.grad is None
    with pytest.raises(ValueError, match="no parameter"):
        distance_to_pretrained(model, {"other.weight": torch.zeros(1)})
