"""Dynamic scene protocol: clip windows, video descriptors, leave-one-out linear SVM (against a brute-force
loop and hand-made cases)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from eval.scenes import clip_windows, leave_one_out_svm, video_descriptor


def test_clip_windows_overlap_by_eight_frames() -> None:
    windows = clip_windows(45)
    assert windows.shape == (4, 16)
    assert windows[:, 0].tolist() == [0, 8, 16, 24] and windows[-1, -1] == 39  # frames 40..44 left out
    assert (windows[1:, :8] == windows[:-1, 8:]).all()
    assert clip_windows(40)[:, 0].tolist() == [0, 8, 16, 24] and clip_windows(40)[-1, -1] == 39
    assert clip_windows(16).tolist() == [list(range(16))]
    assert clip_windows(5).tolist() == [[i % 5 for i in range(16)]]  # short video: one looping clip
    assert clip_windows(20, clip_len=4, overlap=0)[:, 0].tolist() == [0, 4, 8, 12, 16]
    with pytest.raises(ValueError, match="overlap"):
        clip_windows(40, clip_len=16, overlap=16)


def test_video_descriptor_is_normalised_mean_of_clips() -> None:
    clips = np.array([[3.0, 0.0, 4.0], [1.0, 2.0, 0.0]])
    np.testing.assert_allclose(video_descriptor(clips), np.array([2.0, 1.0, 2.0]) / 3.0)
    np.testing.assert_array_equal(video_descriptor(np.zeros((2, 3))), np.zeros(3))


def _brute_force_leave_one_out(x, y):
    correct, predicted = 0, []
    for i in range(len(x)):
        rows = [j for j in range(len(x)) if j != i]
        model = LinearSVC(C=1.0, max_iter=10000, random_state=0).fit(x[rows], y[rows])
        predicted.append(model.predict(x[[i]])[0])
        correct += predicted[-1] == y[i]
    return correct / len(x), predicted


def test_leave_one_out_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(["beach", "fire", "street"], 5)
    centres = rng.normal(size=(3, 6))
    x = np.stack([video_descriptor(rng.normal(size=(4, 6)) + 0.3 * centres[i // 5]) for i in range(15)])
    result = leave_one_out_svm(x, labels)
    accuracy, predicted = _brute_force_leave_one_out(x, labels)
    assert result.accuracy == pytest.approx(accuracy)
    assert result.predictions.tolist() == predicted
    assert 0.0 < result.accuracy < 1.0  # a case with both hits and misses
    threaded = leave_one_out_svm(x, labels, n_jobs=2)
    assert threaded.accuracy == result.accuracy and threaded.predictions.tolist() == predicted


def test_leave_one_out_separable_and_outlier_cases() -> None:
    angles = np.r_[np.linspace(0.0, 0.3, 6), np.linspace(1.3, 1.57, 6)]
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.repeat([0, 1], 6)
    result = leave_one_out_svm(x, labels)
    assert result.accuracy == 1.0 and result.predictions.tolist() == labels.tolist()
    outlier = labels.copy()
    outlier[-1] = 0  # a class-0 video among the class-1 directions: only it is mislabelled
    result = leave_one_out_svm(x, outlier)
    assert result.accuracy == pytest.approx(11 / 12) and result.predictions[-1] == 1
    single = leave_one_out_svm(x[:3], np.array([0, 0, 1]))  # held-out 2 sees only class 0
    assert single.predictions[2] == 0
