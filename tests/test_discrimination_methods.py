"""The video_ir, video_la and cvrl methods on real clips: over-fitting a small batch, exact resume with the
memory bank and the clusters, the IDT prior read (never recomputed), the joint space, the re-clustering
interval, and the video_la_idt phases (IR warm-up -> LA with IDT clusters -> joint space).

One tiny dataset per module: ``preprocess.extract.extract`` on six short ARID clips of two classes (frames
only, 48x64). Backbones are a narrow C3D so the file stays within its time budget.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from commands.pipeline import Pipeline, load_pipeline, train_pipeline
from common.errors import ConfigError
from common.settings import parse_overrides
from labels.store import LabelError, consolidated_path, labels_root
from preprocess.extract import extract
from train.backbones import build_backbone
from train.checkpoint import load_checkpoint
from train.data import VideoClipDataset
from train.loop import build_data, initialize_from, train
from train.memory_bank import initial_bank
from train.methods import build_method, method_class
from train.methods import video_la as video_la_module
from train.optim import lr_factor
from train.sampling import SampleKey

CLIPS = ["Turn/Turn_1_42.mp4", "Turn/Turn_1_47.mp4", "Turn/Turn_7_38.mp4",
         "Jump/Jump_8_3.mp4", "Jump/Jump_8_6.mp4", "Jump/Jump_8_1.mp4"]
TINY = "{channels: [4, 8, 8, 16, 16]}"
SMALL = [
    "preprocess.size=[48, 64]",
    "preprocess.diff=false",
    "crop_size=32",
    "train.backbone=c3d_bn",
    f"train.backbone_args={TINY}",
    "train.batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=10",
]


def pipeline(name: str, *overrides: str) -> Pipeline:
    return load_pipeline(name, overrides=parse_overrides([*SMALL, *overrides]))


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("disc_data")
    clips = [c for c in CLIPS if (shared_data / "arid/train" / c).is_file()]
    assert len(clips) == 6, clips
    (root / "videos.txt").write_text("".join(f"{shared_data / 'arid/train' / c}\n" for c in clips))
    out = root / "dataset"
    summary = extract(root / "videos.txt", out, pipeline("video_ir_cpu").preprocess, flow=False, workers=1,
                      progress=False)
    assert not summary.failed, summary.failed
    return out


def built(name: str, dataset_dir: Path, *overrides: str):
    """(method attached to the dataset, its dataset) for pipeline ``name``."""
    settings = pipeline(name, *overrides).train
    data = build_data(settings, dataset_dir)
    torch.manual_seed(0)
    backbone = build_backbone(settings.backbone, method_class(settings.method).input_channels(settings),
                              **settings.backbone_args)
    method = build_method(settings, backbone)
    method.attach(settings, data.dataset)
    return method, data.dataset, settings


def write_h5(path: Path, videos: list[str], **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("videos", data=np.array(videos, dtype=object), dtype=h5py.string_dtype())
        for name, values in arrays.items():
            f.create_dataset(name, data=values)


# ----------------------------------------------------------------------------------------------- data


def test_clips_carry_the_video_and_loop_or_pair_as_declared(dataset_dir: Path) -> None:
    ir, data, _ = built("video_ir_cpu", dataset_dir)
    item = data[SampleKey(2, 0, 1)]
    assert item["frames"].shape[:2] == (1, 16) and item["frames"].shape[2:] == (48, 64, 3)
    assert ir.video_rows[int(item["video"])] == 2
    cvrl, pairs, _ = built("cvrl_cpu", dataset_dir)
    item = pairs[SampleKey(0, 3, 0)]
    assert item["frames"].shape[:2] == (2, 16)
    full = pairs.dataset.read_frames(pairs.videos[int(item["video"])].id)
    n = len(full)
    # each clip is 16 frames 2 apart, wrapping modulo the length (these clips are shorter than 31 frames or not)
    firsts = [int(np.flatnonzero((full == clip[0]).all(axis=(1, 2, 3)))[0]) for clip in item["frames"]]
    for start, clip in zip(firsts, item["frames"]):
        np.testing.assert_array_equal(clip, full[(start + 2 * np.arange(16)) % n])


# ------------------------------------------------------------------------------------ over-fitting


@pytest.mark.parametrize("name,metric,lr", [("video_ir_cpu", "instance_acc", 3e-3),
                                            ("video_la_cpu", "instance_acc", 3e-3), ("cvrl_cpu", "pair_acc", 1e-3)])
def test_each_method_overfits_a_small_batch_of_real_clips(dataset_dir: Path, name: str, metric: str,
                                                          lr: float) -> None:
    """The same four videos with the same augmentation every step: the loss falls by half and each clip finds
    its own video (bank entry or other clip). (With the plain C3D, whose untrained embeddings of these dark
    clips have cosine 0.998, the 6-entry bank collapses and IR cannot separate them; with batch norm: 0.96.)"""
    method, data, settings = built(name, dataset_dir, "train.batch_size=4")
    batch = default_collate([data[SampleKey(i, 0, i)] for i in range(4)])
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    losses, scores = [], []
    for step in range(1, 41):
        inputs = method.prepare(batch, torch.Generator().manual_seed(0))
        output = method(inputs)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        method.after_step(inputs, output, step)
        losses.append(float(output.loss.detach()))
        scores.append(float(output.metrics[metric]))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), (losses[:3], losses[-5:])
    assert scores[-1] == 1.0, scores


# ------------------------------------------------------------------------------------ exact resume


@pytest.mark.parametrize("name,extra", [("video_ir_cpu", ()), ("video_la_cpu", ("train.video_la.recluster_every=2",)),
                                        ("cvrl_cpu", ())])
def test_resume_is_exact_with_bank_and_clusters(dataset_dir: Path, tmp_path: Path, name: str,
                                                extra: tuple[str, ...]) -> None:
    """12 steps (4 epochs of 3 steps) in one go, and stopped at step 4 then resumed: every tensor (weights,
    bank, Z, clusters) and the clusters' history end identical. LA re-clusters before step 1, after it and
    every second epoch (steps 6 and 12), with the NMI against the two classes each time."""
    settings = pipeline(name, "train.max_steps=12", *extra).train
    whole = tmp_path / "whole"
    train(settings, dataset_dir, whole, progress=False)
    final = load_checkpoint(whole / "checkpoints/step_00000012.pt")["model"]
    stopped = tmp_path / "stopped"
    (stopped / "checkpoints").mkdir(parents=True)
    step4 = whole / "checkpoints/step_00000004.pt"
    (stopped / "checkpoints" / step4.name).write_bytes(step4.read_bytes())
    train(settings, dataset_dir, stopped, resume=True, progress=False)
    resumed = load_checkpoint(stopped / "checkpoints/step_00000012.pt")["model"]
    assert set(final) == set(resumed)
    for key, value in final.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, resumed[key]), key
        else:
            assert value == resumed[key], key
    if name.startswith("video"):
        start = load_checkpoint(step4)["model"]["bank.vectors"]
        assert not torch.allclose(start, final["bank.vectors"])  # the bank moved
    if name == "video_la_cpu":
        history = final["_extra_state"]["clusterings"]
        assert [c["step"] for c in history] == [0, 1, 6, 12]
        assert all(0.0 <= c["nmi"] <= 1.0 for c in history)
        assert final["cluster_labels"].shape == (3, 6)


# ------------------------------------------------------------------------------------- LA clusters


def test_idt_prior_clusters_are_read_not_recomputed(dataset_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, data, _ = built("video_ir_cpu", dataset_dir)
    ids = [video.id for video in data.videos]
    stored = list(reversed(ids)) + ["other/video"]  # another order and one more video than the dataset
    assignments = np.array([[i % 2 for i in range(7)], [i // 4 for i in range(7)]], dtype=np.int64)
    path = consolidated_path(labels_root(dataset_dir), "clusters")
    write_h5(path, stored, assignments=assignments)

    def no_kmeans(*args, **kwargs):
        raise AssertionError("the IDT prior must not be recomputed")

    monkeypatch.setattr(video_la_module, "kmeans_runs", no_kmeans)
    try:
        settings = pipeline("video_la_cpu", "train.video_la.clusters=idt", "train.max_steps=6").train
        train(settings, dataset_dir, tmp_path / "run", progress=False)
        model = load_checkpoint(tmp_path / "run/checkpoints/step_00000006.pt")["model"]
        expected = assignments[:, [stored.index(video) for video in ids]]
        np.testing.assert_array_equal(model["cluster_labels"].numpy(), expected)
        assert [c["step"] for c in model["_extra_state"]["clusterings"]] == [0]
        write_h5(path, stored[1:], assignments=assignments[:, 1:])  # the dataset's first video is missing
        with pytest.raises(LabelError, match=rf"clusters.h5: 1 training video\(s\) missing, e.g. {ids[-1]}"):
            built("video_la_cpu", dataset_dir, "train.video_la.clusters=idt")
    finally:
        path.unlink()


def test_joint_space_clusters_bank_and_weighted_fisher_vectors(dataset_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, data, _ = built("video_ir_cpu", dataset_dir)
    ids = [video.id for video in data.videos]
    vectors = np.random.default_rng(0).normal(size=(6, 20)).astype(np.float32)
    path = consolidated_path(labels_root(dataset_dir), "fisher")
    write_h5(path, ids[::-1], vector=vectors)
    seen = []

    def spy(points, num_clusters, runs, seed=0):
        seen.append(points)
        return np.tile(np.arange(points.shape[0]) % num_clusters, (runs, 1))

    monkeypatch.setattr(video_la_module, "kmeans_runs", spy)
    try:
        method, data, _ = built("video_la_cpu", dataset_dir, "train.video_la.clusters=joint",
                                "train.video_la.fisher_weight=0.5")
        batch = default_collate([data[SampleKey(i, 0, i)] for i in range(2)])
        method.prepare(batch, torch.Generator().manual_seed(0))
        assert len(seen) == 1 and seen[0].shape == (6, 128 + 20)
        np.testing.assert_allclose(seen[0][:, :128], method.bank.vectors.numpy())
        np.testing.assert_allclose(seen[0][:, 128:], 0.5 * vectors[::-1])
        assert method.cluster_labels.tolist() == [[0, 1, 0, 1, 0, 1]] * 3
    finally:
        path.unlink()


def test_video_la_idt_phases_carry_weights_and_bank(dataset_dir: Path, tmp_path: Path) -> None:
    """IR warm-up -> LA with the IDT clusters -> joint space, 3 steps each: each phase starts from the
    previous one's bank; the LA phase uses the file's clusters, the joint phase its own k-means."""
    ids = [video.id for video in VideoClipDataset(dataset_dir, method_class("video_ir").clip_spec(
        pipeline("video_ir_cpu").train)).videos]
    root = labels_root(dataset_dir)
    prior = np.array([[0, 0, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 2, 2]], dtype=np.int64)
    write_h5(consolidated_path(root, "clusters"), ids, assignments=prior)
    write_h5(consolidated_path(root, "fisher"), ids,
             vector=np.random.default_rng(1).normal(size=(6, 16)).astype(np.float32))
    try:
        loaded = pipeline("video_la_idt_cpu", "train.max_steps=3")
        assert [name for name, _ in loaded.phases] == ["ir", "la_idt", "joint"]
        train_pipeline(loaded, dataset_dir, tmp_path, progress=False)
        ir, la, joint = (load_checkpoint(tmp_path / folder / "checkpoints/step_00000003.pt")["model"]
                         for folder in ("phase1_ir", "phase2_la_idt", "phase3_joint"))
        assert (tmp_path / "backbone.pt").is_file()
        np.testing.assert_array_equal(la["cluster_labels"].numpy(), prior)
        assert la["_extra_state"]["clusters"] == "idt" and joint["_extra_state"]["clusters"] == "joint"
        assert [c["step"] for c in la["_extra_state"]["clusterings"]] == [0]  # the prior, never recomputed
        assert [c["step"] for c in joint["_extra_state"]["clusterings"]] == [0, 1, 3]  # k-means, 1 epoch
        assert not np.array_equal(joint["cluster_labels"].numpy(), prior)
        # phase 2 starts from phase 1's weights and bank (the loop's init_from), then moves on
        settings = loaded.phases[1][1]
        method = build_method(settings, build_backbone(settings.backbone, 3, **settings.backbone_args))
        method.attach(settings, VideoClipDataset(dataset_dir, method.clip_spec(settings)))
        assert "cluster_labels" in initialize_from(method, tmp_path / "phase1_ir")
        assert torch.equal(method.bank.vectors, ir["bank.vectors"])
        assert torch.equal(method.head.weight, ir["head.weight"])
        np.testing.assert_array_equal(method.cluster_labels.numpy(), prior)
        assert not torch.equal(ir["bank.vectors"], la["bank.vectors"])
    finally:
        for family in ("clusters", "fisher"):
            consolidated_path(root, family).unlink()


def test_multistep_schedule_divides_at_each_milestone() -> None:
    settings = pipeline("video_la_idt").phases[1][1]
    assert settings.schedule.milestones == [160, 190]
    assert [lr_factor(settings, s, 10, 2000) for s in (0, 1599, 1600, 1899, 1900)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01])
    with pytest.raises(ConfigError, match="increasing positive milestones"):
        pipeline("video_la_idt", "train.phases=[{name: a, schedule: {kind: multistep, milestones: [5, 2]}}]")


# ------------------------------------------------------------------------------------------------ DDP

DDP_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
from torch.utils.data import default_collate
from commands.pipeline import load_pipeline
from common.errors import ConfigError
from common.settings import parse_overrides
from train.distributed import setup_distributed
from train.loop import apply_gradients, build_data, build_sampler, build_state, wrap_model
from train.methods import video_la

overrides, data_dir, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
settings = load_pipeline("video_la_cpu", overrides=parse_overrides(overrides)).train
ctx = setup_distributed("cpu")
if ctx.rank == 1:  # k-means runs on rank 0 only; rank 1 receives its labels
    video_la.kmeans_runs = None
data = build_data(settings, data_dir)
torch.manual_seed(0)
state = build_state(settings, data, ctx.device)
model = wrap_model(state.method, settings, ctx)
for step, keys in enumerate(build_sampler(settings, data, ctx, 0), start=1):
    inputs = state.method.prepare(default_collate([data.dataset[k] for k in keys]), None)
    output = model(inputs)
    apply_gradients(state, output.loss, None)
    state.method.after_step(inputs, output, step)
    if step % data.steps_per_epoch == 0:
        state.method.on_epoch_end(step // data.steps_per_epoch)
torch.save({{"bank": state.method.bank.vectors, "clusters": state.method.cluster_labels,
            "history": state.method.clusterings, "ignored": sorted(model.parameters_to_ignore)}},
           out / f"rank{{ctx.rank}}.pt")
"""


def test_video_la_under_ddp_shares_bank_and_rank0_clusters(dataset_dir: Path, tmp_path: Path) -> None:
    """Two gloo processes, one clip each per step, 6 steps (2 epochs): both end with the same bank (every row
    of the global batches written on both) and the clusters k-means made on rank 0; DDP leaves the bank and
    the clusters out of its buffer broadcast."""
    overrides = [*SMALL, "train.max_steps=6"]
    script = tmp_path / "ddp_la.py"
    script.write_text(DDP_SCRIPT.format(repo=str(Path(__file__).resolve().parents[1])))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         json.dumps(overrides), str(dataset_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0["bank"], rank1["bank"]) and torch.equal(rank0["clusters"], rank1["clusters"])
    assert [c["step"] for c in rank0["history"]] == [0, 1, 3, 6] and rank0["history"] == rank1["history"]
    # every row was written in 2 epochs of 6 videos (each rank saw 3 of every 6): none is still initial
    assert not torch.isclose(rank0["bank"], initial_bank(6, 128, 0)).all(dim=1).any()
    assert set(rank0["ignored"]) == {"bank.vectors", "cluster_labels"}
