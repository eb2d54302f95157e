"""Input discovery (class folders, list files) and UCF101 / HMDB51 split files."""
from __future__ import annotations

from pathlib import Path

import pytest

from preprocess.inputs import InputError, find_videos, parse_hmdb_split, parse_list_file, parse_ucf_split, scan_directory


def test_class_folders_of_the_real_ucf101_clips(shared_data: Path) -> None:
    videos = scan_directory(shared_data / "ucf101")
    assert [v.id for v in videos] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "Archery/example", "BaseballPitch/v_BaseballPitch_g01_c01"]
    assert [v.label for v in videos] == ["ApplyEyeMakeup", "Archery", "BaseballPitch"]
    assert all(Path(v.path).is_file() and v.split is None for v in videos)


def test_flat_folder_has_no_labels(shared_data: Path) -> None:
    videos = scan_directory(shared_data / "natural_videos")
    assert len(videos) == 9 and {v.label for v in videos} == {None}
    assert "pedestrians" in {v.id for v in videos}


def test_ucf101_split_files_in_the_input_folder(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "ucf"
    for cls in ("ApplyEyeMakeup", "Archery", "BaseballPitch"):
        (root / cls).mkdir(parents=True)
        for src in (shared_data / "ucf101" / cls).iterdir():
            (root / cls / src.name).symlink_to(src)
    (root / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\narchery/example.avi 2\n")
    (root / "testlist01.txt").write_text("BaseballPitch/v_BaseballPitch_g01_c01.avi\n")
    (root / "trainlist02.txt").write_text("BaseballPitch/v_BaseballPitch_g01_c01.avi 3\n")
    splits = {v.id: v.split for v in find_videos(root)}
    assert splits == {"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01": "train", "Archery/example": "train",
                      "BaseballPitch/v_BaseballPitch_g01_c01": "test"}
    assert {v.id: v.split for v in find_videos(root, split_number=2)}["BaseballPitch/v_BaseballPitch_g01_c01"] == "train"


def test_hmdb51_split_files_from_a_separate_folder(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "Archery_test_split1.txt").write_text("example.avi 2 \n")
    (tmp_path / "ApplyEyeMakeup_test_split1.txt").write_text("v_ApplyEyeMakeup_g01_c01.avi 1\n")
    (tmp_path / "BaseballPitch_test_split1.txt").write_text("v_BaseballPitch_g01_c01.avi 0\n")
    splits = {v.label: v.split for v in find_videos(shared_data / "ucf101", splits_dir=tmp_path)}
    assert splits == {"Archery": "test", "ApplyEyeMakeup": "train", "BaseballPitch": None}


def test_split_parsers_reject_malformed_lines() -> None:
    assert parse_ucf_split(["A/v_a.avi 1", "", "B/v_b.avi"], "t.txt") == {"A/v_a", "B/v_b"}
    assert parse_hmdb_split(["x.avi 1", "y.avi 2", "z.avi 0"], "s.txt") == {"x": "train", "y": "test", "z": None}
    with pytest.raises(InputError, match=r"s.txt:1: expected '<video> <0\|1\|2>'"):
        parse_hmdb_split(["x.avi 3"], "s.txt")
    with pytest.raises(InputError, match="t.txt:2"):
        parse_ucf_split(["A/v_a.avi 1", "A/v_b.avi one two"], "t.txt")


def test_list_file_with_labels_and_bad_entries(shared_data: Path, tmp_path: Path) -> None:
    kth = shared_data / "kth/person01_boxing_d1_uncomp.avi"
    lst = tmp_path / "list.txt"
    lst.write_text(f"# comment\n{kth} boxing\n{shared_data / 'ucf101/Archery/example.avi'} 4\n")
    videos = parse_list_file(lst)
    assert [(v.id, v.label) for v in videos] == [("Archery/example", "Archery"), ("kth/person01_boxing_d1_uncomp", "boxing")]
    lst.write_text("missing/video.avi\n")  # kept: the extraction records it as a failed input
    assert [(v.id, v.path) for v in parse_list_file(lst)] == [("missing/video", str(tmp_path / "missing/video.avi"))]


def test_empty_folder_and_missing_input_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no video files found"):
        scan_directory(tmp_path)
    with pytest.raises(InputError, match="no such directory or list file"):
        find_videos(tmp_path / "nope")


def test_a_video_named_like_a_class_folder_is_refused(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "Archery").mkdir()
    (tmp_path / "Archery" / "example.avi").symlink_to(shared_data / "ucf101/Archery/example.avi")
    (tmp_path / "Archery.avi").symlink_to(shared_data / "ucf101/Archery/example.avi")
    with pytest.raises(InputError, match="has the id 'Archery', which is also a folder of video"):
        scan_directory(tmp_path)
