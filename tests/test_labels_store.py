"""Label storage without Dask: parts, consolidation, merging curriculum scores, the settings guard."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labels.store import (
    LabelError,
    VideoLabels,
    claim_settings,
    consolidate,
    content_digest,
    load_clip_labels,
    part_path,
    read_failures,
    read_settings,
    stored_inputs,
    write_arrays,
    write_part,
)

RECORDED = {"format": "vssl-labels", "version": 1, "clip_len": 16, "stride": 16, "crop_size": 112,
            "crop_variants": [[8, 29, False], [8, 29, True]], "source": {"frames": {}, "flow": {"bound": 20.0}}}


def _write(root: Path, task: str, video_id: str, starts: list[int], seed: int) -> VideoLabels:
    rng = np.random.default_rng(seed)
    n = 2 * len(starts)
    values = ({"motion": rng.integers(1, 17, (n, 14)), "appearance": rng.integers(1, 17, (n, 13))} if task == "stats"
              else {"score": rng.random(n).astype(np.float32)})
    labels = VideoLabels(np.repeat(starts, 2), np.tile([0, 1], len(starts)), values)
    path = part_path(root, task, video_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_part(path, task, video_id, labels, RECORDED)
    return labels


def test_scores_merge_by_video_start_and_variant(tmp_path: Path) -> None:
    root = tmp_path / "labels"
    claim_settings(root, "stats", RECORDED)
    claim_settings(root, "curriculum", RECORDED)
    stats_a = _write(root, "stats", "A/a", [0, 16, 32], 0)
    stats_b = _write(root, "stats", "B/b", [0], 1)
    scores_b = _write(root, "curriculum", "B/b", [0], 2)  # curriculum only for B/b
    consolidate(root, "stats", ["A/a", "B/b", "C/missing"], RECORDED)
    consolidate(root, "curriculum", ["A/a", "B/b"], RECORDED)
    labels = load_clip_labels(tmp_path)
    assert labels.video_id.tolist() == ["A/a"] * 6 + ["B/b"] * 2
    assert labels.start.tolist() == [0, 0, 16, 16, 32, 32, 0, 0]
    assert labels.crop.tolist() == [[8, 29]] * 8 and labels.flip.tolist() == [False, True] * 4
    np.testing.assert_array_equal(labels.motion, np.concatenate([stats_a.values["motion"], stats_b.values["motion"]]))
    np.testing.assert_array_equal(labels.appearance[6:], stats_b.values["appearance"])
    assert np.isnan(labels.score[:6]).all()
    np.testing.assert_array_equal(labels.score[6:], scores_b.values["score"])
    assert (labels.clip_len, labels.stride, labels.crop_size) == (16, 16, 112)


def test_other_settings_are_refused(tmp_path: Path) -> None:
    claim_settings(tmp_path, "stats", RECORDED)
    claim_settings(tmp_path, "stats", dict(RECORDED))  # the same settings again: fine
    with pytest.raises(LabelError, match=r"clip_len: 16 there, 8 now"):
        claim_settings(tmp_path, "stats", {**RECORDED, "clip_len": 8})
    with pytest.raises(LabelError, match="source.flow.bound: 20.0 there, 10.0 now"):
        claim_settings(tmp_path, "stats", {**RECORDED, "source": {"frames": {}, "flow": {"bound": 10.0}}})
    claim_settings(tmp_path, "curriculum", {**RECORDED, "stride": 8})  # another family, other settings: side by side
    _write(tmp_path, "stats", "A/a", [0], 0)
    with pytest.raises(LabelError, match="other label settings"):
        consolidate(tmp_path, "stats", ["A/a"], {**RECORDED, "stride": 8})


def test_curriculum_scores_of_other_clips_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "labels"
    claim_settings(root, "stats", RECORDED)
    claim_settings(root, "curriculum", {**RECORDED, "stride": 8})
    _write(root, "stats", "A/a", [0], 0)
    consolidate(root, "stats", ["A/a"], RECORDED)
    consolidate(root, "curriculum", [], {**RECORDED, "stride": 8})
    with pytest.raises(LabelError, match=r"curriculum scores made for other clips.*stride: 8"):
        load_clip_labels(tmp_path)


def test_stats_labels_are_required(tmp_path: Path) -> None:
    claim_settings(tmp_path / "labels", "stats", RECORDED)
    with pytest.raises(LabelError, match="make-labels --task stats"):
        load_clip_labels(tmp_path)


def test_content_digest_follows_the_arrays_and_the_input_fingerprint_is_kept(tmp_path: Path) -> None:
    arrays = {"videos": np.array(["A/a", "B/b", "C/c"]), "vector": np.arange(6, dtype=np.float32).reshape(3, 2)}
    write_arrays(tmp_path / "one.h5", "fisher", "", arrays, RECORDED)
    write_arrays(tmp_path / "two.h5", "fisher", "", arrays, RECORDED, inputs="abc")
    digest = content_digest(tmp_path / "one.h5")
    assert content_digest(tmp_path / "two.h5", block_rows=2) == digest  # however it was written and read
    for changed in ({**arrays, "videos": np.array(["A/a", "B/b", "D/d"])}, {**arrays, "vector": arrays["vector"] + 1},
                    {key: value[:2] for key, value in arrays.items()}):
        write_arrays(tmp_path / "other.h5", "fisher", "", changed, RECORDED)
        assert content_digest(tmp_path / "other.h5") != digest
    assert stored_inputs(tmp_path / "two.h5", "fisher", RECORDED) == "abc"
    assert stored_inputs(tmp_path / "one.h5", "fisher", RECORDED) is None  # written without a fingerprint
    assert stored_inputs(tmp_path / "two.h5", "fisher", {**RECORDED, "stride": 8}) is None  # other settings
    assert stored_inputs(tmp_path / "two.h5", "clusters", RECORDED) is None  # another family's file
    assert stored_inputs(tmp_path / "none.h5", "fisher", RECORDED) is None
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(LabelError, match="broken.h5: unreadable labels"):
        content_digest(tmp_path / "broken.h5")


@pytest.mark.parametrize("text", ["[]", '"stats"', '{"format": "other", "version": 1}'])
def test_foreign_settings_files_are_refused_naming_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "labels/stats/settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(LabelError, match=f"^{path}: not vssl-labels version 1 settings$"):
        read_settings(tmp_path / "labels", "stats")


def test_a_damaged_failure_record_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "stats/failures.json"
    path.parent.mkdir()
    assert read_failures(tmp_path, "stats") == {}
    path.write_text('{"A/a": {"path": "a.mp4"')
    with pytest.raises(LabelError, match=f"^{path}: unreadable failure record .*; delete it to try every video again$"):
        read_failures(tmp_path, "stats")
    path.write_text("[]")
    with pytest.raises(LabelError, match=f"^{path}: not a failure record"):
        read_failures(tmp_path, "stats")
