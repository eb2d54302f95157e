"""Count sketch (labels/sketch.py): balanced stored projection, brute-force values, unbiased inner products."""
from __future__ import annotations

import numpy as np

from labels.sketch import SKETCH_DIM, CountSketch


def test_buckets_balanced_and_signs_plus_minus_one():
    sketch = CountSketch.create(10_001, seed=5)
    assert sketch.out_dim == SKETCH_DIM and sketch.in_dim == 10_001
    counts = np.bincount(sketch.buckets, minlength=SKETCH_DIM)
    assert counts.min() == 5 and counts.max() == 6 and counts.sum() == 10_001
    assert set(np.unique(sketch.signs)) == {-1, 1} and abs(int(sketch.signs.sum())) == 1
    short = CountSketch.create(1500, seed=5)
    assert len(np.unique(short.buckets)) == 1500  # fewer inputs than buckets: one input per bucket


def test_apply_equals_loop_over_input_dimensions():
    sketch = CountSketch.create(5003, out_dim=97, seed=1)
    x = np.random.default_rng(0).normal(size=(3, 5003))
    expected = np.zeros((3, 97))
    for i in range(5003):
        expected[:, sketch.buckets[i]] += sketch.signs[i] * x[:, i]
    sketched = sketch.apply(x)
    assert sketched.dtype == np.float32 and sketched.shape == (3, 97)
    np.testing.assert_array_equal(sketched, expected.astype(np.float32))
    np.testing.assert_array_equal(sketch.apply(x[1]), sketched[1])


def test_float64_accumulation_before_the_float32_result():
    """1 + 1e-8 - 1 is lost in float32 arithmetic but kept in float64 and then rounded once."""
    sketch = CountSketch(np.zeros(3, np.int64), np.array([1, 1, -1], np.int8), out_dim=1)
    assert sketch.apply(np.array([1.0, 1e-8, 1.0]))[0] == np.float32(1e-8)


def test_stored_projection_reproduces(tmp_path):
    sketch = CountSketch.create(3000, seed=11)
    again = CountSketch.create(3000, seed=11)
    np.testing.assert_array_equal(sketch.buckets, again.buckets)
    np.testing.assert_array_equal(sketch.signs, again.signs)
    assert not np.array_equal(sketch.buckets, CountSketch.create(3000, seed=12).buckets)
    sketch.save(tmp_path / "sketch.npz")
    loaded = CountSketch.load(tmp_path / "sketch.npz")
    x = np.random.default_rng(1).normal(size=(2, 3000))
    np.testing.assert_array_equal(loaded.apply(x), sketch.apply(x))


def mean_and_standard_error(sketches: list[CountSketch], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    estimates = np.array([float(np.dot(s.apply(x).astype(np.float64), s.apply(y))) for s in sketches])
    return estimates.mean(), estimates.std(ddof=1) / np.sqrt(len(estimates))


def test_inner_products_preserved_in_expectation():
    """Over 400 seeded sketches 1000 -> 50 the mean of <Sx, Sy> is within 4 standard errors of <x, y> (and of
    ||x||^2), while a sketch with all signs +1 is rejected by the same check: the test has power."""
    rng = np.random.default_rng(2024)
    x = np.abs(rng.normal(size=1000))
    y = np.abs(x + rng.normal(size=1000))
    sketches = [CountSketch.create(1000, out_dim=50, seed=seed) for seed in range(400)]
    mean, error = mean_and_standard_error(sketches, x, y)
    assert abs(mean - x @ y) < 4 * error and error < 0.02 * (x @ y)
    mean_norm, error_norm = mean_and_standard_error(sketches, x, x)
    assert abs(mean_norm - x @ x) < 4 * error_norm
    unsigned = [CountSketch(s.buckets, np.ones(1000, np.int8), 50) for s in sketches]
    biased_mean, biased_error = mean_and_standard_error(unsigned, x, y)
    assert abs(biased_mean - x @ y) > 20 * max(biased_error, error)
