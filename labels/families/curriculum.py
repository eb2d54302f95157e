"""The ``curriculum`` family: the difficulty score of each clip and crop (thesis ch. 3, ``labels.curriculum``)."""
from __future__ import annotations

import numpy as np

from labels.curriculum import score_from_boundaries
from labels.families import ClipFamily, ClipView, register_family


def label(view: ClipView) -> dict[str, float]:
    """``score`` in [1/16, 1] (0 for a clip without motion boundaries)."""
    return {"score": score_from_boundaries(view.boundaries())}


register_family(ClipFamily(
    name="curriculum",
    streams=("flow",),
    fields={"score": ((), np.float32)},
    label=label,
))
