"""IR/LA clip augmentation: multi-scale square crops from the five scales, inside the frame, the same for
every frame of a clip."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from train.ir_augment import IR_CROP_SCALES, ir_augment, multiscale_crop_boxes


def test_crop_scales_are_the_fourth_roots_of_two() -> None:
    np.testing.assert_allclose(IR_CROP_SCALES, [2 ** (-k / 4) for k in range(5)], rtol=1e-10)


def test_boxes_are_squares_of_the_five_scales_inside_the_frame() -> None:
    x = torch.zeros(3000, 3, 1, 120, 160)
    boxes = multiscale_crop_boxes(x, generator=torch.Generator().manual_seed(0))
    assert boxes.shape == (3000, 1, 4)
    top, left, height, width = boxes[:, 0].unbind(-1)
    assert torch.equal(height, width)
    scale_index = torch.argmin((height[:, None] / 120 - torch.tensor(IR_CROP_SCALES)).abs(), dim=1)
    torch.testing.assert_close(height, torch.tensor(IR_CROP_SCALES)[scale_index] * 120)
    counts = np.bincount(scale_index.numpy(), minlength=5)
    assert stats.chisquare(counts).pvalue > 0.01  # each scale equally likely
    assert (top >= 0).all() and (left >= 0).all() and (top + height <= 120).all() and (left + width <= 160).all()
    assert left[height == 120].max() > 30  # a full-height square still moves along the long side


def test_ir_augment_is_clip_consistent() -> None:
    frame = torch.rand(4, 3, 1, 90, 120, generator=torch.Generator().manual_seed(1))
    out = ir_augment(frame.expand(4, 3, 6, 90, 120).contiguous(), size=48, generator=torch.Generator().manual_seed(2))
    assert out.shape == (4, 3, 6, 48, 48)
    assert torch.equal(out, out[:, :, :1].expand_as(out))
    again = ir_augment(frame.expand(4, 3, 6, 90, 120).contiguous(), size=48, generator=torch.Generator().manual_seed(3))
    assert (out - again).abs().flatten(1).mean(dim=1).min() > 0.05  # other draws, other clips
