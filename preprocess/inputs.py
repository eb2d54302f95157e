"""Input videos: a directory (flat or with class sub-folders) or a list file, plus optional split files.

Video ids are paths relative to the input root without the extension (``Archery/v_Archery_g01_c01``);
the label is the class folder (first path component) when there is one.

Split files understood (searched in ``splits_dir``, by default the input directory):
- UCF101: ``trainlist0N.txt`` / ``testlist0N.txt``, lines ``Class/v_Class_gXX_cYY.avi [index]``;
- HMDB51: ``<class>_test_splitN.txt``, lines ``<video file> <0|1|2>`` (1 train, 2 test, 0 unused).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".3gp"})
_HMDB_CODES = {"1": "train", "2": "test", "0": None}
MISSING = "no such video file"  # the failure reason of a listed video that is not there
HEAD_BYTES = 1 << 20  # a fingerprint hashes the first MB of a source


class InputError(ValueError):
    """An input directory, list file or split file that cannot be used; names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """One input video: ``id`` (relative path, no extension), absolute ``path``, ``label``, ``split``."""

    id: str
    path: str
    label: str | None = None
    split: str | None = None


def fingerprint(path: str | Path) -> dict[str, int | str]:
    """A cheap identity of a source file: ``{size, mtime_ns, head_sha1}`` (SHA-1 of its first MB)."""
    stat = os.stat(path)
    with open(path, "rb") as f:
        head = hashlib.sha1(f.read(HEAD_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha1": head}


def same_source(recorded: dict[str, int | str], path: str | Path) -> bool:
    """Whether ``path`` is still the file of fingerprint ``recorded``: same size and, unless its modification time
    is unchanged too, the same first MB."""
    stat = os.stat(path)
    if stat.st_size != recorded["size"]:
        return False
    return stat.st_mtime_ns == recorded["mtime_ns"] or fingerprint(path)["head_sha1"] == recorded["head_sha1"]


def _video_id(relative: PurePosixPath) -> str:
    return str(relative.with_suffix(""))


def _label_of(relative: PurePosixPath) -> str | None:
    return relative.parts[0] if len(relative.parts) > 1 else None


def scan_directory(root: str | Path) -> list[VideoSource]:
    """Every video file under ``root`` (recursively, by extension), sorted by id."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            rel = PurePosixPath(path.relative_to(root).as_posix())
            found.append(VideoSource(_video_id(rel), os.path.abspath(path), _label_of(rel)))
    return _unique(found, root)


def parse_list_file(path: str | Path) -> list[VideoSource]:
    """Videos named in a list file, one per line: ``PATH [LABEL]`` (PATH relative to the list's folder or
    absolute, a file that need not exist: see :data:`MISSING`; a purely numeric second field, as in UCF101 lists, is a class index and is ignored; without
    LABEL the class folder of PATH is used). Blank lines and ``#`` comments are skipped."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read list file: {exc}") from exc
    found = []
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise InputError(f"{path}:{number}: expected 'PATH [LABEL]', got {line.strip()!r}")
        video = Path(fields[0]) if Path(fields[0]).is_absolute() else path.parent / fields[0]
        # a missing file is kept: the extraction records it as a failed input (MISSING), like any bad video
        try:
            rel = PurePosixPath(Path(os.path.abspath(video)).relative_to(os.path.abspath(path.parent)).as_posix())
        except ValueError:  # outside the list's folder: keep class folder and file name
            rel = PurePosixPath(*Path(video).parts[-2:])
        label = fields[1] if len(fields) == 2 and not fields[1].isdigit() else _label_of(rel)
        found.append(VideoSource(_video_id(rel), os.path.abspath(video), label))
    return _unique(found, path)


def _unique(videos: list[VideoSource], where: Path) -> list[VideoSource]:
    seen: dict[str, str] = {}
    for v in videos:
        if v.id in seen:
            raise InputError(f"{where}: two videos share the id {v.id!r}: {seen[v.id]} and {v.path}")
        seen[v.id] = v.path
    if not videos:
        raise InputError(f"{where}: no video files found (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    for v in videos:  # ids become nested HDF5 groups: 'a' and 'a/b' cannot both be videos
        for parent in PurePosixPath(v.id).parents:
            if str(parent) in seen:
                raise InputError(f"{where}: video {seen[str(parent)]} has the id {str(parent)!r}, which is also "
                                 f"a folder of video {v.path}; rename one of them")
    return sorted(videos, key=lambda v: v.id)


def parse_ucf_split(lines: list[str], split: str) -> set[str]:
    """Video ids (``Class/v_name``) listed in a UCF101 train or test list; ``split`` names it in errors."""
    ids = set()
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
            raise InputError(f"{split}:{number}: expected 'Class/video.avi [index]', got {line.strip()!r}")
        ids.add(_video_id(PurePosixPath(fields[0].replace("\\", "/"))))
    return ids


def parse_hmdb_split(lines: list[str], split: str) -> dict[str, str | None]:
    """``{video file name without extension: 'train' | 'test' | None}`` from an HMDB51 split file."""
    out = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in _HMDB_CODES:
            raise InputError(f"{split}:{number}: expected '<video> <0|1|2>', got {line.strip()!r}")
        out[PurePosixPath(fields[0]).stem] = _HMDB_CODES[fields[1]]
    return out


def read_splits(splits_dir: str | Path, number: int = 1) -> tuple[dict[str, str], dict[str, str | None]]:
    """Split assignments found in ``splits_dir`` for split ``number``: ``(by video id, by file stem)``
    from UCF101-style and HMDB51-style files respectively (both empty when there are none)."""
    folder = Path(splits_dir)
    by_id: dict[str, str] = {}
    for split in ("train", "test"):
        path = folder / f"{split}list{number:02d}.txt"
        if path.is_file():
            for vid in parse_ucf_split(path.read_text().splitlines(), str(path)):
                by_id[vid] = split
    by_stem: dict[str, str | None] = {}
    for path in sorted(folder.glob(f"*_test_split{number}.txt")):
        by_stem.update(parse_hmdb_split(path.read_text().splitlines(), str(path)))
    return by_id, by_stem


def apply_splits(videos: list[VideoSource], splits_dir: str | Path, number: int = 1) -> list[VideoSource]:
    """``videos`` with ``split`` set from the split files in ``splits_dir`` (None where not listed)."""
    by_id, by_stem = read_splits(splits_dir, number)
    by_folded_id = {k.lower(): v for k, v in by_id.items()}  # UCF101 lists spell some class folders in another case
    out = []
    for v in videos:
        split = by_id.get(v.id) or by_folded_id.get(v.id.lower()) or by_stem.get(PurePosixPath(v.id).name)
        out.append(dataclasses.replace(v, split=split))
    return out


def find_videos(input_path: str | Path, splits_dir: str | Path | None = None, split_number: int = 1) -> list[VideoSource]:
    """Videos of ``input_path`` (directory or list file) with splits from ``splits_dir`` (default: the
    input directory, or the list file's folder)."""
    input_path = Path(input_path)
    if input_path.is_dir():
        videos = scan_directory(input_path)
    elif input_path.is_file():
        videos = parse_list_file(input_path)
    else:
        raise InputError(f"{input_path}: no such directory or list file")
    folder = Path(splits_dir) if splits_dir is not None else (input_path if input_path.is_dir() else input_path.parent)
    if splits_dir is not None and not folder.is_dir():
        raise InputError(f"{folder}: split folder does not exist")
    return apply_splits(videos, folder, split_number)

