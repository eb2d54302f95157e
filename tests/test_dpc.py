"""Dense Predictive Coding: R2D3D sizes and layout, ConvGRU equations, sequential prediction, the dense loss
against a brute-force loop, the target-kind counts, the evaluation head, and a tiny model overfitting real clips."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from train.backbones import build_backbone
from train.backbones.r2d3d import BatchStatisticsNorm3d
from train.predictive.dpc import (DPC, ConvGRUCell, DPCClassifier, TargetKind, block_maps, dense_predictive_loss,
                                  target_kind_counts, target_kinds)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def r2d3d_count(in_channels: int, blocks: tuple[int, ...]) -> int:
    """Stem 1x7x7 + BN; basic blocks of 1x3x3 (stages 1-2) or 3x3x3 (3-4) convs with BN; 1x1x1 projection
    shortcuts + BN where a block changes width or stride."""
    total = in_channels * 64 * 49 + 2 * 64
    width_in = 64
    for stage, (n_blocks, width, volume) in enumerate(zip(blocks, (64, 128, 256, 256), (9, 9, 27, 27))):
        for b in range(n_blocks):
            block_in = width_in if b == 0 else width
            total += block_in * width * volume + width * width * volume + 4 * width
            if b == 0 and (stage > 0 or block_in != width):
                total += block_in * width + 2 * width
        width_in = width
    return total


def conv_gru_count(channels: int, hidden: int) -> int:
    return 3 * ((channels + hidden) * hidden + hidden)  # reset, update, out gates, 1x1 kernels with bias


def test_parameter_counts_match_dpc() -> None:
    assert n_params(build_backbone("r2d3d_18")) == r2d3d_count(3, (2, 2, 2, 2)) == 14_057_536
    assert n_params(build_backbone("r2d3d_34")) == r2d3d_count(3, (3, 4, 6, 3)) == 32_422_208
    model = DPC(build_backbone("r2d3d_18", batch_statistics=True))
    assert n_params(model.aggregator) == conv_gru_count(256, 256) == 393_984
    assert n_params(model.predictor) == 2 * (256 * 256 + 256) == 131_584
    assert n_params(model) == 14_583_104  # DPC-R18 as reported by the authors' code
    head = DPCClassifier(build_backbone("r2d3d_18"), num_classes=101)
    assert n_params(head) == 14_057_536 + conv_gru_count(256, 256) + 2 * 256 + 256 * 101 + 101


def test_r2d3d_layout() -> None:
    """2D stages keep time, 3D stages halve it; 5x128x128 -> [256, 2, 4, 4] (DPC's 4x4 map)."""
    with torch.device("meta"):
        model = build_backbone("r2d3d_18")
        x = torch.empty(2, 3, 5, 128, 128)
    shapes = []
    for stage in model.stages.values():
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 5, 64, 64), (64, 5, 32, 32), (128, 5, 16, 16), (256, 3, 8, 8), (256, 2, 4, 4)]
    kernels = {m.kernel_size for m in model.stages["conv3"].modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(1, 3, 3), (1, 1, 1)}
    kernels = {m.kernel_size for m in model.stages["conv4"].modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(3, 3, 3), (1, 1, 1)}
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert model.stage_channels == {"pool3": 128, "pool4": 256, "pool5": 256} and model.num_features == 256


def test_r2d3d_last_block_has_no_relu_and_batch_statistics() -> None:
    torch.manual_seed(0)
    model = build_backbone("r2d3d_18", batch_statistics=True)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(norms) == 20 and all(isinstance(m, BatchStatisticsNorm3d) for m in norms)
    clip = torch.randn(2, 3, 5, 32, 32) * 3 + 1
    with torch.no_grad():
        before_last = model.stages["conv4"](model.stages["conv3"](model.stages["conv2"](model.stages["conv1"](clip))))
        features = model.forward_features(clip)
        running_mean = norms[0].running_mean.clone()
        evaluated = model.eval().forward_features(clip)
    assert float(before_last.min()) == 0.0 and float(features.min()) < 0  # ReLU everywhere but the end
    torch.testing.assert_close(evaluated, features)  # batch statistics also in eval mode
    assert torch.equal(norms[0].running_mean, running_mean) and float(running_mean.abs().max()) > 0
    plain = build_backbone("r2d3d_18").eval()
    plain.load_state_dict(model.state_dict())  # the same state dict: loads for evaluation
    with torch.no_grad():
        assert not torch.allclose(plain.forward_features(clip), features)  # running statistics there


def test_conv_gru_cell_equations() -> None:
    torch.manual_seed(1)
    cell = ConvGRUCell(3, 4, kernel_size=1)
    torch.nn.init.normal_(cell.reset_gate.bias)
    x, state = torch.randn(2, 3, 2, 2), torch.randn(2, 4, 2, 2)

    def gate(conv: torch.nn.Conv2d, inputs: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], inputs) + conv.bias[None, :, None, None]

    reset = torch.sigmoid(gate(cell.reset_gate, torch.cat([x, state], 1)))
    update = torch.sigmoid(gate(cell.update_gate, torch.cat([x, state], 1)))
    candidate = torch.tanh(gate(cell.out_gate, torch.cat([x, reset * state], 1)))
    torch.testing.assert_close(cell(x, state), (1 - update) * state + update * candidate)
    torch.testing.assert_close(cell(x), cell(x, torch.zeros_like(state)))


def test_prediction_is_sequential_and_sees_only_context_blocks() -> None:
    """(With running BN statistics: with batch statistics, the target blocks move the BN statistics.)"""
    torch.manual_seed(2)
    model = DPC(build_backbone("r2d3d_18"), pred_steps=2).eval()
    blocks = torch.randn(2, 4, 3, 5, 32, 32)
    with torch.no_grad():
        predictions, targets = model(blocks)
        features = block_maps(model.backbone, blocks).mean(dim=3)
        state = None
        for i in range(2):
            state = model.aggregator.cell(features[:, i].relu(), state)
        first = model.predictor(state)
        second = model.predictor(model.aggregator.cell(first.relu(), state))
        perturbed = blocks.clone()
        perturbed[:, 2:] = torch.randn_like(perturbed[:, 2:])
        unchanged, _ = model(perturbed)
    torch.testing.assert_close(predictions[:, 0], first)
    torch.testing.assert_close(predictions[:, 1], second)
    torch.testing.assert_close(targets, features[:, 2:])  # targets keep their sign (no ReLU)
    torch.testing.assert_close(unchanged, predictions)


def brute_force_dense_loss(predictions: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Loop over every predicted vector (b, p, y, x): cross-entropy against every target vector of the batch."""
    batch, steps, _, height, width = predictions.shape
    cells = [(b, p, y, x) for b in range(batch) for p in range(steps) for y in range(height) for x in range(width)]
    total, correct = 0.0, 0
    for b, p, y, x in cells:
        scores = [float(predictions[b, p, :, y, x] @ targets[b2, p2, :, y2, x2]) for b2, p2, y2, x2 in cells]
        positive = scores[cells.index((b, p, y, x))]
        top = max(scores)
        total += top + math.log(sum(math.exp(s - top) for s in scores)) - positive
        correct += int(top == positive)
    return total / len(cells), correct / len(cells)


def test_dense_loss_equals_brute_force() -> None:
    generator = torch.Generator().manual_seed(3)
    targets = torch.randn(2, 3, 4, 2, 2, generator=generator, dtype=torch.float64)
    predictions = torch.randn(2, 3, 4, 2, 2, generator=generator, dtype=torch.float64)
    predictions[0, 1] = 3 * targets[0, 1]  # some correct predictions
    loss, accuracy = dense_predictive_loss(predictions, targets)
    expected_loss, expected_accuracy = brute_force_dense_loss(predictions.numpy(), targets.numpy())
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy.item() == pytest.approx(expected_accuracy) and expected_accuracy > 0


@pytest.mark.parametrize("batch, steps, positions", [(4, 3, 16), (2, 4, 16), (3, 1, 4), (1, 2, 1)])
def test_target_kind_counts_formula(batch: int, steps: int, positions: int) -> None:
    counts = target_kind_counts(batch, steps, positions)
    assert counts == {"positive": 1, "temporal_negative": steps - 1, "spatial_negative": (positions - 1) * steps,
                      "easy_negative": (batch - 1) * positions * steps}
    kinds = target_kinds(batch, steps, positions)
    for kind in TargetKind:  # every row has the same counts
        assert bool(((kinds == kind).sum(dim=1) == counts[kind.name.lower()]).all())


def test_target_kinds_equal_brute_force() -> None:
    batch, steps, positions = 2, 3, 4
    cells = [(b, p, s) for b in range(batch) for p in range(steps) for s in range(positions)]
    expected = torch.tensor([[
        TargetKind.EASY_NEGATIVE if b != b2 else TargetKind.SPATIAL_NEGATIVE if s != s2
        else TargetKind.TEMPORAL_NEGATIVE if p != p2 else TargetKind.POSITIVE
        for b2, p2, s2 in cells] for b, p, s in cells], dtype=torch.int8)
    assert torch.equal(target_kinds(batch, steps, positions), expected)


def test_classifier_head() -> None:
    torch.manual_seed(4)
    head = DPCClassifier(build_backbone("r2d3d_18"), num_classes=7).eval()
    blocks = torch.randn(3, 2, 3, 5, 32, 32)
    with torch.no_grad():
        logits = head(blocks)
        _, state = head.aggregator(block_maps(head.backbone, blocks).relu().mean(dim=3))
        expected = head.classifier(head.norm(state.mean(dim=(2, 3))))
    assert logits.shape == (3, 7)
    torch.testing.assert_close(logits, expected)
    assert head.classifier[0].p == 0.5 and head.aggregator.dropout.p == 0.1


def rgb_blocks(path: Path, blocks: int, frames: int, stride: int, size: int) -> torch.Tensor:
    """Blocks of ``frames`` frames taken every ``stride`` frames, RGB in [0, 1]: float [N, 3, L, size, size]."""
    capture = cv2.VideoCapture(str(path))
    rgb = []
    while len(rgb) < blocks * frames * stride:
        ok, frame = capture.read()
        assert ok, f"could not read enough frames from {path}"
        rgb.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA))
    capture.release()
    clip = torch.from_numpy(np.stack(rgb[::stride])).float().div(255)  # [N*L, size, size, 3]
    return clip.unflatten(0, (blocks, frames)).permute(0, 4, 1, 2, 3)


def test_tiny_dpc_overfits_real_clips(shared_data: Path) -> None:
    videos = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/example.avi",
              "BaseballPitch/v_BaseballPitch_g01_c01.avi"]
    batch = torch.stack([rgb_blocks(shared_data / "ucf101" / v, 4, 5, 3, 32) for v in videos])
    batch = (batch - 0.45) / 0.225
    torch.manual_seed(5)
    model = DPC(build_backbone("r2d3d_18", batch_statistics=True), pred_steps=2).train()
    # DPC's optimiser; its lr 1e-3 overshoots on a batch of 3 videos, 1e-4 falls steadily
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    losses = []
    for _ in range(8):
        loss, accuracy = dense_predictive_loss(*model(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.5 * math.log(3 * 2)  # 32x32 gives a 1x1 map: 6 keys, chance log 6
    assert losses[-1] < 0.2 * losses[0], losses
