"""The ``cpc`` and ``dpc`` pretext methods on real clips: their data (segments, blocks, crops), on-device
augmentation, over-fitting a fixed batch, exact resume, DDP on 2 CPU processes against one process, the
pipelines, the DPC curriculum in phases and the input contract of the exported backbone.

One small dataset per module: 6 ARID clips (2 classes, split files 2 train + 1 test each) at 64x86, DIS flow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from method_training import train_steps  # tests/method_training.py
from torch.utils.data import default_collate

from commands.pipeline import Pipeline, load_pipeline, train_pipeline
from common.settings import parse_overrides
from preprocess.dataset import Dataset
from preprocess.extract import extract
from train.backbones import build_backbone, load_backbone, save_backbone
from train.checkpoint import load_checkpoint
from train.backbones.r2d3d import BatchStatisticsNorm3d
from train.loop import build_data, build_sampler, train
from train.distributed import setup_distributed
from train.methods import build_method, method_class
from train.methods.cpc import CPCMethod, SegmentSampler, drop_colour, stack_frames
from train.predictive.cpc import CPC, cpc_loss
from train.sampling import SampleKey

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Turn", "Walk"]
SMALL = ["preprocess.size=[64, 86]", "crop_size=48", "train.batch_size=4", "train.num_workers=0",
         "train.log_every=1"]
CPC_SMALL = ["clip_len=3", "train.cpc.segments=4", "train.cpc.context_channels=32"]
DPC_SMALL = ["clip_len=3", "train.dpc.blocks=4", "train.dpc.pred_steps=2", "train.dpc.frame_stride=2"]


def pipeline(name: str, *overrides: str) -> Pipeline:
    return load_pipeline(name, overrides=parse_overrides([*SMALL, *overrides]))


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs = tmp_path_factory.mktemp("pc_inputs")
    videos, train_list, test_list = [], [], []
    for label in CLASSES:
        for i, source in enumerate(sorted((shared_data / "arid/train" / label).glob("*.mp4"))[:3]):
            videos.append(str(source))
            (test_list if i == 2 else train_list).append(f"{label}/{source.name}")
    (inputs / "videos.txt").write_text("\n".join(videos) + "\n")
    (inputs / "trainlist01.txt").write_text("\n".join(train_list) + "\n")
    (inputs / "testlist01.txt").write_text("\n".join(test_list) + "\n")
    out = tmp_path_factory.mktemp("pc_data") / "dataset"
    summary = extract(inputs / "videos.txt", out, pipeline("cpc_small").preprocess, workers=1, progress=False)
    assert not summary.failed, summary.failed
    return out


def first_batch(settings, data_dir: Path, size: int = 3) -> dict[str, torch.Tensor]:
    data = build_data(settings, data_dir)
    return default_collate([data.dataset[SampleKey(i, 0, i)] for i in range(size)])


# ----------------------------------------------------------------------------------------------- data


def test_segment_sampler_overlaps_by_half_and_each_segment_has_its_own_crop(dataset_dir: Path) -> None:
    sampler = SegmentSampler(segments=10, frames=10, stride=5)
    indices, _ = sampler.draw(200, np.random.default_rng(0))
    assert indices.shape == (10, 10) and (np.diff(indices[:, 0]) == 5).all()
    assert (np.diff(indices, axis=1) == 1).all() and indices[-1, -1] < 200
    assert np.array_equal(sampler.draw(60, None)[0][0], np.arange(2, 12))  # central: span 55 of 60
    settings = pipeline("cpc_small", *CPC_SMALL).train
    item = build_data(settings, dataset_dir).dataset[SampleKey(0, 0, 0)]
    assert item["flow"].shape == (4, 3, 48, 48, 2) and item["flow_bound"] == 10.0
    # flow item 1 of segment t is item 0 of segment t + 1 (stride 1 at F = 3): the same field, cut elsewhere
    crops_differ = [not np.array_equal(item["flow"][t, 1], item["flow"][t + 1, 0]) for t in range(3)]
    assert all(crops_differ), "segments share their crop"


def test_cpc_prepare_stacks_frames_scales_flow_and_drops_colour(dataset_dir: Path) -> None:
    settings = pipeline("cpc_small", *CPC_SMALL).train
    batch = first_batch(settings, dataset_dir)
    method = build_method(settings, build_backbone("resnet18_2d", in_channels=CPCMethod.input_channels(settings)))
    segments = method.prepare(batch, torch.Generator().manual_seed(0))["segments"]
    assert segments.shape == (3, 4, 6, 48, 48)
    flow = batch["flow"][1, 2]  # video 1, segment 2: [F, S, S, 2] px
    expected = flow / 10.0 - (flow / 10.0).mean(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(segments[1, 2, 2:4], expected[1].permute(2, 0, 1))  # frame 1 = channels 2, 3
    clips = torch.rand(400, 3, 2, 4, 4)
    dropped = drop_colour(clips, 1.0, torch.Generator().manual_seed(0))
    kept_one = [(dropped[:, c] != 0).flatten(1).any(1) & (dropped.sum(1) == dropped[:, c]).flatten(1).all(1)
                for c in range(3)]
    grey = (dropped[:, 0] == dropped[:, 1]).flatten(1).all(1) & (dropped[:, 1] == dropped[:, 2]).flatten(1).all(1)
    counts = [int(k.sum()) for k in kept_one] + [int(grey.sum())]
    assert sum(counts) == 400 and min(counts) > 70, counts
    assert torch.equal(drop_colour(clips, 0.0, None), clips)
    assert stack_frames(torch.arange(12.0).view(1, 2, 3, 1, 2)).view(6, 2)[:, 0].tolist() == [0, 6, 2, 8, 4, 10]


def test_dpc_blocks_follow_the_frame_stride_with_one_crop_per_clip(dataset_dir: Path) -> None:
    settings = pipeline("dpc_small", *DPC_SMALL, "train.dpc.flip=false").train
    data = build_data(settings, dataset_dir)
    item = data.dataset[SampleKey(1, 0, 1)]
    assert item["frames"].shape == (1, 12, 48, 48, 3)
    with Dataset(dataset_dir) as dataset:
        video = dataset.videos[data.dataset.video_indices[1]]
        frames = dataset.read_frames(video.id)
    # find the crop and start by brute force: one window and frames 2 apart fit all 12 frames
    clip = item["frames"][0]
    matches = [(s, y, x) for s in range(len(frames) - 22) for y in range(17) for x in range(39)
               if np.array_equal(frames[s, y:y + 48, x:x + 48], clip[0])]
    assert len(matches) >= 1
    s, y, x = matches[0]
    assert np.array_equal(frames[s:s + 24:2, y:y + 48, x:x + 48], clip)
    method = build_method(settings, build_backbone("r2d3d_18"))
    inputs = method.prepare(default_collate([item]), torch.Generator().manual_seed(0))
    assert inputs["blocks"].shape == (1, 4, 3, 3, 48, 48)


# -------------------------------------------------------------------------------------------- methods




def test_cpc_method_overfits_a_fixed_batch_and_equals_the_cpc_network(dataset_dir: Path) -> None:
    settings = pipeline("cpc_small", *CPC_SMALL).train
    torch.manual_seed(0)
    method = build_method(settings, build_backbone("resnet18_2d", in_channels=6))
    inputs = method.prepare(first_batch(settings, dataset_dir, 4), torch.Generator().manual_seed(0))
    reference = CPC(method.backbone, context_channels=32, segments=4)
    reference.context_model.load_state_dict(method.context_model.state_dict())
    reference.predictions.load_state_dict(method.predictions.state_dict())
    method.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(method(inputs).loss, cpc_loss(*reference(inputs["segments"])).loss)
    method.train()
    history = train_steps(method, inputs, torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9), 12)
    assert {"loss", "accuracy", "acc_step1", "acc_step2", "acc_step3"} <= set(history)
    assert min(history["loss"][-3:]) < 0.6 * history["loss"][0], history["loss"]
    assert max(history["accuracy"][-3:]) > history["accuracy"][0]


def test_dpc_method_overfits_a_fixed_batch_and_logs_target_kinds(dataset_dir: Path) -> None:
    settings = pipeline("dpc_small", *DPC_SMALL).train
    torch.manual_seed(0)
    backbone = build_backbone("r2d3d_18")
    method = build_method(settings, backbone)
    assert all(type(m) is not torch.nn.BatchNorm3d for m in backbone.modules())
    assert isinstance(backbone.stages["conv1"][1], BatchStatisticsNorm3d) and "batch_statistics" not in str(
        backbone.build_args)
    inputs = method.prepare(first_batch(settings, dataset_dir, 4), torch.Generator().manual_seed(0))
    history = train_steps(method, inputs, torch.optim.Adam(method.parameters(), lr=1e-4), 12)
    assert min(history["loss"][-3:]) < 0.6 * history["loss"][0], history["loss"]
    # 48 px -> 2x2 maps, B 4, P 2: 1 : (q-1) : (hw-1)q : (B-1)hwq
    assert [history[f"targets_{k}"][0] for k in ("positive", "temporal_negative", "spatial_negative",
                                                "easy_negative")] == [1, 1, 6, 24]


# ----------------------------------------------------------------------------------------------- loop


@pytest.mark.parametrize("method", ["cpc", "dpc"])
def test_resume_continues_exactly_and_the_contract_records_segments(dataset_dir: Path, tmp_path: Path,
                                                                    method: str) -> None:
    small = CPC_SMALL if method == "cpc" else DPC_SMALL
    settings = pipeline(f"{method}_small", *small, "train.max_steps=2", "train.checkpoint_every=1",
                        "train.keep_checkpoints=5").train
    whole = tmp_path / "whole"
    train(settings, dataset_dir, whole, progress=False)
    stopped = tmp_path / "stopped"
    (stopped / "checkpoints").mkdir(parents=True)
    step = whole / "checkpoints/step_00000001.pt"
    (stopped / "checkpoints" / step.name).write_bytes(step.read_bytes())
    (stopped / "metrics.jsonl").write_text((whole / "metrics.jsonl").read_text().splitlines(keepends=True)[0])
    train(settings, dataset_dir, stopped, resume=True, progress=False)
    a = load_checkpoint(whole / "checkpoints/step_00000002.pt")
    b = load_checkpoint(stopped / "checkpoints/step_00000002.pt")
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), f"{name} differs after resume"
    conv1 = next(k for k in a["model"] if k.startswith("backbone.") and k.endswith("weight"))
    assert not torch.equal(a["model"][conv1], load_checkpoint(step)["model"][conv1])
    exported = load_backbone(stopped / "backbone.pt")
    segments = exported.input_contract["segments"]
    if method == "cpc":
        assert exported.in_channels == 6 and exported.input_contract["flow_bound"] == 10.0
        assert segments == {"layout": "stacked", "count": 4, "frames": 3, "frame_stride": 1, "segment_stride": 1,
                            "modality": "flow"}
    else:
        assert exported.build_args["kwargs"] == {}  # the plain network: evaluation normalises with running stats
        assert segments == {"layout": "blocks", "count": 4, "frames": 3, "frame_stride": 2, "segment_stride": 6,
                            "modality": "rgb"}


DDP_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate
from commands.pipeline import load_pipeline
from common.settings import parse_overrides
from train.backbones import build_backbone
from train.distributed import setup_distributed
from train.loop import build_data, build_sampler, train
from train.methods import build_method, method_class

runs, data_dir, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
ctx = setup_distributed("cpu")
for name, (pipeline, overrides) in runs.items():
    settings = load_pipeline(pipeline, overrides=parse_overrides(overrides)).train
    data = build_data(settings, data_dir)
    torch.manual_seed(0)
    channels = method_class(settings.method).input_channels(settings)
    method = build_method(settings, build_backbone(settings.backbone, in_channels=channels)).eval()
    model = DistributedDataParallel(method)
    keys = next(iter(build_sampler(settings, data, ctx, 0)))
    inputs = method.prepare(default_collate([data.dataset[k] for k in keys]), None)
    model(inputs).loss.backward()
    if ctx.rank == 0:
        torch.save({{n: p.grad for n, p in method.named_parameters()}}, out / f"{{name}}_grads.pt")
"""


def test_ddp_on_two_cpu_processes_gives_the_gradient_of_one_process(dataset_dir: Path, tmp_path: Path) -> None:
    """Eval mode (BN on running statistics, no dropout): batch norm is per process on CPU, the losses are not.
    CPC scores against the z of all processes; DPC with ``negatives: global`` against all target vectors."""
    runs = {"cpc": ("cpc_small", [*SMALL, *CPC_SMALL, "train.cpc.exclude_same_video=true"]),
            "dpc": ("dpc_small", [*SMALL, *DPC_SMALL, "train.dpc.negatives=global",
                                  "train.dpc.batch_statistics=false", "train.dpc.grey_p=0", "train.dpc.jitter_p=0"])}
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO)))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         json.dumps(runs), str(dataset_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, (pipeline_name, overrides) in runs.items():
        settings = load_pipeline(pipeline_name, overrides=parse_overrides(overrides)).train
        data = build_data(settings, dataset_dir)
        keys = next(iter(build_sampler(settings, data, setup_distributed("cpu"), 0)))
        assert len(keys) == 4
        channels = method_class(settings.method).input_channels(settings)
        torch.manual_seed(0)
        method = build_method(settings, build_backbone(settings.backbone, in_channels=channels)).eval()
        method(method.prepare(default_collate([data.dataset[k] for k in keys]), None)).loss.backward()
        ddp = torch.load(tmp_path / f"{name}_grads.pt")
        for param_name, param in method.named_parameters():
            # float32 sums in another order: DPC's unnormalised scores leave ~1e-6 of noise on 1e-4 gradients
            torch.testing.assert_close(ddp[param_name], param.grad, rtol=1e-4, atol=1e-5,
                                       msg=lambda m: f"{name}: gradient of {param_name}: {m}")


# ------------------------------------------------------------------------------------------ pipelines


def test_pipelines_load_with_the_papers_settings() -> None:
    flow = load_pipeline("cpc_flow_tvl1")
    assert (flow.preprocess.size, flow.preprocess.flow.bound, flow.preprocess.flow.algo) == ((256, 342), 10.0, "tvl1")
    assert (flow.train.clip_len, flow.train.crop_size, flow.train.batch_size, flow.train.lr) == (10, 224, 25, 0.01)
    assert flow.train.schedule.milestones == [20000, 40000, 60000] and flow.train.max_steps == 150000
    assert CPCMethod.input_channels(flow.train) == 20 and flow.eval.finetune.dropout == 0.9
    assert load_pipeline("cpc_flow_dis").preprocess.flow.algo == "dis"
    assert CPCMethod.input_channels(load_pipeline("cpc_diff").train) == 10
    rgb = load_pipeline("cpc_rgb")
    assert CPCMethod.input_channels(rgb.train) == 30 and rgb.eval.stream == "frames"
    for name, steps, backbone, crop in [("dpc_r18_5pred3", 3, "r2d3d_18", 128), ("dpc_r18_4pred4", 4, "r2d3d_18", 128),
                                        ("dpc_r34_224", 3, "r2d3d_34", 224)]:
        loaded = load_pipeline(name)
        options = loaded.train.method_settings
        assert (options.blocks, options.pred_steps, options.frame_stride, loaded.train.clip_len) == (8, steps, 3, 5)
        assert (loaded.train.backbone, loaded.train.crop_size, loaded.train.optimizer, loaded.train.lr,
                loaded.train.weight_decay) == (backbone, crop, "adam", 0.001, 1e-5)
    curriculum = load_pipeline("dpc_curriculum")
    assert [(n, s.method_settings.pred_steps, s.method_settings.blocks) for n, s in curriculum.phases] == [
        ("5pred3", 3, 8), ("4pred4", 4, 8)]
    from train.optim import lr_factor
    assert [lr_factor(flow.train, s, 100, 150000) for s in (19999, 20000, 40000, 60000)] == pytest.approx(
        [1, 0.1, 0.01, 0.001])


def test_dpc_curriculum_phase_two_starts_from_phase_one(dataset_dir: Path, tmp_path: Path) -> None:
    phases = ("train.phases=[{name: 5pred3, max_steps: 1, dpc: {pred_steps: 2}}, "
              "{name: 4pred4, max_steps: 1, lr: 1.0e-30, dpc: {pred_steps: 3}}]")
    loaded = pipeline("dpc_curriculum", *DPC_SMALL, "train.backbone=r2d3d_18", phases)
    export = train_pipeline(loaded, dataset_dir, tmp_path, progress=False)
    first = load_checkpoint(tmp_path / "phase1_5pred3/checkpoints/step_00000001.pt")["model"]
    second = load_checkpoint(tmp_path / "phase2_4pred4/checkpoints/step_00000001.pt")["model"]
    weights = [k for k in first if k.endswith("weight")]
    assert first.keys() == second.keys()  # every weight of 5pred3 loads into 4pred4
    assert all(torch.allclose(first[k], second[k], atol=1e-12) for k in weights)
    fresh = build_method(loaded.phases[1][1], build_backbone("r2d3d_18")).state_dict()
    assert not torch.equal(fresh["predictor.0.weight"], second["predictor.0.weight"])
    assert torch.equal(load_backbone(export).stages["conv1"][0].weight, second["backbone.stages.conv1.0.weight"])


# ------------------------------------------------------------------------------------------ evaluation


def test_dpc_test_clips_half_overlap_and_cpc_segments_spread() -> None:
    from eval.segment_finetune import test_starts
    from eval.segments import SegmentLayout

    blocks = SegmentLayout("blocks", count=4, frames=3, frame_stride=2, segment_stride=6, modality="rgb")
    clips = test_starts(60, blocks, 15)  # a clip spans 3 * 6 + 5 = 23 frames: starts every 11
    assert [c[0] for c in clips] == [0, 11, 22, 33] and clips[1].tolist() == [11, 17, 23, 29]
    assert [c.tolist() for c in test_starts(10, blocks, 15)] == [[0, 6, 12, 18]]  # too short: one looping clip
    stacked = SegmentLayout("stacked", count=10, frames=10, frame_stride=1, segment_stride=5, modality="flow")
    (spread,) = test_starts(110, stacked, 15)
    assert len(spread) == 15 and spread[0] == 0 and spread[-1] == 100 and stacked.in_channels("flow") == 20


def test_segment_features_see_what_training_fed_the_encoder(dataset_dir: Path) -> None:
    """Evaluation's centre-cropped segments through the method's own ``prepare``: the video feature is the mean
    of z_t (the pooled encoder maps) over the spread segments."""
    from eval.segments import SegmentLayout, read_segments, segment_features, spread_starts
    from train.predictive.cpc import encode_segments

    settings = pipeline("cpc_small", *CPC_SMALL).train
    torch.manual_seed(0)
    method = build_method(settings, build_backbone("resnet18_2d", in_channels=6)).eval()
    layout = SegmentLayout(**CPCMethod.segment_contract(settings))
    with Dataset(dataset_dir) as dataset:
        video = dataset.videos[2]
        starts = spread_starts(video.n_frames - 1, layout.span, 5)
        flow = read_segments(dataset, "flow", video.id, layout, starts, 48)
        features = segment_features(method.backbone, dataset, [video.id], layout, "flow", "pool5", 5, 48, 2)
    batch = {"flow": torch.from_numpy(flow)[None], "flow_bound": torch.tensor([10.0])}
    with torch.no_grad():
        z = encode_segments(method.backbone, method.prepare(batch, None)["segments"]).mean(dim=(1, 3, 4))
    torch.testing.assert_close(torch.from_numpy(features), z, rtol=1e-4, atol=1e-5)
    with Dataset(dataset_dir) as dataset:  # training videos: random segments, seeded per video
        drawn = segment_features(method.backbone, dataset, [video.id], layout, "flow", "pool5", 3, 48, 2, seed=4)
        again = segment_features(method.backbone, dataset, [video.id], layout, "flow", "pool5", 3, 48, 2, seed=4)
        rng = np.random.default_rng([4, int.from_bytes(video.id.encode()[-8:], "little")])
        starts = np.sort(rng.integers(0, video.n_frames - 1 - layout.span + 1, size=3))
        random_flow = read_segments(dataset, "flow", video.id, layout, starts, 48)
    batch = {"flow": torch.from_numpy(random_flow)[None], "flow_bound": torch.tensor([10.0])}
    with torch.no_grad():
        z = encode_segments(method.backbone, method.prepare(batch, None)["segments"]).mean(dim=(1, 3, 4))
    torch.testing.assert_close(torch.from_numpy(drawn), z, rtol=1e-4, atol=1e-5)
    assert np.array_equal(drawn, again) and not np.allclose(drawn, features)


@pytest.mark.parametrize("method", ["cpc", "dpc"])
def test_evaluate_runs_the_segment_protocols_on_a_trained_backbone(dataset_dir: Path, tmp_path: Path,
                                                                   method: str) -> None:
    from eval.evaluate import evaluate

    small = CPC_SMALL if method == "cpc" else DPC_SMALL
    loaded = pipeline(f"{method}_small", *small, "train.max_steps=1", "eval.segments.test_segments=3",
                      "eval.segments.train_segments=2", "eval.finetune.epochs=1", "eval.finetune.batch_size=4")
    train(loaded.train, dataset_dir, tmp_path / "run", progress=False)
    results = evaluate(tmp_path / "run", dataset_dir, tmp_path / "report", ["linear", "retrieval", "finetune"],
                       settings=loaded.eval, device="cpu", make_figures=False)
    assert set(results["models"]) == {"pretrained", "random"} and results["n_test"] == 2
    for metrics in results["models"].values():
        assert {"linear.top1", "retrieval.R@1", "finetune.100%.video_top1"} <= set(metrics)
        assert metrics["finetune.100%.video_top1"] in (0.0, 0.5, 1.0)  # whole test videos: 2 of them
    assert results["stream"] == ("flow" if method == "cpc" else "frames")
    history = results["details"]["pretrained"]["finetune"]["100%"]["history"]
    assert len(history) == 1 and np.isfinite(history[0]["loss"])


def test_segment_features_are_cached_by_layout_count_placement_and_crop(dataset_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A second ``evaluate`` on the same weights reads the segment features from the cache (no forward pass)
    and gives the same metrics; another layout, segment count, placement or crop misses it, a batch size hits."""
    import dataclasses

    from eval.evaluate import evaluate
    from eval.segments import SegmentLayout, cached_segment_features
    from train.backbones.base import Backbone
    from train.loop import input_contract

    loaded = pipeline("cpc_small", *CPC_SMALL, "eval.segments.test_segments=3", "eval.segments.train_segments=2")
    torch.manual_seed(0)
    save_backbone(build_backbone("resnet18_2d", in_channels=6), tmp_path / "backbone.pt",
                  contract=input_contract(loaded.train, dataset_dir))
    calls = []
    forward = Backbone.forward_stages
    monkeypatch.setattr(Backbone, "forward_stages", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))

    def run(out: str, settings=loaded.eval) -> dict:
        return evaluate(tmp_path / "backbone.pt", dataset_dir, tmp_path / out, ["linear", "retrieval"],
                        settings=settings, cache_dir=tmp_path / "cache", device="cpu", make_figures=False)

    first = run("first")
    assert len(calls) == 2 * 6 and len(list((tmp_path / "cache").glob("*.npz"))) == 4  # 2 models x train/test
    calls.clear()
    second = run("second")
    assert calls == [] and second["models"] == first["models"]
    run("more", dataclasses.replace(loaded.eval, segments=dataclasses.replace(loaded.eval.segments, test_segments=4)))
    assert len(calls) == 2 * 2  # the 2 test videos of each model again; the training videos' features are reused
    layout = SegmentLayout.from_contract(input_contract(loaded.train, dataset_dir), "contract")
    backbone = build_backbone("resnet18_2d", in_channels=6).eval()
    with Dataset(dataset_dir) as dataset:
        ids = [v.id for v in dataset.videos[:2]]

        def features(layout=layout, count=3, crop=48, batch=4, seed=None) -> np.ndarray:
            calls.clear()
            return cached_segment_features(backbone, "w", dataset, dataset_dir, ids, layout, "flow", "pool5", count,
                                           crop, batch, tmp_path / "cache", seed=seed)

        base = features()
        assert len(calls) == 2 and np.array_equal(features(batch=1), base) and calls == []
        for changed in (dict(layout=dataclasses.replace(layout, segment_stride=2)), dict(count=2), dict(crop=40),
                        dict(seed=0)):
            features(**changed)
            assert len(calls) == 2, f"{changed} hit the cache"



def test_scenes_of_a_segment_backbone_average_its_half_overlapping_segment_windows(
        dataset_dir: Path, tmp_path: Path) -> None:
    """A DPC (blocks) backbone's window descriptors are the L2-normalised means over every segment window,
    consecutive ones sharing half their span, of its pooled stages; the scenes protocol runs on them."""
    import dataclasses

    from eval.evaluate import evaluate
    from eval.labelled import labelled_videos
    from eval.retrieval import l2_normalize
    from eval.segments import SegmentLayout, backbone_input, read_segments, segment_window_features, window_starts
    from eval.video_protocols import scenes_protocol
    from preprocess.streams import stream_length
    from train.loop import input_contract

    assert window_starts(20, 8).tolist() == [0, 4, 8, 12] and window_starts(5, 8).tolist() == [0]
    assert window_starts(9, 1).tolist() == list(range(9))
    loaded = pipeline("dpc_small", *DPC_SMALL)
    contract = input_contract(loaded.train, dataset_dir)
    torch.manual_seed(0)
    save_backbone(build_backbone("r2d3d_18", in_channels=3), tmp_path / "backbone.pt", contract=contract)
    settings = dataclasses.replace(loaded.eval, split="stratified", test_fraction=0.5)
    results = evaluate(tmp_path / "backbone.pt", dataset_dir, tmp_path / "out", ["scenes"], settings=settings,
                       device="cpu", make_figures=False)
    layout = SegmentLayout.from_contract(contract, "contract")
    backbone = load_backbone(tmp_path / "backbone.pt")
    crop = settings.clips.crop_size
    with Dataset(dataset_dir) as dataset, torch.no_grad():
        labelled = labelled_videos(dataset)
        windows = segment_window_features(backbone, dataset, labelled.ids, layout, "frames", crop, batch_size=2)
        for row, video_id in enumerate(labelled.ids[:3]):
            n = stream_length(dataset.video(video_id).n_frames, "frames", where=video_id)
            values = read_segments(dataset, "frames", video_id, layout, window_starts(n, layout.span), crop)
            stages = backbone.forward_stages(backbone_input(torch.from_numpy(values), layout, "frames", 1.0))
            for stage in ("pool3", "pool4", "pool5"):
                expected = l2_normalize(stages[stage].double().mean(0, keepdim=True).numpy())[0]
                np.testing.assert_allclose(windows[stage][row], expected, atol=1e-5)
    expected_metrics, _ = scenes_protocol(windows["pool5"], labelled.labels, labelled.classes, settings.scenes)
    assert results["models"]["pretrained"]["scenes.accuracy"] == expected_metrics["scenes.accuracy"]
