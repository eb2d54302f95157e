"""The pace method's colour jitter: per frame or per clip, off at p 0, and stated in every pace pipeline."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
import yaml

from commands.pipeline import load_pipeline
from train.backbones import build_backbone
from train.methods.base import to_float_clip
from train.methods.pace import ColorJitterSettings, PacePrediction, PaceSettings

PACE_PIPELINES = ("pace", "pace_ctr_context", "pace_ctr_pace", "pace_s3dg", "pace_s3dg_ctr_context")
PIPELINES_FILE = Path(__file__).resolve().parents[1] / "pipelines.yaml"


@pytest.fixture(scope="module")
def still_batch(shared_data: Path) -> dict[str, torch.Tensor]:
    """Two still clips of a real image (every frame the same), uint8 [B=2, V=1, T=6, 32, 32, 3]."""
    image = cv2.imread(str(shared_data / "flow_gt/shifts/Shift0.png"), cv2.IMREAD_COLOR)
    assert image is not None, "flow_gt/shifts/Shift0.png missing from the shared data"
    rgb = torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    crops = torch.stack([rgb[40:72, 60:92], rgb[120:152, 200:232]])  # [2, 32, 32, 3]
    frames = crops[:, None, None].expand(2, 1, 6, 32, 32, 3).contiguous()
    return {"frames": frames, "pace": torch.tensor([[0], [3]]), "video": torch.tensor([0, 1])}


def prepared_clip(batch: dict[str, torch.Tensor], jitter: ColorJitterSettings) -> torch.Tensor:
    settings = PaceSettings(color_jitter=jitter, flip_p=0.0)
    method = PacePrediction(build_backbone("c3d", channels=(4, 4, 4, 4, 4)), settings)
    return method.prepare(batch, torch.Generator().manual_seed(0))["clip"]  # [B, 3, T, S, S]


def frames_differ_from_first(clip: torch.Tensor) -> torch.Tensor:
    """bool [B, T-1]: frame t (t >= 1) of each clip differs from its frame 0."""
    return (clip[:, :, 1:] - clip[:, :, :1]).abs().amax(dim=(1, 3, 4)) > 1e-4


def test_per_frame_jitter_changes_a_still_clip_over_time(still_batch: dict[str, torch.Tensor]) -> None:
    clip = prepared_clip(still_batch, ColorJitterSettings(p=1.0))
    assert frames_differ_from_first(clip).all()  # each frame its own factors: the still clip flickers


def test_per_clip_jitter_keeps_a_still_clip_still_but_changes_its_colours(
        still_batch: dict[str, torch.Tensor]) -> None:
    clip = prepared_clip(still_batch, ColorJitterSettings(p=1.0, per_frame=False))
    plain = prepared_clip(still_batch, ColorJitterSettings(p=0.0))
    assert not frames_differ_from_first(clip).any()  # one draw per clip: no change over time
    assert (clip - plain).abs().amax(dim=(1, 2, 3, 4)).gt(0.05).all()  # but every clip is jittered


def test_p0_leaves_the_frames_as_they_are(still_batch: dict[str, torch.Tensor]) -> None:
    clip = prepared_clip(still_batch, ColorJitterSettings(p=0.0))
    method = PacePrediction(build_backbone("c3d", channels=(4, 4, 4, 4, 4)), PaceSettings())
    expected = method.normalize(to_float_clip(still_batch["frames"].flatten(0, 1)))
    torch.testing.assert_close(clip, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", PACE_PIPELINES)
def test_every_pace_pipeline_states_its_jitter_as_the_paper(name: str) -> None:
    """Each pace pipeline writes ``color_jitter`` out (users see p), and it is the authors' per-frame jitter."""
    raw = yaml.safe_load(PIPELINES_FILE.read_text())["pipelines"][name]["train"]["pace"]
    assert set(raw["color_jitter"]) >= {"brightness", "contrast", "saturation", "hue", "p"}
    jitter = load_pipeline(name, PIPELINES_FILE).train.method_settings.color_jitter
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, jitter.p, jitter.per_frame) == \
        (0.8, 0.8, 0.8, 0.2, 0.8, True)


def test_per_frame_is_a_pipeline_setting() -> None:
    settings = load_pipeline("pace", PIPELINES_FILE, overrides={"train": {"pace": {"color_jitter": {
        "per_frame": False, "p": 0.5}}}}).train.method_settings
    assert settings.color_jitter == ColorJitterSettings(p=0.5, per_frame=False)
