"""CVRL pieces: gap sampler against its density (chi-square, fixed seed), clip indices, temporally consistent
two-clip augmentation, random-order colour jitter and solarisation against per-clip loops, head, loss."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from train.cvrl import cvrl_projection_head, symmetric_nt_xent
from train.cvrl_augment import (
    JITTER_OPS,
    CVRLAugmentSettings,
    apply_jitter,
    augment_pair,
    draw_jitter,
    solarize,
)
from train.clips import clip_span
from train.cvrl_sampling import clip_pair_indices, gap_probabilities, sample_gaps


def test_gap_probabilities_follow_the_cdf() -> None:
    m = 10
    cdf = [2 * k / m - k**2 / m**2 for k in range(m + 1)]
    np.testing.assert_allclose(gap_probabilities(m), np.diff(cdf))
    np.testing.assert_allclose(gap_probabilities(m), [(2 * (m - k) - 1) / m**2 for k in range(m)])
    assert gap_probabilities(m).sum() == pytest.approx(1.0) and gap_probabilities(0).tolist() == [1.0]


def test_gap_histogram_matches_the_decreasing_density() -> None:
    m, n = 40, 40_000
    gaps = sample_gaps(np.full(n, m), np.random.default_rng(0))
    assert gaps.min() == 0 and gaps.max() == m - 1
    observed = np.bincount(gaps, minlength=m)
    assert stats.chisquare(observed, n * gap_probabilities(m)).pvalue > 0.01
    # the same test rejects a uniform gap, and the mean is M/3 (mean of the linear density, minus the floor's 1/2)
    assert stats.chisquare(observed, np.full(m, n / m)).pvalue < 1e-12
    assert gaps.mean() == pytest.approx(m / 3 - 0.5, abs=0.2)


def test_clip_pair_indices_strides_bounds_swap_and_wrap() -> None:
    rng = np.random.default_rng(1)
    long_videos = np.full(4000, 200)
    pairs = clip_pair_indices(long_videos, rng, clip_frames=16, stride=2)
    assert pairs.shape == (4000, 2, 16) and clip_span(16, 2) == 31
    assert (np.diff(pairs, axis=2) == 2).all() and pairs.min() >= 0 and pairs.max() < 200  # no wrap needed
    gaps = pairs[:, 1, 0] - pairs[:, 0, 0]
    swapped = gaps < 0
    assert stats.binomtest(int(swapped.sum()), 4000, 0.5).pvalue > 0.01
    room = 200 - 31
    observed = np.bincount(np.abs(gaps), minlength=room)
    assert stats.chisquare(observed, 4000 * gap_probabilities(room)).pvalue > 0.01
    short = clip_pair_indices(np.array([10, 31, 5]), rng, clip_frames=16, stride=2)
    for clip in short[0]:  # a 10-frame video loops: (start + 2 j) mod 10
        assert clip.tolist() == [(clip[0] + 2 * j) % 10 for j in range(16)]
    assert (short[1] == np.arange(0, 31, 2)).all()  # exactly one clip long: no room, both clips the same
    assert short.max(axis=(1, 2)).tolist()[2] < 5


def real_frame_clips(shared_data: Path, batch: int, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """``batch`` clips, each one real frame (of a different UCF101/Kinetics-style video) repeated ``frames``
    times: float [batch, 3, frames, H, W] in [0, 1]."""
    paths = sorted((shared_data / "ucf101").glob("*/*.avi")) + sorted((shared_data / "kinetics_style").glob("*/*"))
    clips = []
    for path in paths[:batch]:
        capture = cv2.VideoCapture(str(path))
        image = cv2.cvtColor(cv2.resize(capture.read()[1], size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        capture.release()
        clips.append(torch.from_numpy(image).float().div(255).permute(2, 0, 1)[:, None].expand(3, frames, -1, -1))
    return torch.stack(clips).contiguous()


def test_augmentation_is_consistent_within_a_clip_and_differs_between_clips(shared_data: Path) -> None:
    clips = real_frame_clips(shared_data, batch=4, frames=4, size=(80, 64))
    first, second = augment_pair(clips, clips, CVRLAugmentSettings(crop_size=48), torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (4, 3, 4, 48, 48)
    for out in (first, second):  # every frame of a clip got the same crop, flip, colour, blur, solarisation
        assert torch.equal(out, out[:, :, :1].expand_as(out))
    per_video_difference = (first - second).abs().flatten(1).mean(dim=1)
    assert (per_video_difference > 0.1).all()  # the two clips of a video are augmented independently


def identity_geometry_and_colour(**changes) -> CVRLAugmentSettings:
    """Whole-frame crop at the frame size (pixels unchanged), no flip, jitter or grey, identity normalisation."""
    return CVRLAugmentSettings(crop_size=(32, 40), crop_scale=(1.0, 1.0), crop_ratio=(40 / 32, 40 / 32),
                               flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, mean=(0.0, 0.0, 0.0),
                               std=(1.0, 1.0, 1.0), **changes)


def test_blur_and_solarisation_are_asymmetric() -> None:
    clips = torch.rand(6, 3, 2, 32, 40, generator=torch.Generator().manual_seed(3))
    settings = identity_geometry_and_colour(blur_p=(0.0, 0.0), solarize_p=(0.0, 1.0))
    first, second = augment_pair(clips, clips, settings, torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, clips)
    torch.testing.assert_close(second, torch.where(clips >= 0.5, 1 - clips, clips))
    settings = identity_geometry_and_colour(blur_p=(1.0, 0.0), solarize_p=(0.0, 0.0), blur_sigma=(1.0, 2.0))
    first, second = augment_pair(clips, clips, settings, torch.Generator().manual_seed(0))
    torch.testing.assert_close(second, clips)

    def roughness(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(dim=1)

    assert (roughness(first) < 0.9 * roughness(clips)).all()  # every first clip is blurred


def test_solarize_matches_a_per_clip_loop() -> None:
    x = torch.rand(200, 1, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    out = solarize(x, p=0.2, generator=torch.Generator().manual_seed(1))
    flipped = [not torch.equal(out[b], x[b]) for b in range(200)]
    for b in range(200):
        expected = torch.where(x[b] >= 0.5, 1 - x[b], x[b]) if flipped[b] else x[b]
        assert torch.equal(out[b], expected)
    assert stats.binomtest(sum(flipped), 200, 0.2).pvalue > 0.01


def test_random_order_jitter_matches_a_per_clip_loop() -> None:
    x = torch.rand(8, 3, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    params = draw_jitter(8, strength=1.0, p=0.8, generator=torch.Generator().manual_seed(1))
    out = apply_jitter(x, params)
    for b in range(8):
        expected = x[b:b + 1]
        if params.apply[b]:
            for op_index in params.order[b].tolist():
                expected = JITTER_OPS[op_index](expected, params.factors[op_index, b])
        torch.testing.assert_close(out[b:b + 1], expected)
    many = draw_jitter(4000, strength=1.0, p=0.8, generator=torch.Generator().manual_seed(2))
    orders = {tuple(row) for row in many.order.tolist()}
    assert orders == set(itertools.permutations(range(4)))  # all 24 orders occur
    low, high = many.factors.amin(dim=1), many.factors.amax(dim=1)
    torch.testing.assert_close(low, torch.tensor([0.2, 0.2, 0.2, -0.2]), atol=2e-3, rtol=0)
    torch.testing.assert_close(high, torch.tensor([1.8, 1.8, 1.8, 0.2]), atol=2e-3, rtol=0)
    assert stats.binomtest(int(many.apply.sum()), 4000, 0.8).pvalue > 0.01


def test_projection_head_layout() -> None:
    head = cvrl_projection_head(2048)
    linears = [m for m in head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 2048)] * 3 + [(2048, 128)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head) == 3
    assert sum(p.numel() for p in head.parameters()) == 3 * 2048 * 2048 + 3 * 2 * 2048 + 2048 * 128 + 128 == 12_857_472
    assert head(torch.randn(4, 2048)).shape == (4, 128)


def test_symmetric_nt_xent_is_the_sum_of_both_directions() -> None:
    g = torch.Generator().manual_seed(4)
    view1, view2 = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    a, b = F.normalize(view1.double(), dim=1).numpy(), F.normalize(view2.double(), dim=1).numpy()

    def one_direction(query: np.ndarray, other: np.ndarray) -> float:
        """SimCLR's loss_a: row i against [other (positive at i), query without itself], mean over rows."""
        total = 0.0
        for i in range(len(query)):
            logits = [query[i] @ other[j] / 0.1 for j in range(len(other))]
            logits += [query[i] @ query[j] / 0.1 for j in range(len(query)) if j != i]
            total -= logits[i] - math.log(sum(math.exp(s) for s in logits))
        return total / len(query)

    expected = one_direction(a, b) + one_direction(b, a)
    assert symmetric_nt_xent(view1, view2).item() == pytest.approx(expected, rel=1e-5)
