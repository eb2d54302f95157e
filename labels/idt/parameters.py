"""Parameters of Improved Dense Trajectories with the defaults of the original release (``DenseTrackStab``),
and the layout of its 436 output columns."""
from __future__ import annotations

from dataclasses import dataclass

SCALE_STRIDE = 2.0 ** 0.5  # the release computes it in float: float32(sqrt(2))
MIN_FLOW = 0.4             # HOF zero-motion bin: |flow| <= MIN_FLOW
CELL_EPSILON = 0.05        # added to every cell sum before normalisation
MIN_STD = 3.0 ** 0.5       # static trajectory: std below this in both x and y
MAX_STD = 50.0             # random trajectory: std above this in x or y
MAX_STEP = 20.0            # erratic trajectory: a step above this and above 0.7 x the length
MAX_STEP_FRACTION = 0.7
MIN_CAMERA_DISPLACEMENT = 1.0  # camera motion: largest warped displacement at most this


@dataclass(frozen=True)
class IdtParameters:
    """Release options (its command-line letter in brackets) plus the choices this port adds.

    Attributes:
        track_length: L [-L], frames per trajectory.
        stride: W [-W], dense sampling step in pixels.
        patch_size: N [-N], side of the descriptor volume in pixels.
        spatial_cells: nxy [-s]; temporal_cells: nt [-t].
        max_scales: [-A], largest number of pyramid scales.
        init_gap: [-I], frames between two dense re-samplings.
        quality: min-eigenvalue threshold as a fraction of the frame's maximum.
        detector: features matched for the camera homography in place of the release's SURF (non-free):
            ``"sift"`` (default: the closest to SURF, best agreement with the release), ``"orb"`` or ``"none"``
            (flow matches only); see docs/IDT.md.
        match_window: matched features must lie within this many pixels in x and in y.
    """

    track_length: int = 15
    stride: int = 5
    patch_size: int = 32
    spatial_cells: int = 2
    temporal_cells: int = 3
    max_scales: int = 8
    init_gap: int = 1
    quality: float = 0.001
    detector: str = "sift"
    match_window: float = 25.0

    def __post_init__(self) -> None:
        if self.track_length < self.temporal_cells or self.temporal_cells < 1:
            raise ValueError(f"need track_length >= temporal_cells >= 1, got {self.track_length}, "
                             f"{self.temporal_cells}")
        if min(self.stride, self.patch_size, self.spatial_cells, self.max_scales, self.init_gap) < 1:
            raise ValueError("stride, patch_size, spatial_cells, max_scales and init_gap must be >= 1")
        if self.patch_size % self.spatial_cells:
            raise ValueError(f"patch_size {self.patch_size} is not a multiple of spatial_cells {self.spatial_cells}")
        if self.detector not in ("orb", "sift", "none"):
            raise ValueError(f"detector must be 'orb', 'sift' or 'none', got {self.detector!r}")


def descriptor_bins() -> dict[str, int]:
    """Orientation bins of each descriptor type, in output order (HOF has a zero-motion bin)."""
    return {"hog": 8, "hof": 9, "mbhx": 8, "mbhy": 8}


def column_layout(parameters: IdtParameters = IdtParameters()) -> dict[str, slice]:
    """Column slices of one output row, in the release's order: 10 info columns (frame_end, mean_x, mean_y,
    var_x, var_y, length, scale, x_pos, y_pos, t_pos), trajectory shape (2L), HOG, HOF, MBHx, MBHy."""
    cells = parameters.spatial_cells ** 2 * parameters.temporal_cells
    widths = {"info": 10, "trajectory": 2 * parameters.track_length}
    widths.update({name: bins * cells for name, bins in descriptor_bins().items()})
    layout, start = {}, 0
    for name, width in widths.items():
        layout[name] = slice(start, start + width)
        start += width
    return layout


INFO_COLUMNS = ("frame_end", "mean_x", "mean_y", "var_x", "var_y", "length", "scale", "x_pos", "y_pos", "t_pos")
