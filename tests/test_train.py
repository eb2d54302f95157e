"""Training on real clips: data (stored crop variants, pace clips, workers), methods (over-fitting), the loop
(exact resume, NaN stop, export) and DDP with 2 CPU processes (torchrun, gloo).

One tiny dataset is made per module with the project's own CPU stage: ``preprocess.extract.extract`` on four
short ARID clips (48x64 frames, DIS flow) and ``labels.make.make_labels`` (16-frame clips, 32x32 crops, two
crop variants: plain and mirrored). Backbones are a narrow C3D so the whole file stays within its budget.
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
import yaml
from click.testing import CliRunner
from torch.utils.data import DataLoader, default_collate

from cli import cli

from labels.make import make_labels
from labels.stats import appearance_statistics
from labels.store import load_clip_labels
from commands.pipeline import Pipeline, load_cluster, load_pipeline
from common.settings import parse_overrides
from preprocess.dataset import Dataset
from preprocess.extract import extract
from train.backbones import build_backbone, load_backbone
from train.checkpoint import list_checkpoints, load_checkpoint
from train.clips import snap_slow_pace
from train.data import ClipSpec, StatsClipDataset, UniformSampler, VideoClipDataset
from train.distributed import setup_distributed
from train.loop import TrainingDiverged, build_data, build_sampler, train
from train.metrics import drop_records_after
from train.methods.pace import PacePrediction, PaceSampler
from train.methods.stats import StatsRegression
from train.sampling import EpochBatchSampler, SampleKey

REPO = Path(__file__).resolve().parents[1]
CLIPS = ["Turn/Turn_1_42.mp4", "Turn/Turn_1_47.mp4", "Turn/Turn_7_38.mp4", "Turn/Turn_1_1.mp4"]  # 33-36 frames
TINY = "{channels: [4, 8, 8, 16, 16]}"
BASE = [
    "preprocess.size=[48, 64]",
    "preprocess.flow.algo=dis",
    "preprocess.flow.dis_preset=fast",
    "crop_size=32",
    "labels.crop_variants=[[8, 16, false], [8, 16, true]]",
    "train.stats.pacing={kind: single_step, start_fraction: 0.5, step_length: 2}",
    "train.backbone=c3d",
    f"train.backbone_args={TINY}",
    "train.optimizer=sgd",  # the paper's optimisation, not the demo's tuning
    "train.lr=0.0005",
    "train.weight_decay=0.0005",
    "train.schedule={kind: step, step_epochs: 6, gamma: 0.1}",
    "train.epochs=2",
    "train.max_steps=16",
    "train.checkpoint_every=8",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.log_every=1",
]


def pipeline(*overrides: str) -> Pipeline:
    """The demo pipeline shrunk for tests, with extra ``key=value`` overrides."""
    return load_pipeline("demo", overrides=parse_overrides([*BASE, *overrides]))


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    listing = root / "videos.txt"
    listing.write_text("".join(f"{shared_data / 'arid/train' / clip}\n" for clip in CLIPS))
    out = root / "dataset"
    settings = pipeline()
    summary = extract(listing, out, settings.preprocess, workers=1, progress=False)
    assert not summary.failed, summary.failed
    make_labels(out, settings.labels, ["stats", "curriculum"], cluster=load_cluster(), workers=1, progress=False)
    return out


def pace_clips(dataset_dir: Path, paces: list[float], clip_len: int, crop_size: int, views: int,
               seed: int) -> VideoClipDataset:
    """The pace method's clips: ``views`` clips of one video at distinct paces, one random crop each."""
    sampler = PaceSampler(tuple(snap_slow_pace(p) for p in paces), clip_len, views)
    return VideoClipDataset(dataset_dir, ClipSpec(sampler, crop_size=crop_size), seed=seed)


def tiny_backbone(name: str = "c3d", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_backbone(name, channels=(4, 8, 8, 16, 16))


# ----------------------------------------------------------------------------------------------- data


def test_stats_clips_are_cut_with_their_stored_crop_variant(dataset_dir: Path) -> None:
    labels = load_clip_labels(dataset_dir)
    data = StatsClipDataset(dataset_dir, labels)
    reader = Dataset(dataset_dir)
    assert len(data) == len(labels) and set(labels.flip.tolist()) == {False, True}
    for i in range(len(data)):
        item = data[i]
        vid, start, (y, x), flip = labels.video_id[i], labels.start[i], labels.crop[i], labels.flip[i]
        full = reader.read_frames(vid, int(start), int(start) + 16)
        expected = full[:, y : y + 32, x : x + 32]
        expected = expected[:, :, ::-1] if flip else expected
        assert item["frames"].shape == (16, 32, 32, 3) and item["frames"].dtype == np.uint8
        np.testing.assert_array_equal(item["frames"], expected)
        # the appearance labels describe exactly these pixels, and the targets are the stored integers
        np.testing.assert_array_equal(appearance_statistics(item["frames"]), labels.appearance[i])
        np.testing.assert_array_equal(item["motion"], labels.motion[i].astype(np.float32))


def test_pace_clips_follow_their_pace_loop_and_crop_consistently(dataset_dir: Path) -> None:
    data = pace_clips(dataset_dir, [0.5, 1.0, 4.0], clip_len=16, crop_size=32, views=3, seed=7)
    reader = Dataset(dataset_dir)
    item = data[SampleKey(0, 5, 1)]
    video = reader.videos[int(item["video"])]
    full = reader.read_frames(video.id)
    assert sorted(item["pace"].tolist()) == [0, 1, 2]  # three views, three distinct paces
    for clip, pace_id in zip(item["frames"], item["pace"]):
        pace = [0.5, 1.0, 4.0][pace_id]
        matches = []
        for start in range(video.n_frames):
            idx = [(start + int(k * pace)) % video.n_frames for k in range(16)]
            for y in range(full.shape[1] - 31):
                for x in range(full.shape[2] - 31):
                    if np.array_equal(clip, full[idx, y : y + 32, x : x + 32]):
                        matches.append((start, y, x))
                        break
        assert matches, f"pace {pace}: clip is not a consistent crop of frames at that pace"
        if pace == 4.0:  # 61 frames needed, the video is shorter: starts at 0 and loops
            assert video.n_frames < 61 and matches[0][0] == 0
        if pace == 0.5:
            np.testing.assert_array_equal(clip[0], clip[1])  # slow motion repeats frames


def test_clip_dataset_reads_aligned_frames_flow_and_differences(dataset_dir: Path) -> None:
    reader = Dataset(dataset_dir)
    fixed = VideoClipDataset(dataset_dir, ClipSpec(UniformSampler(6, 3), streams=("frames", "flow", "diff"),
                                                   crop_size=32, random=False))
    for i, video in enumerate(reader.videos):
        item = {k: v[0] if k != "video" else v for k, v in fixed[i].items()}  # the one view
        pairs = video.n_frames - 1  # flow and differences exist for frames 0 .. n-2
        start = (pairs - 16) // 2  # 6 items 3 frames apart span 16 frames; centred
        idx = list(range(start, start + 16, 3))
        y, x = (48 - 32) // 2, (64 - 32) // 2
        np.testing.assert_array_equal(item["frames"], reader.read_frames(video.id)[idx, y : y + 32, x : x + 32])
        np.testing.assert_array_equal(item["flow"], reader.read_flow(video.id)[idx, y : y + 32, x : x + 32])
        np.testing.assert_array_equal(item["diff"], reader.read_diff(video.id)[idx, y : y + 32, x : x + 32])
        assert item["flow"].dtype == np.float32 and item["diff"].shape == (6, 32, 32) and int(item["video"]) == i
    rand = VideoClipDataset(dataset_dir, ClipSpec(UniformSampler(4, 2), streams=("frames", "flow"), crop_size=32),
                            seed=1)
    item = {k: v[0] for k, v in rand[SampleKey(1, 9, 0)].items() if k != "video"}
    video = reader.videos[1]
    frames, flow = reader.read_frames(video.id), reader.read_flow(video.id)
    found = [(s, y, x) for s in range(video.n_frames - 7) for y in range(17) for x in range(33)
             if np.array_equal(item["frames"], frames[s : s + 7 : 2, y : y + 32, x : x + 32])]
    assert found, "random clip is not a strided, consistently cropped run of frames"
    s, y, x = found[0]
    np.testing.assert_array_equal(item["flow"], flow[s : s + 7 : 2, y : y + 32, x : x + 32])
    assert any(not np.array_equal(rand[SampleKey(1, step, 0)]["frames"][0], item["frames"]) for step in range(3))


def test_loader_with_workers_returns_the_same_clips_as_without(dataset_dir: Path) -> None:
    data = pace_clips(dataset_dir, [1.0, 2.0, 3.0, 4.0], clip_len=8, crop_size=32, views=2, seed=3)

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        sampler = EpochBatchSampler(len(data), 2, total_steps=4, seed=3)
        return list(DataLoader(data, batch_sampler=sampler, num_workers=workers))

    alone, parallel = batches(0), batches(2)
    assert len(alone) == len(parallel) == 4
    for a, b in zip(alone, parallel):
        for key in ("frames", "pace", "video"):
            assert torch.equal(a[key], b[key])
    assert not torch.equal(alone[0]["frames"], alone[2]["frames"])


def test_stats_batches_follow_the_curriculum_easiest_first(dataset_dir: Path) -> None:
    settings = pipeline("train.batch_size=2").train  # pacing: the easier half for 2 steps, then all
    data = build_data(settings, dataset_dir)
    scores, order = data.dataset.scores(), data.training.order
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores[order]) <= 0)
    easy_half = set(order[: int(np.ceil(len(scores) / 2))].tolist())
    batches = [[k.index for k in batch] for batch in build_sampler(settings, data, setup_distributed("cpu"), 0)]
    assert set(batches[0] + batches[1]) <= easy_half
    assert not set(sum(batches[2:], [])) <= easy_half
    plain = build_data(pipeline("train.stats.curriculum=false").train, dataset_dir)
    assert plain.training.order is None


# -------------------------------------------------------------------------------------------- methods


def overfit(method: torch.nn.Module, inputs: dict[str, torch.Tensor], steps: int = 20) -> dict[str, tuple[float, float]]:
    """Train on one fixed batch; ``{metric: (first value, best of the last 5)}``."""
    history = train_steps(method, inputs, torch.optim.Adam(method.parameters(), lr=3e-3), steps)
    return {name: (values[0], min(values[-5:])) for name, values in history.items()}


def test_stats_regression_overfits_a_fixed_batch(dataset_dir: Path) -> None:
    settings = pipeline().train
    data = StatsClipDataset(dataset_dir, load_clip_labels(dataset_dir), label_scale=8.0)  # targets ~1
    batch = default_collate([data[i] for i in range(4)])
    assert torch.equal(batch["motion"] * 8, torch.from_numpy(data.labels.motion[data.rows[:4]]).float())
    method = StatsRegression(tiny_backbone("c3d_bn"), settings.method_settings)
    result = overfit(method, method.prepare(batch, None))
    for name in ("loss", "loss_motion", "loss_appearance"):
        first, last = result[name]
        assert last < 0.2 * first, (name, first, last)


def test_pace_prediction_with_context_contrast_overfits_a_fixed_batch(dataset_dir: Path) -> None:
    settings = pipeline("train.method=pace", "train.pace.contrastive=context").train
    data = pace_clips(dataset_dir, settings.method_settings.paces, 8, 32, views=2, seed=0)
    batch = default_collate([data[SampleKey(i, 0, i)] for i in range(3)])
    method = PacePrediction(tiny_backbone("c3d_bn"), settings.method_settings)  # BN: the dark ARID clips train slowly without
    inputs = method.prepare(batch, torch.Generator().manual_seed(0))
    assert inputs["clip"].shape == (6, 3, 8, 32, 32) and inputs["pace"].shape == (6,)
    assert torch.equal(inputs["video"][0::2], inputs["video"][1::2])
    assert (inputs["pace"][0::2] != inputs["pace"][1::2]).all()  # each pair has distinct paces
    result = overfit(method, inputs)
    first, last = result["loss_cls"]
    assert last < 0.3 * first, (first, last)
    first, last = result["loss_ctr"]  # bounded below by the negatives: log(1 + n_neg * exp(-2 / T)) > 0
    assert first > 0.5 and last < 0.8 * first, (first, last)


# ----------------------------------------------------------------------------------------------- loop


def logged(run: Path) -> list[dict[str, float]]:
    """metrics.jsonl records without the timing field."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "clips_per_s"} for row in rows]


@pytest.mark.parametrize(
    "task",
    [
        ["train.method=stats"],  # curriculum sampler position
        ["train.method=pace", "clip_len=8", "train.pace.contrastive=context", "train.epochs=4"],  # augmentation
    ],
    ids=["stats", "pace_ctr_context"],
)
def test_resume_continues_exactly_where_the_run_stopped(dataset_dir: Path, tmp_path: Path, task: list[str]) -> None:
    settings = pipeline(*task, "train.max_steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=5").train
    whole = tmp_path / "whole"
    train(settings, dataset_dir, whole, progress=False)
    assert [step for step, _ in list_checkpoints(whole / "checkpoints")] == [2, 4]
    # the same run killed after step 3: its step-2 checkpoint and three metric records are on disk
    stopped = tmp_path / "stopped"
    (stopped / "checkpoints").mkdir(parents=True)
    step2 = whole / "checkpoints/step_00000002.pt"
    (stopped / "checkpoints" / step2.name).write_bytes(step2.read_bytes())
    records = (whole / "metrics.jsonl").read_text().splitlines(keepends=True)
    (stopped / "metrics.jsonl").write_text("".join(records[:3]))
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train(settings, dataset_dir, stopped, progress=False)
    train(settings, dataset_dir, stopped, resume=True, progress=False)

    a = load_checkpoint(whole / "checkpoints/step_00000004.pt")
    b = load_checkpoint(stopped / "checkpoints/step_00000004.pt")
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), f"{name} differs after resume"
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"])
    assert logged(stopped) == logged(whole) and [r["step"] for r in logged(whole)] == [1, 2, 3, 4]
    start = load_checkpoint(step2)["model"]["backbone.stages.conv1.0.weight"]
    exported = load_backbone(stopped / "backbone.pt").stages["conv1"][0].weight
    assert torch.equal(exported, b["model"]["backbone.stages.conv1.0.weight"]) and not torch.equal(exported, start)


def test_non_finite_loss_stops_with_the_last_good_checkpoint_kept(dataset_dir: Path, tmp_path: Path) -> None:
    settings = pipeline("train.lr=1000000.0", "train.max_steps=12", "train.checkpoint_every=1",
                        "train.keep_checkpoints=20").train
    with pytest.raises(TrainingDiverged, match=r"not finite.*Last good checkpoint: .*step_\d{8}\.pt") as caught:
        train(settings, dataset_dir, tmp_path, progress=False)
    saved = list_checkpoints(tmp_path / "checkpoints")
    assert saved and saved[-1][0] < 12 and str(saved[-1][1]) in str(caught.value)
    last = load_checkpoint(saved[-1][1])
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert not (tmp_path / "backbone.pt").exists()


# ------------------------------------------------------------------------------------------------ DDP

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
from train.methods import build_method

overrides, data_dir, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
settings = load_pipeline("demo", overrides=parse_overrides(overrides)).train
ctx = setup_distributed("cpu")
data = build_data(settings, data_dir)
torch.manual_seed(0)
method = build_method(settings, build_backbone("c3d", channels=(4, 8, 8, 16, 16)))
model = DistributedDataParallel(method)
keys = next(iter(build_sampler(settings, data, ctx, 0)))
inputs = method.prepare(default_collate([data.dataset[k] for k in keys]), None)
model(inputs).loss.backward()
if ctx.rank == 0:
    torch.save({{n: p.grad for n, p in method.named_parameters()}}, out / "ddp_grads.pt")
train(settings, data_dir, out / "run", progress=False)
"""


def test_ddp_on_two_cpu_processes_matches_one_process(dataset_dir: Path, tmp_path: Path) -> None:
    overrides = [
        *BASE, "train.method=pace", "clip_len=8", "train.pace.contrastive=context", "train.pace.flip_p=0",
        "train.pace.color_jitter={p: 0}", "train.max_steps=2", "train.checkpoint_every=1",
    ]
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         json.dumps(overrides), str(dataset_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # the same global batch (4 videos x 2 paced clips) in one process
    settings = load_pipeline("demo", overrides=parse_overrides(overrides)).train
    data = build_data(settings, dataset_dir)
    keys = next(iter(build_sampler(settings, data, setup_distributed("cpu"), 0)))
    assert len(keys) == 4
    torch.manual_seed(0)
    method = PacePrediction(build_backbone("c3d", channels=(4, 8, 8, 16, 16)), settings.method_settings)
    method(method.prepare(default_collate([data.dataset[k] for k in keys]), None)).loss.backward()
    ddp = torch.load(tmp_path / "ddp_grads.pt")
    for name, param in method.named_parameters():
        torch.testing.assert_close(ddp[name], param.grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    assert (tmp_path / "run/backbone.pt").is_file()
    assert [r["step"] for r in logged(tmp_path / "run")] == [1, 2]
    assert [s for s, _ in list_checkpoints(tmp_path / "run/checkpoints")] == [1, 2]


# ------------------------------------------------------------------------------------------------ CLI


def test_train_command_writes_the_run_folder_and_reports_bad_input(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [arg for item in [*BASE, "train.max_steps=1"] for arg in ("--set", item)]
    args = ["train", "--pipeline", "demo", "--data", str(dataset_dir), "--out", str(out), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, *sets])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"backbone.pt", "metrics.jsonl", "config.yaml", "checkpoints", "tensorboard"}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["name"] == "demo" and config["train"]["max_steps"] == 1 and config["train"]["crop_size"] == 32
    again = CliRunner().invoke(cli, [*args, *sets])
    assert again.exit_code != 0 and "already holds checkpoints; pass --resume" in again.output
    bad = CliRunner().invoke(cli, [*args, "--set", "train.lrr=1"])
    assert bad.exit_code != 0 and "demo.train: unknown key(s) 'lrr'" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_data = CliRunner().invoke(cli, ["train", "--pipeline", "demo", "--data", str(empty), "--out", str(tmp_path / "x")])
    assert no_data.exit_code == 2 and f"{empty / 'labels'}" in no_data.output and "Traceback" not in no_data.output


def test_train_reads_labels_made_in_another_labels_dir(dataset_dir: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "dataset"
    shutil.copytree(dataset_dir, data)
    shutil.move(data / "labels", tmp_path / "elsewhere")
    sets = [arg for item in [*BASE, "train.max_steps=1"] for arg in ("--set", item)]
    args = ["train", "--pipeline", "demo", "--data", str(data), "--device", "cpu", "--no-progress", *sets]
    missing = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert missing.exit_code == 2 and f"{data / 'labels'}" in missing.output
    found = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), "--labels-dir", str(tmp_path / "elsewhere")])
    assert found.exit_code == 0, found.output
    config = yaml.safe_load((tmp_path / "b/config.yaml").read_text())
    assert config["train"]["labels_dir"] == str(tmp_path / "elsewhere")


def test_resume_drops_a_metrics_line_cut_short_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    drop_records_after(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a JSON record"):
        drop_records_after(path, 2)


# ------------------------------------------------------------------------------------------ method hooks


def test_method_hooks_run_and_their_state_resumes_exactly(dataset_dir: Path, tmp_path: Path) -> None:
    """A plug-in method with every hook: a buffer written after each step, a Python list grown at each epoch
    end and carried as extra state, two parameter groups. The loop calls the hooks, checkpoints carry their
    state, and a resumed run ends identical to the uninterrupted one."""
    from train.data import ClipSpec, UniformSampler
    from train.methods import METHODS, register_method
    from train.methods.base import NoSettings, PretextMethod, StepOutput, no_decay_groups, to_float_clip

    class Counting(PretextMethod):
        Settings = NoSettings

        @classmethod
        def clip_spec(cls, settings):
            return ClipSpec(UniformSampler(settings.clip_len), crop_size=settings.crop_size, flip=True)

        def __init__(self, backbone, settings):
            super().__init__(backbone, settings)
            self.head = torch.nn.Linear(backbone.num_features, 1)
            self.register_buffer("seen", torch.zeros(len(CLIPS)))
            self.epochs: list[int] = []

        def prepare(self, batch, generator):
            return {"clip": self.normalize(to_float_clip(batch["frames"][:, 0])), "video": batch["video"]}

        def forward(self, inputs):
            loss = self.head(self.backbone(inputs["clip"])).pow(2).mean()
            return StepOutput(loss, {"loss": loss.detach()})

        def parameter_groups(self, settings):
            return no_decay_groups(self, 0.5)

        def after_step(self, inputs, output, step):
            self.seen.index_add_(0, inputs["video"], torch.ones(len(inputs["video"])))

        def on_epoch_end(self, epoch):
            self.epochs.append(epoch)

        def get_extra_state(self):
            return {"epochs": list(self.epochs)}

        def set_extra_state(self, state):
            self.epochs = list(state["epochs"])

    register_method("_counting_test")(Counting)
    try:
        settings = pipeline("train.method=_counting_test", "train.batch_size=2", "train.max_steps=4",
                            "train.checkpoint_every=2", "train.keep_checkpoints=5").train
        whole = tmp_path / "whole"
        train(settings, dataset_dir, whole, progress=False)
        final = load_checkpoint(whole / "checkpoints/step_00000004.pt")
        assert final["model"]["seen"].sum() == 8 and final["model"]["seen"].tolist() == [2.0] * 4  # 2 epochs
        assert final["model"]["_extra_state"] == {"epochs": [1, 2]}
        groups = final["optimizer"]["param_groups"]
        assert [g["weight_decay"] for g in groups] == [0.5, 0.0] and len(groups[1]["params"]) > 0
        stopped = tmp_path / "stopped"
        (stopped / "checkpoints").mkdir(parents=True)
        step2 = whole / "checkpoints/step_00000002.pt"
        assert load_checkpoint(step2)["model"]["_extra_state"] == {"epochs": [1]}
        (stopped / "checkpoints" / step2.name).write_bytes(step2.read_bytes())
        train(settings, dataset_dir, stopped, resume=True, progress=False)
        resumed = load_checkpoint(stopped / "checkpoints/step_00000004.pt")
        assert resumed["model"]["_extra_state"] == {"epochs": [1, 2]}
        for name, value in final["model"].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, resumed["model"][name]), name
    finally:
        del METHODS["_counting_test"]


def test_phases_start_from_the_previous_phase_and_export_the_last(dataset_dir: Path, tmp_path: Path) -> None:
    """Statistics regression, then pace prediction starting from its weights (new heads fresh), in one
    pipeline: phase 2 at a vanishing lr ends with phase 1's backbone; RUN/backbone.pt is phase 2's."""
    from commands.pipeline import train_pipeline
    from train.loop import initialize_from

    phases = ("train.phases=[{name: stats, max_steps: 2}, "
              "{name: pace, method: pace, max_steps: 2, lr: 1.0e-30, pace: {color_jitter: {p: 0}}}]")
    loaded = pipeline(phases, "train.checkpoint_every=2")
    assert [name for name, _ in loaded.phases] == ["stats", "pace"] and loaded.train.method == "pace"
    export = train_pipeline(loaded, dataset_dir, tmp_path, progress=False)
    first = load_checkpoint(tmp_path / "phase1_stats/checkpoints/step_00000002.pt")["model"]
    second = load_checkpoint(tmp_path / "phase2_pace/checkpoints/step_00000002.pt")["model"]
    backbone = [k for k in first if k.startswith("backbone.")]
    assert backbone and all(torch.allclose(first[k], second[k], atol=1e-12) for k in backbone)
    assert "motion_head.weight" in first and "classifier.weight" in second and "motion_head.weight" not in second
    config = yaml.safe_load((tmp_path / "phase2_pace/config.yaml").read_text())
    assert config["phases"][1][1]["pace"]["color_jitter"]["p"] == 0
    assert torch.equal(load_backbone(export).stages["conv1"][0].weight,
                       load_backbone(tmp_path / "phase2_pace/backbone.pt").stages["conv1"][0].weight)
    again = train_pipeline(loaded, dataset_dir, tmp_path, resume=True, progress=False)  # finished phases kept
    assert again == export
    with pytest.raises(ValueError, match="no checkpoint to start from"):
        initialize_from(StatsRegression(tiny_backbone(), loaded.phases[0][1].method_settings), tmp_path / "none")
