"""The sandbox process behind the per-video time limit: results, errors, crashes, and a real OpenCV call
stopped by the time limit."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.sandbox import CallError, Sandbox, SandboxCrash, SandboxTimeout


def _slow_flow_args(shared_data: Path) -> tuple:
    """Arguments of ``cv2.calcOpticalFlowFarneback`` on two full-HD real frames, with a huge window and
    many iterations: one native OpenCV call of many seconds that no Python signal can interrupt."""
    cap = cv2.VideoCapture(str(sorted((shared_data / "ntu_rgbd").rglob("*.*"))[0]))
    gray = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY) for _ in range(2)]
    assert gray[0].shape[0] >= 1000
    return (gray[0], gray[1], None, 0.5, 5, 75, 40, 7, 1.5, 0)


def test_results_errors_and_crashes_are_told_apart() -> None:
    box = Sandbox()
    try:
        assert box.call(pow, (3, 4), 30).value == 81
        pid = box._proc.pid
        with pytest.raises(CallError, match="ValueError: invalid literal for int"):
            box.call(int, ("x",), 30)
        assert box.call(divmod, (7, 2), 30).value == (3, 1) and box._proc.pid == pid  # same process reused
        with pytest.raises(SandboxCrash, match="killed by signal 6"):
            box.call(os.abort, (), 30)
        assert box.call(pow, (2, 5), 30).value == 32  # a fresh process after the crash
        assert box.call(cv2.getNumThreads, (), 30).value == 1  # OpenCV's pool pinned in the sandbox
        busy = box.call(sum, (range(3_000_000),), 30)
        assert busy.value == 3_000_000 * 2_999_999 // 2 and busy.cpu_seconds > 0.01
    finally:
        box.close()


def test_time_limit_kills_a_native_opencv_call(shared_data: Path) -> None:
    args = _slow_flow_args(shared_data)
    box = Sandbox()
    try:
        box.call(pow, (1, 1), 30)  # process started and warm
        pid = box._proc.pid
        start = time.monotonic()
        with pytest.raises(SandboxTimeout):
            box.call(cv2.calcOpticalFlowFarneback, args, 1.0)
        assert time.monotonic() - start < 3.0
        with pytest.raises(ProcessLookupError):  # the hung process is gone, not left running
            os.kill(pid, 0)
        call = box.call(np.add, (np.int64(2), np.int64(3)), 30)
        assert call.value == 5 and call.peak_rss_mb > 10 and 0 <= call.cpu_seconds < 1
    finally:
        box.close()

