"""Camera motion as in ``DenseTrackStab``: a RANSAC homography from feature matches plus corners displaced by
the flow, and the second frame warped back onto the first.

The release matches SURF features, which pip OpenCV does not ship (non-free); SIFT (default) or ORB stand in
for it, matched as the release matches SURF: nearest descriptor within +-25 px in x and y (docs/IDT.md has the
measured effect of each choice)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

MAX_CORNERS = 1000
CORNER_QUALITY = 0.001
CORNER_DISTANCE = 3
MIN_MATCHES = 50   # a homography is fitted only from more point pairs than this
MIN_INLIERS = 25   # and used only with more RANSAC inliers than this
RANSAC_THRESHOLD = 1.0
WARP_MARGIN = 5


@dataclass(frozen=True)
class Features:
    """Keypoint positions float32 [K, 2] (x, y) and their descriptors [K, D] (uint8 for ORB, float32 for SIFT)."""

    points: np.ndarray
    descriptors: np.ndarray | None


@lru_cache(maxsize=4)
def _detector(name: str) -> cv2.Feature2D:
    """SIFT with OpenCV's defaults, or ORB with a 15 px patch and border (31 by default) for small frames."""
    if name == "orb":
        return cv2.ORB_create(nfeatures=500, edgeThreshold=15, patchSize=15)
    return cv2.SIFT_create()


def detect_features(grey: np.ndarray, detector: str, mask: np.ndarray | None = None) -> Features:
    """Keypoints and descriptors of a uint8 [H, W] frame; ``mask`` uint8 [H, W], 0 where features are not wanted."""
    if detector == "none":
        return Features(np.zeros((0, 2), np.float32), None)
    keypoints, descriptors = _detector(detector).detectAndCompute(grey, mask)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return Features(points, descriptors)


def match_features(previous: Features, current: Features, detector: str, window: float = 25.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """For every current keypoint its nearest previous descriptor among those less than ``window`` px away
    in x and in y. Returns matched (previous, current) positions, float32 [M, 2] each."""
    empty = np.zeros((0, 2), np.float32)
    if previous.descriptors is None or current.descriptors is None or not len(previous.points) \
            or not len(current.points):
        return empty, empty
    offsets = np.abs(previous.points[None, :, :] - current.points[:, None, :])
    mask = ((offsets[..., 0] < window) & (offsets[..., 1] < window)).astype(np.uint8)
    norm = cv2.NORM_HAMMING if detector == "orb" else cv2.NORM_L2
    matches = cv2.BFMatcher(norm).match(current.descriptors, previous.descriptors, mask)
    if not matches:
        return empty, empty
    query = np.array([m.queryIdx for m in matches])
    train = np.array([m.trainIdx for m in matches])
    return previous.points[train], current.points[query]


def matches_from_flow(previous_grey: np.ndarray, flow: np.ndarray, mask: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``goodFeaturesToTrack`` corners (1000, quality 0.001, distance 3) of the previous frame and their
    rounded positions moved by the flow float32 [H, W, 2]. Returns (previous, current) float32 [M, 2]."""
    corners = cv2.goodFeaturesToTrack(previous_grey, MAX_CORNERS, CORNER_QUALITY, CORNER_DISTANCE, mask=mask)
    if corners is None:
        empty = np.zeros((0, 2), np.float32)
        return empty, empty
    corners = corners.reshape(-1, 2).astype(np.float32)
    height, width = previous_grey.shape
    x = np.clip(np.rint(corners[:, 0]), 0, width - 1).astype(np.intp)
    y = np.clip(np.rint(corners[:, 1]), 0, height - 1).astype(np.intp)
    moved = np.stack([x, y], axis=1).astype(np.float32) + flow[y, x]
    return corners, moved


def camera_homography(previous_points: np.ndarray, current_points: np.ndarray) -> np.ndarray:
    """float64 [3, 3] mapping previous to current positions: RANSAC (threshold 1 px) over more than 50 pairs,
    kept if it has more than 25 inliers, else the identity."""
    if len(previous_points) > MIN_MATCHES:
        homography, inliers = cv2.findHomography(previous_points, current_points, cv2.RANSAC, RANSAC_THRESHOLD)
        if homography is not None and int(inliers.sum()) > MIN_INLIERS:
            return homography
    return np.eye(3)


@lru_cache(maxsize=8)
def _homogeneous_grid(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    return np.stack([xs, ys, np.ones_like(xs)]).reshape(3, -1).astype(np.float64)


def warp_back(previous_grey: np.ndarray, grey: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """The current frame seen from the previous one: ``grey(H p)`` at every pixel p (bilinear), and the previous
    frame wherever ``H p`` falls within 5 px of the border or outside (``MyWarpPerspective``). uint8 [H, W]."""
    height, width = grey.shape
    warped = cv2.warpPerspective(grey, homography, (width, height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    mapped = homography @ _homogeneous_grid(height, width)
    w = mapped[2]
    w = np.where(w != 0, 1.0 / np.where(w != 0, w, 1.0), 0.0)
    x, y = mapped[0] * w, mapped[1] * w
    inside = ((x > WARP_MARGIN) & (x < width - 1 - WARP_MARGIN) & (y > WARP_MARGIN)
              & (y < height - 1 - WARP_MARGIN)).reshape(height, width)
    return np.where(inside, warped, previous_grey)


def box_mask(shape: tuple[int, int], boxes: np.ndarray | None) -> np.ndarray | None:
    """uint8 [H, W] mask, 0 inside the boxes float [B, 4] (x1, y1, x2, y2; pixels ceil(x1)..floor(x2)
    inclusive), 1 elsewhere; None without boxes."""
    if boxes is None or not len(boxes):
        return None
    mask = np.ones(shape, np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64)[:, :4]:
        mask[max(int(np.ceil(y1)), 0):max(int(np.floor(y2)) + 1, 0),
             max(int(np.ceil(x1)), 0):max(int(np.floor(x2)) + 1, 0)] = 0
    return mask
