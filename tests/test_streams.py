"""The streams module: channels, lengths, reading at any indices, the crop/flip rule, backbone input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from preprocess.streams import CHANNELS, crop, normalize, read_items, stream_length, to_input


class _Frames:
    """A stand-in dataset: frame t is filled with t (to see which items were read, and how often)."""

    path = "fake"

    def __init__(self, n: int) -> None:
        self.frames = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 6, 3), np.uint8)
        self.reads: list[tuple[int, int, int]] = []

    def read_frames(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        self.reads.append((start, stop, step))
        return self.frames[start:stop:step]


def test_channels_and_lengths() -> None:
    assert CHANNELS == {"frames": 3, "flow": 2, "diff": 1, "mb": 2}
    assert stream_length(10, "frames") == 10 and stream_length(10, "flow") == 9 and stream_length(10, "diff") == 9
    with pytest.raises(ValueError, match="v has 1 frame"):
        stream_length(1, "flow", where="v")
    with pytest.raises(ValueError, match="unknown stream 'depth'"):
        stream_length(5, "depth")


def test_read_items_reads_each_index_once_in_strided_runs() -> None:
    ds = _Frames(20)
    out = read_items(ds, "frames", "v", [4, 6, 8, 8, 0, 1])  # repeats and a wrap-around
    assert out[:, 0, 0, 0].tolist() == [4, 6, 8, 8, 0, 1]
    assert sorted(ds.reads) == [(0, 2, 1), (4, 9, 2)]
    with pytest.raises(ValueError, match="fake: v: asked for frames 30..30"):
        read_items(ds, "frames", "v", [30])


def test_crop_mirrors_and_negates_u_only_for_flow() -> None:
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(2, 5, 7, 2)).astype(np.float32)
    plain = crop(flow, 1, 2, 3, False, "flow")
    np.testing.assert_array_equal(plain, flow[:, 1:4, 2:5])
    mirrored = crop(flow, 1, 2, 3, True, "flow")
    np.testing.assert_array_equal(mirrored[..., 0], -flow[:, 1:4, 2:5, 0][:, :, ::-1])
    np.testing.assert_array_equal(mirrored[..., 1], flow[:, 1:4, 2:5, 1][:, :, ::-1])
    diff = rng.normal(size=(2, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(crop(diff, 0, 0, 4, True, "diff"), diff[:, :4, :4][:, :, ::-1])  # no sign change
    frames = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop(frames, 0, 3, 4, True), frames[:, :4, 3:7][:, :, ::-1])
    with pytest.raises(ValueError, match="does not fit frames of 5x7"):
        crop(frames, 2, 0, 4)
    with pytest.raises(ValueError, match="flow must be float"):
        crop(flow.astype(np.int16), 0, 0, 2, True, "flow")


def test_backbone_input_per_stream() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    x = to_input(frames, "frames")
    assert x.shape == (2, 3, 3, 4, 5) and x.dtype == torch.float32
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (torch.from_numpy(frames.astype(np.float32) / 255) - mean) / std
    torch.testing.assert_close(x, expected.permute(0, 4, 1, 2, 3))
    flow = rng.uniform(-10, 10, (1, 3, 4, 5, 2)).astype(np.float32)
    f = to_input(flow, "flow", flow_bound=10.0)
    assert f.shape == (1, 2, 3, 4, 5)
    np.testing.assert_allclose(f[0, 1, 2].numpy(), flow[0, 2, :, :, 1] / 10, rtol=1e-6)
    centred = to_input(flow, "flow", flow_bound=10.0, subtract_mean=True)
    np.testing.assert_allclose(centred[0, 0, 1].numpy(), (flow[0, 1, :, :, 0] - flow[0, 1, :, :, 0].mean()) / 10,
                               rtol=1e-5, atol=1e-6)
    diff = rng.uniform(-255, 255, (1, 3, 4, 5)).astype(np.float32)
    d = to_input(diff, "diff")
    assert d.shape == (1, 1, 3, 4, 5)
    np.testing.assert_allclose(d[0, 0].numpy(), diff[0] / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown stream 'depth'"):
        to_input(diff, "depth")
    with pytest.raises(ValueError, match="one mean and one positive std per channel"):
        normalize(torch.rand(1, 2, 3, 4, 4))
