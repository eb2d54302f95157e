"""Batched clip augmentations: exact geometry, colour maths against independent references, consistency."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from train.augment import (
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    gaussian_blur,
    horizontal_flip,
    random_grayscale,
    random_resized_crop,
    resized_crop,
    rgb_to_hsv,
    sample_crop_boxes,
)

PURE_COLOURS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (0.8, 0.3, 0.1),
                (0.2, 0.5, 0.9), (0.5, 0.5, 0.5), (0, 0, 0), (1, 1, 1)]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def real_clips(shared_data) -> torch.Tensor:
    """Two real 8-frame UCF101 clips, 60x80: float [2, 3, 8, 60, 80] in [0, 1]."""
    path = shared_data / "ucf101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < 16:
        ok, frame = capture.read()
        assert ok, f"could not read 16 frames from {path}"
        frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (80, 60), interpolation=cv2.INTER_AREA))
    capture.release()
    clip = torch.from_numpy(np.stack(frames)).float().div(255)  # [16, 60, 80, 3]
    return clip.permute(3, 0, 1, 2).reshape(3, 2, 8, 60, 80).transpose(0, 1).contiguous()


def constant_clips(batch: int = 6, frames: int = 5) -> torch.Tensor:
    """Each clip one mid-range colour over all frames and pixels: [B, 3, T, 8, 8]."""
    colours = 0.2 + 0.6 * torch.rand(batch, 3, generator=gen(5))
    return colours[:, :, None, None, None].expand(batch, 3, frames, 8, 8).contiguous()


def frames_equal(x: torch.Tensor) -> torch.Tensor:
    """Bool [B]: every frame of the clip equals its first frame (float tolerance)."""
    return torch.isclose(x, x[:, :, :1], atol=1e-6).flatten(1).all(dim=1)


# ---- consistency over the clip ------------------------------------------------------------------------------

def test_jitter_consistent_over_clip_and_per_frame_differs() -> None:
    x = constant_clips()
    consistent = color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=1.0, per_frame=False, generator=gen(0))
    assert frames_equal(consistent).all()
    assert not torch.allclose(consistent, x, atol=1e-3)
    per_frame = color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=1.0, per_frame=True, generator=gen(0))
    assert not frames_equal(per_frame).any()


def test_crop_flip_grayscale_blur_consistent_over_clip(real_clips: torch.Tensor) -> None:
    still = real_clips[:, :, :1].expand(-1, -1, 6, -1, -1).contiguous()  # a frozen frame repeated 6 times
    for op in (lambda x, pf, g: random_resized_crop(x, 24, per_frame=pf, generator=g),
               lambda x, pf, g: horizontal_flip(x, 0.5, per_frame=pf, generator=g),
               lambda x, pf, g: random_grayscale(x, 0.5, per_frame=pf, generator=g),
               lambda x, pf, g: gaussian_blur(x, (0.5, 3.0), 0.5, per_frame=pf, generator=g)):
        assert frames_equal(op(still, False, gen(3))).all()
        assert not frames_equal(torch.cat([op(still, True, gen(s)) for s in range(3)])).all()


# ---- colour maths --------------------------------------------------------------------------------------------

def test_hsv_matches_colorsys() -> None:
    colours = PURE_COLOURS + [tuple(c) for c in torch.rand(20, 3, generator=gen(1)).tolist()]
    x = torch.tensor(colours, dtype=torch.float32).T[None, :, None, :, None]  # [1, 3, 1, N, 1]
    hsv = rgb_to_hsv(x)[0, :, 0, :, 0].T.numpy()
    expected = np.array([colorsys.rgb_to_hsv(*c) for c in colours])
    np.testing.assert_allclose(hsv, expected, atol=1e-6)


@pytest.mark.parametrize("shift", [0.1, 0.25, -0.3, 0.5])
def test_hue_shift_of_pure_colours_matches_colorsys(shift: float) -> None:
    x = torch.tensor(PURE_COLOURS, dtype=torch.float32).T[None, :, None, :, None]
    shifted = adjust_hue(x, torch.tensor(shift))[0, :, 0, :, 0].T.numpy()
    expected = []
    for colour in PURE_COLOURS:
        h, s, v = colorsys.rgb_to_hsv(*colour)
        expected.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
    np.testing.assert_allclose(shifted, np.array(expected), atol=1e-6)


def test_grayscale_is_itu_601_luma(real_clips: torch.Tensor) -> None:
    out = random_grayscale(real_clips, p=1.0)
    rgb = real_clips.numpy().astype(np.float64)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    for channel in range(3):
        np.testing.assert_allclose(out[:, channel].numpy(), luma, atol=1e-6)
    assert torch.equal(random_grayscale(real_clips, p=0.0), real_clips)


def test_contrast_and_saturation_formulas(real_clips: torch.Tensor) -> None:
    rgb = real_clips.numpy().astype(np.float64)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]  # [B, T, H, W]
    frame_mean = luma.mean(axis=(2, 3))[:, None, :, None, None]
    expected_contrast = np.clip(frame_mean + 1.5 * (rgb - frame_mean), 0, 1)
    np.testing.assert_allclose(adjust_contrast(real_clips, torch.tensor(1.5)).numpy(), expected_contrast, atol=1e-5)
    expected_saturation = np.clip(luma[:, None] + 0.3 * (rgb - luma[:, None]), 0, 1)
    np.testing.assert_allclose(adjust_saturation(real_clips, torch.tensor(0.3)).numpy(), expected_saturation,
                               atol=1e-6)


def test_jitter_probability_zero_is_identity_and_dtype_kept(real_clips: torch.Tensor) -> None:
    torch.testing.assert_close(color_jitter(real_clips, p=0.0, generator=gen(0)), real_clips, atol=1e-6, rtol=0)
    half = real_clips.to(torch.bfloat16)
    assert color_jitter(half, p=1.0, generator=gen(0)).dtype == torch.bfloat16


# ---- geometry ------------------------------------------------------------------------------------------------

def test_flip_is_exact(real_clips: torch.Tensor) -> None:
    assert torch.equal(horizontal_flip(real_clips, p=1.0), real_clips.flip(-1))
    assert torch.equal(horizontal_flip(real_clips, p=0.0), real_clips)
    mixed = horizontal_flip(real_clips, p=0.5, per_frame=True, generator=gen(2))
    flipped = (mixed == real_clips.flip(-1)).flatten(3).all(-1).all(1)  # [B, T]
    kept = (mixed == real_clips).flatten(3).all(-1).all(1)
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_resized_crop_of_known_pattern() -> None:
    rows = torch.arange(40, dtype=torch.float32)[:, None]
    cols = torch.arange(50, dtype=torch.float32)[None, :]
    pattern = (rows * 100 + cols).expand(1, 2, 3, 40, 50).contiguous()  # value encodes (row, col)
    box = torch.tensor([[[5.0, 7.0, 16.0, 20.0]]])
    torch.testing.assert_close(resized_crop(pattern, box, (16, 20)), pattern[..., 5:21, 7:27])
    blocks = (rows // 2 * 100 + cols // 2).expand(1, 1, 2, 40, 50).contiguous()  # constant 2x2 blocks
    halved = resized_crop(blocks, torch.tensor([[[4.0, 6.0, 16.0, 20.0]]]), (8, 10))
    torch.testing.assert_close(halved, blocks[..., 4:20:2, 6:26:2])
    per_frame_boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [30.0, 40.0, 10.0, 10.0]]])
    two = resized_crop(blocks, per_frame_boxes, 10)
    torch.testing.assert_close(two[:, :, 0], blocks[:, :, 0, :10, :10])
    torch.testing.assert_close(two[:, :, 1], blocks[:, :, 1, 30:, 40:])


def test_full_frame_crop_is_identity(real_clips: torch.Tensor) -> None:
    out = random_resized_crop(real_clips, (60, 80), scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), generator=gen(0))
    torch.testing.assert_close(out, real_clips, atol=1e-4, rtol=0)


def test_sampled_boxes_lie_inside_and_follow_scale_and_ratio() -> None:
    x = torch.zeros(500, 1, 4, 60, 80)
    boxes = sample_crop_boxes(x, scale=(0.2, 0.6), ratio=(0.75, 1.333), per_frame=True, generator=gen(4))
    assert boxes.shape == (500, 4, 4)
    top, left, h, w = boxes.unbind(-1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 60 + 1e-4).all() and (left + w <= 80 + 1e-4).all()
    area = h * w / (60 * 80)  # no box can be clipped with these ranges (max side sqrt(0.6*4800*1.333) < 62)
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.6 + 1e-5
    assert (w / h).min() >= 0.75 - 1e-4 and (w / h).max() <= 1.333 + 1e-4
    assert sample_crop_boxes(x, per_frame=False, generator=gen(4)).shape == (500, 1, 4)


# ---- blur ----------------------------------------------------------------------------------------------------

def test_blur_preserves_constant_image_and_matches_scipy(real_clips: torch.Tensor) -> None:
    constant = torch.full((2, 3, 2, 20, 30), 0.37)
    torch.testing.assert_close(gaussian_blur(constant, p=1.0, kernel_size=7, generator=gen(0)), constant)
    sigma = 1.3
    blurred = gaussian_blur(real_clips, (sigma, sigma), p=1.0, kernel_size=9)
    plane = real_clips[1, 2, 3].numpy().astype(np.float64)
    expected = ndimage.gaussian_filter(plane, sigma, mode="mirror", truncate=4 / sigma)  # radius 4 = 9 // 2
    np.testing.assert_allclose(blurred[1, 2, 3].numpy(), expected, atol=1e-5)
    assert torch.equal(gaussian_blur(real_clips, p=0.0, generator=gen(0)), real_clips)


# ---- bad input ---------------------------------------------------------------------------------------------

def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"color_jitter: needs RGB clips \(C = 3\), got C = 2"):
        color_jitter(torch.rand(1, 2, 2, 4, 4))
    with pytest.raises(ValueError, match="expected a float clip batch"):
        horizontal_flip(torch.zeros(1, 3, 4, 4, dtype=torch.float32))
