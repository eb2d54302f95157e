"""The ``stats`` family: 14 motion and 13 appearance statistics of each clip and crop (Wang et al. 2019)."""
from __future__ import annotations

import numpy as np

from labels.families import ClipFamily, ClipView, register_family
from labels.stats import N_APPEARANCE, N_MOTION, appearance_statistics, motion_labels


def label(view: ClipView) -> dict[str, np.ndarray]:
    """``motion`` int [14] from the crop's motion boundaries, ``appearance`` int [13] from its frames."""
    return {"motion": motion_labels(view.boundaries()), "appearance": appearance_statistics(view.frames())}


register_family(ClipFamily(
    name="stats",
    streams=("flow", "frames"),
    fields={"motion": ((N_MOTION,), np.uint8), "appearance": ((N_APPEARANCE,), np.uint8)},
    label=label,
))
