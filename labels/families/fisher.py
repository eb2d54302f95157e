"""The ``fisher`` family: each video's IDT rows encoded as a Fisher vector and count-sketched to 2000
dimensions (Tokmakov et al. 2020). The PCA + GMM and the sketch are fitted once on a bounded sample of the
``idt`` outputs (``fit``, on the client) and saved with the labels, so every video is encoded consistently."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.atomic import atomic_path
from labels.families import FamilyContext, VideoContext, VideoFamily, register_family
from labels.fisher import VARIANTS, FisherEncoder, choose_fit_videos, sample_rows
from labels.sketch import CountSketch

VECTOR_FIELD = "vector"  # the field of fisher.h5 holding the sketched vectors [V, sketch_dim]
ENCODER_FILE = "encoder.npz"
SKETCH_FILE = "sketch.npz"


@dataclass
class FisherSettings:
    """Section ``labels.fisher`` (docs/FISHER.md)."""

    variant: str = "video_cluster"  # video_cluster (the Video LA code's form) | standard (improved FV)
    gmm_components: int = 256
    gmm_n_init: int = 2
    gmm_max_iter: int = 200
    fit_videos: int = 1000  # videos sampled for the fit (bounded memory whatever the dataset size)
    rows_per_video: int = 500
    power_alpha: float = 0.5
    sketch_dim: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if min(self.gmm_components, self.gmm_n_init, self.gmm_max_iter, self.fit_videos, self.rows_per_video,
               self.sketch_dim) < 1:
            raise ValueError("gmm_components, gmm_n_init, gmm_max_iter, fit_videos, rows_per_video and sketch_dim "
                             "must be >= 1")


def fit(context: FamilyContext) -> None:
    """Fit the encoder on up to ``rows_per_video`` trajectories of ``fit_videos`` videos (seeded), create the
    sketch, and save both in the family's folder."""
    settings: FisherSettings = context.settings
    chosen = choose_fit_videos(len(context.video_ids), settings.fit_videos, settings.seed)
    sample = [sample_rows(context.read("idt", context.video_ids[i])["trajectories"], int(i),
                          settings.rows_per_video, settings.seed) for i in chosen]
    encoder = FisherEncoder.fit(np.concatenate(sample), settings.variant, settings.gmm_components,
                                settings.gmm_n_init, settings.gmm_max_iter, settings.seed, settings.power_alpha)
    sketch = CountSketch.create(encoder.dim, settings.sketch_dim, settings.seed)
    folder = Path(context.folder)
    with atomic_path(folder / ENCODER_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **encoder.to_arrays())
    with atomic_path(folder / SKETCH_FILE) as tmp, open(tmp, "wb") as handle:
        sketch.save(handle)


@lru_cache(maxsize=2)
def _model(folder: str, encoder_mtime_ns: int) -> tuple[FisherEncoder, CountSketch]:
    return FisherEncoder.load(Path(folder) / ENCODER_FILE), CountSketch.load(Path(folder) / SKETCH_FILE)


def encode(context: VideoContext) -> dict[str, np.ndarray]:
    """``vector`` float32 [sketch_dim]: the sketched, power- and L2-normalised Fisher vector of the video's IDT
    rows; ``EncodingError`` (a ValueError with the reason) for a video without trajectories."""
    folder = Path(context.folder)
    encoder, sketch = _model(str(folder), (folder / ENCODER_FILE).stat().st_mtime_ns)
    return {VECTOR_FIELD: sketch.apply(encoder.transform(context.read("idt")["trajectories"]))}


register_family(VideoFamily(name="fisher", encode=encode, Settings=FisherSettings, requires=("idt",),
                            fields={VECTOR_FIELD: ((-1,), np.float32)}, fit=fit))
