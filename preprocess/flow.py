"""Dense optical flow between consecutive gray frames: TV-L1, DIS or Farneback (OpenCV), and TV-L1 in PyTorch
(``tvl1_torch``: batched over pairs, on the CPU or a GPU; ``preprocess.tvl1_torch``).

:func:`make_flow` builds the backend once and returns a plain function
``flow_fn(gray0, gray1) -> float32 [H, W, 2]`` giving (u, v) in pixels from frame 0 to frame 1
(``gray0[y, x]`` moves to ``gray1[y + v, x + u]``); :func:`make_pair_flows` returns the function of a list of
pairs the extraction calls (``tvl1_torch`` iterates ``batch`` pairs together). Storage is
``preprocess.flow_codec``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from preprocess.settings import FlowSettings

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
PairFlows = Callable[[list[tuple[np.ndarray, np.ndarray]]], list[np.ndarray]]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
FARNEBACK_DEFAULTS = {  # OpenCV's documented example values (the binding has no defaults of its own)
    "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0,
}
TVL1_ALIASES = {"nscales": "scalesnumber", "warps": "warpingsnumber"}  # names of the create() arguments
TVL1_UNSETTABLE = {"useinitialflow"}  # make_flow never passes an initial flow


def pin_opencv_threads(n: int = 1) -> None:
    """Limit OpenCV's own thread pool to ``n`` threads (one per worker process when Dask runs one per core)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cv2.setNumThreads(n)


def _setter_name(key: str) -> str:
    plain = key.replace("_", "").lower()
    return TVL1_ALIASES.get(plain, plain)


def configure_tvl1(params: dict[str, Any]) -> cv2.optflow.DualTVL1OpticalFlow:
    """A DualTVL1 object with ``params`` applied through its setters.

    Keys are the setter names without ``set``, in any case or snake_case (``tau``, ``lambda``, ``theta``,
    ``scales_number`` or ``nscales``, ``warpings_number`` or ``warps``, ``epsilon``, ``inner_iterations``,
    ``outer_iterations``, ``scale_step``, ``gamma``, ``median_filtering``); an unknown key is a ValueError.
    """
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    setters = {name[3:].lower(): name for name in dir(tvl1) if name.startswith("set")}
    for key in TVL1_UNSETTABLE:
        setters.pop(key, None)
    for key, value in params.items():
        plain = _setter_name(key)
        if plain not in setters:
            raise ValueError(f"flow.tvl1: unknown parameter {key!r} (known: {', '.join(sorted(setters))})")
        current = getattr(tvl1, "get" + setters[plain][3:])()
        if isinstance(current, int) and not isinstance(value, int):
            raise ValueError(f"flow.tvl1.{key}: expected an integer, got {value!r}")
        getattr(tvl1, setters[plain])(type(current)(value))
    return tvl1


def farneback_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """``FARNEBACK_DEFAULTS`` updated with ``params`` (unknown keys are a ValueError)."""
    unknown = sorted(set(params) - set(FARNEBACK_DEFAULTS))
    if unknown:
        raise ValueError(f"flow.farneback: unknown parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(FARNEBACK_DEFAULTS)})")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, type(FARNEBACK_DEFAULTS[key]) | int):
            raise ValueError(f"flow.farneback.{key}: expected {type(FARNEBACK_DEFAULTS[key]).__name__}, got {value!r}")
    return {**FARNEBACK_DEFAULTS, **params}


def _check_pair(gray0: np.ndarray, gray1: np.ndarray) -> None:
    if gray0.ndim != 2 or gray0.shape != gray1.shape or gray0.dtype != np.uint8 or gray1.dtype != np.uint8:
        raise ValueError(f"flow needs two uint8 gray frames [H, W] of one shape, got "
                         f"{gray0.dtype}{list(gray0.shape)} and {gray1.dtype}{list(gray1.shape)}")


def make_flow(settings: FlowSettings) -> FlowFn:
    """Flow function of the backend ``settings.algo``: gray uint8 [H, W] x2 -> float32 [H, W, 2] (u, v) px.

    The OpenCV object is built once here and reused by every call (not thread-safe: one per thread).
    """
    if settings.algo == "tvl1_torch":
        pair_flows = make_pair_flows(settings)
        return lambda gray0, gray1: pair_flows([(gray0, gray1)])[0]
    if settings.algo == "tvl1":
        calc = configure_tvl1(settings.tvl1).calc
    elif settings.algo == "dis":
        if settings.dis_preset not in DIS_PRESETS:
            raise ValueError(f"flow.dis_preset: {settings.dis_preset!r} is not one of {', '.join(DIS_PRESETS)}")
        calc = cv2.DISOpticalFlow_create(DIS_PRESETS[settings.dis_preset]).calc
    elif settings.algo == "farneback":
        p = farneback_parameters(settings.farneback)
        args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], p["flags"])

        def calc(gray0: np.ndarray, gray1: np.ndarray, flow: None) -> np.ndarray:
            return cv2.calcOpticalFlowFarneback(gray0, gray1, flow, *args)
    else:
        raise ValueError(f"flow.algo: unknown backend {settings.algo!r} (known: tvl1, tvl1_torch, dis, farneback)")

    def flow_fn(gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
        _check_pair(gray0, gray1)
        return calc(gray0, gray1, None)

    flow_fn.__doc__ = f"{settings.algo} flow: gray uint8 [H, W] x2 -> float32 [H, W, 2] (u, v) px, frame0 -> frame1."
    return flow_fn


def make_pair_flows(settings: FlowSettings) -> PairFlows:
    """The flows of a list of gray frame pairs, ``[(gray0, gray1), ...] -> [float32 [H, W, 2], ...]``: pair by
    pair for the OpenCV backends; ``settings.batch`` pairs per call for ``tvl1_torch`` (on ``settings.device``,
    one torch thread per process on the CPU, as OpenCV's pool is pinned)."""
    if settings.algo != "tvl1_torch":
        flow_fn = make_flow(settings)
        return lambda pairs: [flow_fn(gray0, gray1) for gray0, gray1 in pairs]
    import torch

    from preprocess.tvl1_parameters import TVL1Parameters
    from preprocess.tvl1_torch import tvl1_flow

    TVL1Parameters.from_mapping(settings.tvl1)  # unknown or ill-typed parameters fail here
    if settings.batch < 1:
        raise ValueError(f"flow.batch must be >= 1, got {settings.batch}")
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("flow.device is cuda but torch sees no CUDA device")
    if settings.device == "cpu":
        torch.set_num_threads(1)

    def pair_flows(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        for gray0, gray1 in pairs:
            _check_pair(gray0, gray1)
        flows: list[np.ndarray] = []
        for i in range(0, len(pairs), settings.batch):
            chunk = pairs[i:i + settings.batch]
            out = tvl1_flow(np.stack([p[0] for p in chunk]), np.stack([p[1] for p in chunk]), device=settings.device,
                            **settings.tvl1)
            flows.extend(np.asarray(out))
        return flows

    return pair_flows


def iter_flows(gray_frames: Iterable[np.ndarray], flow_fn: FlowFn) -> Iterator[np.ndarray]:
    """Flow between each pair of consecutive gray frames: T frames give T-1 float32 [H, W, 2] flows."""
    previous = None
    for gray in gray_frames:
        if previous is not None:
            yield flow_fn(previous, gray)
        previous = gray
