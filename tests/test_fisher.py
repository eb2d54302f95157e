"""Fisher vectors (labels/fisher.py, labels/gaussian_mixture.py) against brute-force per-descriptor loops,
scikit-learn's own PCA/GMM objects, and the Video LA code's closed form, on real IDT rows of the release."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from labels import fisher
from labels.fisher import (DESCRIPTOR_TYPES, EncodingError, FisherEncoder, choose_fit_videos, improved_fisher_vector,
                           power_l2_normalise, sample_rows, video_cluster_fisher_vector)
from labels.gaussian_mixture import DiagonalGmm, fit_gmm, fit_projection

K_SMALL = 4


@pytest.fixture(scope="module")
def idt_rows(shared_data) -> np.ndarray:
    """The original release's 2001 trajectories of the KTH boxing clip, float64 [2001, 436]."""
    path = shared_data / "idt_reference" / "person01_boxing_d1.original_release.txt.gz"
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f)
    assert rows.shape == (2001, 436)
    return rows


@pytest.fixture(scope="module")
def encoders(idt_rows) -> dict[str, FisherEncoder]:
    return {variant: FisherEncoder.fit(idt_rows, variant, n_components=K_SMALL, n_init=1, max_iter=100, seed=3)
            for variant in ("video_cluster", "standard")}


def tiny_gmm_and_data() -> tuple[GaussianMixture, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(loc, scale, size=(15, 3)) for loc, scale in ((0, 1), (4, 0.5), (-3, 2))])
    return GaussianMixture(3, covariance_type="diag", random_state=0).fit(x), x[::2] + 0.3


def as_diagonal_gmm(gmm: GaussianMixture) -> DiagonalGmm:
    return DiagonalGmm(gmm.weights_, gmm.means_, gmm.covariances_)


def brute_force_fisher_vector(x: np.ndarray, gmm: GaussianMixture, improved: bool) -> np.ndarray:
    """One descriptor and one Gaussian at a time, posteriors from scikit-learn's predict_proba."""
    q = gmm.predict_proba(x)
    n, (k, d) = x.shape[0], gmm.means_.shape
    g_mean, g_var = np.zeros((k, d)), np.zeros((k, d))
    for i in range(n):
        for j in range(k):
            diff = x[i] - gmm.means_[j]
            var = gmm.covariances_[j]
            if improved:
                g_mean[j] += q[i, j] * diff / np.sqrt(var) / (n * np.sqrt(gmm.weights_[j]))
                g_var[j] += q[i, j] * (diff ** 2 / var - 1) / (n * np.sqrt(2 * gmm.weights_[j]))
            else:
                g_mean[j] += q[i, j] * diff / n
                g_var[j] += q[i, j] * (var - diff ** 2) / n
    return np.concatenate([g_mean.ravel(), g_var.ravel()])


@pytest.mark.parametrize("improved", [False, True])
@pytest.mark.parametrize("chunk_rows", [4, 8192])
def test_fisher_vector_equals_per_descriptor_loop(improved, chunk_rows, monkeypatch):
    monkeypatch.setattr(fisher, "STATISTICS_CHUNK_ROWS", chunk_rows)  # 23 rows: 6 chunks, the last one short
    gmm, x = tiny_gmm_and_data()
    fisher_vector = improved_fisher_vector if improved else video_cluster_fisher_vector
    np.testing.assert_allclose(fisher_vector(x, as_diagonal_gmm(gmm)), brute_force_fisher_vector(x, gmm, improved),
                               rtol=1e-10, atol=1e-13)


def test_video_cluster_form_equals_video_la_sufficient_statistics():
    """The public code writes the variance part as -S2 - S0 mu^2 + S0 sigma^2 + 2 S1 mu (all / N)."""
    gmm, x = tiny_gmm_and_data()
    q, n = gmm.predict_proba(x), x.shape[0]
    s0, s1, s2 = q.sum(0)[:, None] / n, q.T @ x / n, q.T @ x ** 2 / n
    expected = np.concatenate([(s1 - s0 * gmm.means_).ravel(),
                               (-s2 - s0 * gmm.means_ ** 2 + s0 * gmm.covariances_ + 2 * s1 * gmm.means_).ravel()])
    np.testing.assert_allclose(video_cluster_fisher_vector(x, as_diagonal_gmm(gmm)), expected, rtol=1e-10, atol=1e-13)


def test_posteriors_and_projection_equal_scikit_learn(idt_rows):
    descriptors = idt_rows[:, 10:]
    for whiten, kept in ((False, 0.9), (True, 20)):
        pca = PCA(kept, whiten=whiten, svd_solver="full").fit(descriptors)
        projection = fit_projection(descriptors, kept, whiten)
        np.testing.assert_allclose(projection.transform(descriptors), pca.transform(descriptors), rtol=1e-9, atol=1e-9)
    projected = pca.transform(descriptors)
    gmm = GaussianMixture(K_SMALL, covariance_type="diag", max_iter=30, random_state=1).fit(projected)
    ours = fit_gmm(projected, K_SMALL, n_init=1, max_iter=30, seed=1)
    np.testing.assert_allclose(ours.posteriors(projected), gmm.predict_proba(projected), rtol=1e-7, atol=1e-10)


def test_video_cluster_pca_keeps_the_fewest_axes_for_90_percent(idt_rows, encoders):
    """Independent count from the singular values of the centred 426 descriptor dimensions."""
    descriptors = idt_rows[:, 10:]
    singular = np.linalg.svd(descriptors - descriptors.mean(0), compute_uv=False)
    explained = np.cumsum(singular ** 2) / np.sum(singular ** 2)
    expected = int(np.searchsorted(explained, 0.9, side="right") + 1)
    (block,) = encoders["video_cluster"].blocks
    assert (block.start, block.stop, block.projection.out_dim) == (10, 436, expected)
    assert explained[expected - 1] >= 0.9 > explained[expected - 2]
    np.testing.assert_array_equal(block.projection.scale, 1.0)


def test_standard_blocks_halve_each_descriptor_type_and_whiten(idt_rows, encoders):
    blocks = encoders["standard"].blocks
    assert [(b.start, b.stop) for b in blocks] == list(DESCRIPTOR_TYPES.values())
    assert [b.projection.out_dim for b in blocks] == [15, 48, 54, 48, 48]
    for block in blocks:
        projected = block.projection.transform(idt_rows[:, block.start:block.stop])
        np.testing.assert_allclose(projected.var(axis=0, ddof=1), 1.0, rtol=1e-9)
    assert encoders["standard"].dim == 2 * K_SMALL * 213


@pytest.mark.parametrize("variant", ["video_cluster", "standard"])
def test_encoder_equals_brute_force_on_real_rows(idt_rows, encoders, variant):
    """Whole encoder against scikit-learn's PCA + GMM fitted alike, the per-descriptor loop, power 0.5 + L2."""
    video = idt_rows[::7]
    improved = variant == "standard"
    groups = [(10, 436, 0.9)] if not improved else [(a, b, (b - a) // 2) for a, b in DESCRIPTOR_TYPES.values()]
    parts = []
    for start, stop, kept in groups:
        pca = PCA(kept, whiten=improved, svd_solver="full").fit(idt_rows[:, start:stop])
        gmm = GaussianMixture(K_SMALL, covariance_type="diag", n_init=1, max_iter=100, random_state=3)
        gmm.fit(pca.transform(idt_rows[:, start:stop]))
        raw = brute_force_fisher_vector(pca.transform(video[:, start:stop]), gmm, improved)
        powered = np.sign(raw) * np.sqrt(np.abs(raw))
        parts.append(powered / np.linalg.norm(powered))
    expected = np.concatenate(parts) / np.sqrt(len(parts))
    encoded = encoders[variant].transform(video)
    assert encoded.shape == (encoders[variant].dim,)
    np.testing.assert_allclose(encoded, expected, rtol=1e-6, atol=1e-9)
    assert np.linalg.norm(encoded) == pytest.approx(1.0, abs=1e-12)


def test_save_load_encodes_new_videos_identically(idt_rows, encoders, tmp_path):
    for variant, encoder in encoders.items():
        encoder.save(tmp_path / f"{variant}.npz")
        loaded = FisherEncoder.load(tmp_path / f"{variant}.npz")
        assert loaded.variant == variant and loaded.dim == encoder.dim
        np.testing.assert_array_equal(loaded.transform(idt_rows[1::5]), encoder.transform(idt_rows[1::5]))


def test_videos_without_usable_trajectories_raise_a_reason(encoders):
    with pytest.raises(EncodingError) as empty:
        encoders["video_cluster"].transform(np.zeros((0, 436), np.float32))
    assert empty.value.reason == "no trajectory"
    rows = np.ones((3, 436), np.float32)
    rows[1, 50] = np.nan
    with pytest.raises(EncodingError) as nan:
        encoders["standard"].transform(rows)
    assert "non-finite" in nan.value.reason and "1 trajector" in nan.value.reason
    with pytest.raises(ValueError):
        encoders["standard"].transform(np.ones((3, 426)))


def test_power_l2_normalise_values():
    np.testing.assert_allclose(power_l2_normalise(np.array([4.0, -9.0, 0.0])), np.array([2.0, -3.0, 0.0]) / np.sqrt(13))
    np.testing.assert_array_equal(power_l2_normalise(np.zeros(3)), np.zeros(3))


def test_sampling_is_seeded_per_video_and_without_replacement(idt_rows):
    first = sample_rows(idt_rows, video_index=4, per_video=500, seed=0)
    assert first.shape == (500, 436)
    np.testing.assert_array_equal(first, sample_rows(idt_rows, video_index=4, per_video=500, seed=0))
    assert not np.array_equal(first, sample_rows(idt_rows, video_index=5, per_video=500, seed=0))
    assert len(np.unique(first, axis=0)) == 500
    originals = {row.tobytes() for row in idt_rows}
    assert all(row.tobytes() in originals for row in first)
    assert sample_rows(idt_rows[:300], video_index=4).shape == (300, 436)
    chosen = choose_fit_videos(1000, 30, seed=2)
    assert len(np.unique(chosen)) == 30 and np.all(np.diff(chosen) > 0) and chosen.max() < 1000
    np.testing.assert_array_equal(choose_fit_videos(10, 30), np.arange(10))


def test_alpha_one_is_plain_l2_normalisation_and_is_saved(idt_rows, tmp_path):
    encoder = FisherEncoder.fit(idt_rows[:400], "video_cluster", n_components=2, max_iter=200, alpha=1.0)
    (block,) = encoder.blocks
    raw = video_cluster_fisher_vector(block.projection.transform(idt_rows[::3, 10:]), block.gmm)
    np.testing.assert_allclose(encoder.transform(idt_rows[::3]), raw / np.linalg.norm(raw), rtol=1e-9, atol=1e-12)
    encoder.save(tmp_path / "alpha.npz")
    assert FisherEncoder.load(tmp_path / "alpha.npz").alpha == 1.0
