"""Speed of the IDT prior's CPU steps on one core: Fisher vector encoding, count sketch, k-means.

Run: ``.venv/bin/python bench/bench_fisher.py [--trajectories 20000] [--kmeans-sizes 150 10000 100000]
[--repeats 3]``. Every figure is the best of the repeats of one call, as "wall s / CPU s" of this
single-threaded process (on a shared machine wall time includes waiting for the core; CPU time does not).
Baselines in the same run:
- encoding: the Video LA code's path, scikit-learn ``GaussianMixture.predict_proba`` on all rows at once,
  then the sufficient statistics (same model, same numbers);
- sketch: the Video LA code's dense [D, 2000] float64 projection matrix;
- k-means: scikit-learn ``KMeans`` with the same algorithm (Lloyd, random init, at most 20 iterations, one
  start; it stops when no label changes, so its time per iteration is compared), up to 10k vectors.
The encoders are fitted with K = 256 on rows of the release's KTH output (plus noise), with few EM
iterations: the encoding time does not depend on how well the GMM converged. The fit itself is timed per
EM iteration.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core: before numpy, scikit-learn and faiss load their thread pools

import argparse  # noqa: E402
import gzip  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labels.clusters import kmeans_assignments, scaled_cluster_count  # noqa: E402
from labels.fisher import FisherEncoder, power_l2_normalise  # noqa: E402
from labels.gaussian_mixture import DiagonalGmm  # noqa: E402
from labels.sketch import CountSketch  # noqa: E402

IDT_REFERENCE = ROOT.parent / "shared" / "data" / "idt_reference" / "person01_boxing_d1.original_release.txt.gz"


class Timing:
    """Best-of-``repeats`` wall and CPU seconds of one call of ``function``."""

    def __init__(self, function: Callable[[], Any], repeats: int) -> None:
        self.wall = self.cpu = np.inf
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            self.wall = min(self.wall, time.perf_counter() - wall)
            self.cpu = min(self.cpu, time.process_time() - cpu)

    def __str__(self) -> str:
        return f"{self.wall:.4g} / {self.cpu:.4g} s"

    def ratio(self, other: Timing) -> str:
        """How many times slower this is than ``other``, by wall and by CPU time."""
        return f"{self.wall / other.wall:.2f}x / {self.cpu / other.cpu:.2f}x"


def idt_like_rows(n: int, seed: int) -> np.ndarray:
    """float32 [n, 436]: rows of the release's KTH output, resampled with a little noise."""
    with gzip.open(IDT_REFERENCE, "rt") as f:
        reference = np.loadtxt(f)
    rng = np.random.default_rng(seed)
    rows = reference[rng.integers(0, len(reference), n)]
    rows[:, 10:] += rng.normal(scale=0.01, size=(n, 426))
    return rows.astype(np.float32)


def scikit_learn_gmm(gmm: DiagonalGmm) -> GaussianMixture:
    """A fitted-looking scikit-learn GaussianMixture with our parameters (for the baseline)."""
    model = GaussianMixture(gmm.n_components, covariance_type="diag")
    model.weights_, model.means_, model.covariances_ = gmm.weights, gmm.means, gmm.variances
    model.precisions_cholesky_ = 1.0 / np.sqrt(gmm.variances)
    return model


def video_la_fisher_vector(encoder: FisherEncoder, rows: np.ndarray) -> np.ndarray:
    """The baseline path for the video_cluster variant: predict_proba on all rows, then the statistics."""
    (block,) = encoder.blocks
    x = block.projection.transform(rows[:, block.start:block.stop])
    q, n = scikit_learn_gmm(block.gmm).predict_proba(x), x.shape[0]
    s0, s1, s2 = q.sum(0)[:, None] / n, q.T @ x / n, q.T @ x ** 2 / n
    means, variances = block.gmm.means, block.gmm.variances
    return power_l2_normalise(np.concatenate([(s1 - s0 * means).ravel(),
                                              (-s2 - s0 * means ** 2 + s0 * variances + 2 * s1 * means).ravel()]))


def bench_encoding(n_trajectories: int, repeats: int) -> None:
    sample, video = idt_like_rows(20_000, seed=0), idt_like_rows(n_trajectories, seed=1)
    print(f"Fisher vectors, K = 256, one video of {n_trajectories} trajectories (wall / CPU s, best of {repeats})")
    for variant in ("video_cluster", "standard"):
        fit = Timing(lambda: FisherEncoder.fit(sample, variant, n_components=256, n_init=1, max_iter=5), 1)
        encoder = FisherEncoder.fit(sample, variant, n_components=256, n_init=1, max_iter=5)
        sketch = CountSketch.create(encoder.dim)
        encode = Timing(lambda: encoder.transform(video), repeats)
        fisher_vector = encoder.transform(video)
        sketched = Timing(lambda: sketch.apply(fisher_vector), repeats)
        dims = "+".join(str(block.projection.out_dim) for block in encoder.blocks)
        print(f"  {variant}: PCA dims {dims}, FV dim {encoder.dim}\n    encode {encode}, sketch {sketched}, "
              f"fit with 5 EM iterations on 20k rows {fit}")
        if variant == "video_cluster":
            baseline = Timing(lambda: video_la_fisher_vector(encoder, video), repeats)
            difference = np.abs(video_la_fisher_vector(encoder, video) - fisher_vector).max()
            dense = sketch.matrix().toarray()
            dense_sketch = Timing(lambda: fisher_vector[None] @ dense, repeats)
            print(f"    baseline predict_proba path {baseline} ({baseline.ratio(encode)} ours, max |difference| "
                  f"{difference:.1e}); dense sketch matrix {dense_sketch} ({dense_sketch.ratio(sketched)} ours)")


def clustered_unit_vectors(n: int, seed: int) -> np.ndarray:
    """float32 [n, 2000] unit vectors around n / 20 random centres (so k-means has structure to iterate on)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), 2000))
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, 2000))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_kmeans(sizes: list[int], repeats: int) -> None:
    print("k-means, one run, 2000-d unit vectors, K = scaled_cluster_count(N) (wall / CPU s)")
    for n in sizes:
        x, k = clustered_unit_vectors(n, seed=n), scaled_cluster_count(n)
        runs = 1 if n > 10_000 else repeats
        ours = Timing(lambda: kmeans_assignments(x, k, runs=1), runs)
        line = f"  N {n}, K {k}: faiss {ours} (20 iterations)"
        if n <= 10_000:
            model = KMeans(k, init="random", n_init=1, max_iter=20, tol=0.0, algorithm="lloyd", random_state=0)
            baseline = Timing(lambda: model.fit(x), runs)
            per_iteration = baseline.cpu / model.n_iter_ / (ours.cpu / 20)
            line += (f", scikit-learn KMeans {baseline} ({model.n_iter_} iterations until no label changed; per "
                     f"iteration {per_iteration:.2f}x faiss by CPU time)")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=20_000)
    parser.add_argument("--kmeans-sizes", type=int, nargs="*", default=[150, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # the encoders' fits stop after 5 iterations
    bench_encoding(args.trajectories, args.repeats)
    bench_kmeans(args.kmeans_sizes, args.repeats)


if __name__ == "__main__":
    main()
