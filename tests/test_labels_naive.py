"""A plain per-region loop implementation of the statistics labels, written from the definitions.

It is the independent reference for the vectorized ``labels.stats`` (and the baseline of
``bench/bench_labels.py``): it uses ``scipy.ndimage.convolve`` per frame, boolean masks built with
explicit slicing, ``np.add.at`` histograms and ``np.unique`` modes. The tests below pin it to the
authors' reference vectors, then check the package against it on inputs the vectors do not cover.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from labels import stats
from labels.curriculum import motion_score
from preprocess.flow_codec import dequantize

KERNEL_X = np.array([[-1, 0, 1]] * 3, dtype=np.float64)
KERNEL_Y = KERNEL_X.T.copy()
S = 112


def naive_masks() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Boolean [112, 112] masks of pattern 1 (16 blocks), 2 (4 rings), 3 (8 triangles)."""
    yy, xx = np.mgrid[0:S, 0:S]
    blocks = []
    for r in range(4):
        for c in range(4):
            m = np.zeros((S, S), bool)
            m[28 * r:28 * r + 28, 28 * c:28 * c + 28] = True
            blocks.append(m)

    def square(a: int, b: int) -> np.ndarray:
        m = np.zeros((S, S), bool)
        m[a:b, a:b] = True
        return m

    rings = [square(42, 70), square(28, 84) & ~square(42, 70), square(14, 98) & ~square(28, 84), ~square(14, 98)]
    tl, tr = (yy < 56) & (xx < 56), (yy < 56) & (xx >= 56)
    bl, br = (yy >= 56) & (xx < 56), (yy >= 56) & (xx >= 56)
    triangles = [tl & (yy >= xx), tl & (yy <= xx), tr & (xx + yy <= 111), tr & (xx + yy >= 111),
                 bl & (xx + yy <= 111), bl & (xx + yy >= 111), br & (yy >= xx), br & (yy <= xx)]
    return blocks, rings, triangles


MASKS = naive_masks()


def naive_direction(mag: np.ndarray, ang: np.ndarray, mask: np.ndarray) -> int:
    hist = np.zeros(8)
    a, g = ang[mask], mag[mask]
    lower = np.floor(a / 45).astype(int) % 8
    frac = np.mod(a, 45) / 45
    np.add.at(hist, lower, g * (1 - frac))
    np.add.at(hist, (lower + 1) % 8, g * frac)
    return int(np.argmax(hist)) + 1


def naive_component(c: np.ndarray) -> dict:
    dx = np.stack([ndimage.convolve(f, KERNEL_X.astype(c.dtype)) for f in c])
    dy = np.stack([ndimage.convolve(f, KERNEL_Y.astype(c.dtype)) for f in c])
    mag, ang = cv2.cartToPolar(dx.sum(0), dy.sum(0), angleInDegrees=True)
    out = {}
    for name, masks, reduce in (("p1", MASKS[0], np.sum), ("p2", MASKS[1], np.mean), ("p3", MASKS[2], np.sum)):
        k = int(np.argmax([reduce(mag[m]) for m in masks]))
        out[name] = (k + 1, naive_direction(mag, ang, masks[k]))
    out["global"] = int(np.argmax([np.sqrt(dx[t] ** 2 + dy[t] ** 2).sum() for t in range(len(c))])) + 1
    out["block_share"] = max(mag[m].sum() for m in MASKS[0]) / mag.sum() if mag.sum() > 0 else 0.0
    return out


def naive_motion(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = naive_component(u), naive_component(v)
    return np.array([*a["p1"], *b["p1"], *a["p2"], *b["p2"], *a["p3"], *b["p3"], a["global"], b["global"]])


def naive_score(u: np.ndarray, v: np.ndarray) -> float:
    return max(naive_component(u)["block_share"], naive_component(v)["block_share"])


def naive_consistency(rgb: np.ndarray, mask: np.ndarray) -> float:
    pixels = rgb[:, mask]  # [T, n, 3]
    score = 0.0
    for c in range(3):
        hist = np.stack([np.bincount(frame[:, c], minlength=256) for frame in pixels])
        score += hist.min(0).sum() / hist.max(0).sum()
    return score / 3


def naive_colour(rgb: np.ndarray, mask: np.ndarray) -> int:
    px = rgb[:, mask].reshape(-1, 3).astype(np.int64)
    values, counts = np.unique(px[:, 2] * 65536 + px[:, 1] * 256 + px[:, 0], return_counts=True)
    key = values[np.argmax(counts)]
    b, g, r = key // 65536, (key // 256) % 256, key % 256
    return 1 + 4 * int(b < 128) + 2 * int(r >= 128) + int(g >= 128)


def naive_appearance(rgb: np.ndarray) -> np.ndarray:
    out = []
    for masks in MASKS:
        scores = [naive_consistency(rgb, m) for m in masks]
        div, con = int(np.argmin(scores)), int(np.argmax(scores))
        out += [div + 1, naive_colour(rgb, masks[div]), con + 1, naive_colour(rgb, masks[con])]
    out.append(naive_colour(rgb, np.ones((S, S), bool)))
    return np.array(out)


@pytest.fixture(scope="module")
def reference(shared_data: Path) -> dict[str, np.ndarray]:
    with np.load(shared_data / "stats_reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("case", [0, 2, 9, 12, 17, 23])
def test_naive_matches_authors_reference(reference: dict[str, np.ndarray], case: int) -> None:
    flow = dequantize(reference["flow_q"][case], float(reference["flow_bound"]))
    np.testing.assert_array_equal(naive_motion(flow[..., 0], flow[..., 1]), reference["motion"][case])
    np.testing.assert_array_equal(naive_appearance(reference["rgb"][case]), reference["appearance"][case])


def _random_clip(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clip the reference vectors do not cover: smooth random flow with local bursts, few-colour frames."""
    base = rng.normal(0, 3, (15, 8, 8, 2)).astype(np.float32)
    flow = np.stack([cv2.resize(f, (S, S), interpolation=cv2.INTER_CUBIC) for f in base])
    y, x = rng.integers(0, S - 20, 2)
    flow[:, y:y + 20, x:x + 20] += rng.normal(0, 6, 2).astype(np.float32)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    rgb = palette[rng.integers(0, 6, (16, 14, 14))].repeat(8, axis=1).repeat(8, axis=2)
    return flow[..., 0], flow[..., 1], rgb


@pytest.mark.parametrize("seed", range(4))
def test_package_matches_naive_on_random_clips(seed: int) -> None:
    u, v, rgb = _random_clip(np.random.default_rng(seed))
    np.testing.assert_array_equal(stats.motion_statistics(u, v), naive_motion(u, v))
    np.testing.assert_array_equal(stats.appearance_statistics(rgb), naive_appearance(rgb))
    assert motion_score(u, v) == pytest.approx(naive_score(u, v), rel=1e-6)
