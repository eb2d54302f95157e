"""The demo videos: appearance is drawn independently of the class, and only the motion tells the classes apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from preprocess.demo_data import CLASSES, TRAVEL, ZOOM_RATIO, draw_scene, render_clip, render_scene

SIZE = (32, 44)
N_FRAMES = 17  # odd: the middle frame has phase 0


def _area_and_centroid(coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame of float [T, H, W]: covered area (px), centroid x and y (px), each float64 [T]."""
    ys, xs = np.mgrid[: coverage.shape[1], : coverage.shape[2]]
    area = coverage.sum(axis=(1, 2), dtype=np.float64)
    return area, (coverage * xs).sum(axis=(1, 2)) / area, (coverage * ys).sum(axis=(1, 2)) / area


@pytest.mark.parametrize("seed", range(6))
def test_every_class_shows_the_same_scene_on_average(seed: int) -> None:
    """One scene rendered as each class: the same textures, and over the clip the shape covers the same
    area around the same centre, so averaging over time leaves nothing that tells the class."""
    scene = draw_scene(np.random.default_rng(seed), SIZE)
    mask_area, mask_x, mask_y = (v[0] for v in _area_and_centroid(scene.mask[None]))
    for kind in CLASSES:
        frames, coverage = render_scene(kind, scene, N_FRAMES)
        area, x, y = _area_and_centroid(coverage)
        assert area.mean() == pytest.approx(mask_area, rel=0.02), kind
        assert abs(x.mean() - mask_x) < 0.5 and abs(y.mean() - mask_y) < 0.5, kind
        background = coverage.max(axis=0) == 0
        assert background.sum() > 0.5 * background.size
        np.testing.assert_array_equal(frames[:, background], np.broadcast_to(scene.background[background],
                                                                              frames[:, background].shape))


@pytest.mark.parametrize("seed", range(6))
def test_the_class_decides_how_the_shape_moves(seed: int) -> None:
    """Shape centroid and area frame by frame, against the motion each class is defined by."""
    scene = draw_scene(np.random.default_rng(seed), SIZE)
    travel = TRAVEL * min(SIZE) * scene.speed
    moves = {}
    for kind in CLASSES:
        area, x, y = _area_and_centroid(render_scene(kind, scene, N_FRAMES)[1])
        moves[kind] = (x[-1] - x[0], y[-1] - y[0], area[-1] / area[0])
    assert moves["move_right"] == pytest.approx((travel, 0.0, 1.0), abs=0.05 * travel)
    assert moves["move_down"] == pytest.approx((0.0, travel, 1.0), abs=0.05 * travel)
    dx, dy, growth = moves["zoom"]
    assert abs(dx) < 0.5 and abs(dy) < 0.5
    assert growth == pytest.approx(ZOOM_RATIO ** (2 * scene.speed), rel=0.15)  # area grows with the scale squared
    dx, dy, growth = moves["rotate"]
    assert abs(dx) < 0.5 and abs(dy) < 0.5 and growth == pytest.approx(1.0, abs=0.05)
    frames, coverage = render_scene("rotate", scene, N_FRAMES)
    inside = (coverage[0] == 1) & (coverage[-1] == 1)
    turned = np.abs(frames[-1, inside].astype(int) - frames[0, inside].astype(int)).mean()
    assert turned > 10  # 0 if the texture stood still


def test_clip_colours_do_not_depend_on_the_class() -> None:
    """Mean colour of whole clips drawn as the demo draws them: class means lie within the spread of the videos."""
    rng = np.random.default_rng(0)
    means = {kind: np.array([render_clip(kind, rng, 8, SIZE).mean(axis=(0, 1, 2)) for _ in range(12)])
             for kind in CLASSES}
    spread = np.concatenate(list(means.values())).std(axis=0)
    overall = np.concatenate(list(means.values())).mean(axis=0)
    for kind, values in means.items():
        assert np.all(np.abs(values.mean(axis=0) - overall) < 0.7 * spread), kind


def test_an_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="known: move_right, move_down, rotate, zoom"):
        render_scene("jump", draw_scene(np.random.default_rng(0), SIZE), 2)


@pytest.mark.parametrize("args", [["--videos-per-class", "0"], ["--frames", "1"],
                                  ["--videos-per-class", "2", "--test-per-class", "2"]])
def test_counts_without_training_videos_or_flow_are_refused_before_writing(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["make-demo-data", str(tmp_path / "demo"), *args])
    assert result.exit_code == 2 and f"Error: {tmp_path / 'demo'}: demo videos need videos_per_class >= 1" in \
        result.output, result.output
    assert not (tmp_path / "demo").exists()
