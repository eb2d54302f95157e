"""Evaluation clip arithmetic and crops (pure functions); stream conversion is tested in test_streams.py."""
from __future__ import annotations

import numpy as np
import pytest

from eval.clips import center_crop, clip_indices, clip_starts
from eval.video_clips import random_clip, uniform_clips


def test_clip_starts_span_the_video_uniformly() -> None:
    assert clip_starts(100, 16, 10).tolist() == [round(i * 84 / 9) for i in range(10)]
    assert clip_starts(16, 16, 3).tolist() == [0, 0, 0]
    assert clip_starts(5, 16, 2).tolist() == [0, 0]
    with pytest.raises(ValueError, match="at least one frame"):
        clip_starts(0, 16, 2)


def test_short_videos_loop() -> None:
    assert clip_indices(0, 6, 4).tolist() == [0, 1, 2, 3, 0, 1]
    assert clip_indices(3, 4, 10).tolist() == [3, 4, 5, 6]


def test_center_crop_takes_the_middle_window() -> None:
    frames = np.arange(2 * 6 * 9, dtype=np.int64).reshape(2, 6, 9)
    crop = center_crop(frames, 4)
    np.testing.assert_array_equal(crop, frames[:, 1:5, 2:6])
    with pytest.raises(ValueError, match="v1: frames are 6x9, smaller than the 7x7 crop"):
        center_crop(frames, 7, where="v1")


class _FlowOnly:
    """A stand-in dataset holding one video's flow: u = column index, v = row index + 100 * t."""

    path = "fake"

    def __init__(self, n: int, h: int, w: int) -> None:
        t, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
        self.flow = np.stack([x, y + 100 * t], axis=-1).astype(np.float32)

    def read_flow(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        return self.flow[start:stop:step]


def test_random_clip_mirrors_flow_and_negates_u() -> None:
    ds = _FlowOnly(n=9, h=6, w=8)  # a video of 10 frames has 9 flows
    seen_flip = seen_plain = False
    for seed in range(20):
        clip = random_clip(ds, "flow", "v", 10, 4, 5, np.random.default_rng(seed))
        start = int(clip[0, 0, 0, 1]) // 100
        y = int(clip[0, 0, 0, 1]) % 100
        assert clip.shape == (4, 5, 5, 2) and 0 <= start <= 5 and 0 <= y <= 1
        np.testing.assert_array_equal(clip[:, 0, 0, 1] // 100, np.arange(start, start + 4))
        u = clip[0, 0, :, 0]
        if u[0] < 0:  # mirrored: columns run backwards and u is negated
            seen_flip = True
            np.testing.assert_array_equal(-u, np.arange(-u[0], -u[0] - 5, -1))
        else:
            seen_plain = True
            np.testing.assert_array_equal(u, np.arange(u[0], u[0] + 5))
    assert seen_flip and seen_plain


def test_uniform_clips_of_a_long_video_read_each_clip() -> None:
    ds = _FlowOnly(n=99, h=6, w=8)
    clips = uniform_clips(ds, "flow", "v", 100, 3, 4, 4)
    assert clips.shape == (3, 4, 4, 4, 2)
    np.testing.assert_array_equal(clips[:, :, 0, 0, 1] // 100, [[0, 1, 2, 3], [48, 49, 50, 51], [95, 96, 97, 98]])


def test_random_clip_of_a_stream_shorter_than_its_video_names_the_video() -> None:
    ds = _FlowOnly(n=5, h=6, w=8)  # the video claims 10 frames (9 flows) but only 5 flows are stored
    with pytest.raises(ValueError, match=r"fake: v: asked for flow"):
        random_clip(ds, "flow", "v", 10, 9, 5, np.random.default_rng(0))


def test_strided_clips_of_another_length_than_training() -> None:
    """CVRL evaluates on 32-frame clips with stride 2: indices 2 apart, spread so the last clip ends at the end."""
    from train.clips import clip_span
    from eval.settings import ClipSettings

    assert clip_indices(3, 4, 100, stride=2).tolist() == [3, 5, 7, 9]
    assert clip_indices(5, 3, 8, stride=2).tolist() == [5, 7, 1]  # loops
    assert clip_span(32, 2) == 63 and clip_span(16) == 16
    ds = _FlowOnly(n=99, h=6, w=8)
    clips = uniform_clips(ds, "flow", "v", 100, 2, 4, 4, stride=3)
    np.testing.assert_array_equal(clips[:, :, 0, 0, 1] // 100, [[0, 3, 6, 9], [89, 92, 95, 98]])
    settings = ClipSettings(clip_len=16, frames=32, stride=2)
    assert settings.length == 32 and ClipSettings(clip_len=16).length == 16
    rng = np.random.default_rng(0)
    clip = random_clip(ds, "flow", "v", 100, 5, 4, rng, stride=2)
    t = clip[:, 0, 0, 1] // 100
    assert np.all(np.diff(t) == 2)
