"""``run`` end to end on real ARID clips with ``eval.baselines: [idt]``: the statistics method pretrained, its
random twin and the hand-crafted IDT Fisher-vector baseline on one split, in one comparison.

24 clips (4 per class), the demo pipeline's sizes, 150 training steps, a 12/12 stratified split; IDT at the
clips' native resolution (at 120x160 no trajectory survives in some of ARID's darkest clips) and the classic
(``standard``) Fisher vector with 16 Gaussians, count-sketched to 2000 dimensions. About 2.5 minutes on two cores, most of it IDT.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from eval.retrieval import cosine_similarity

CLASSES = ["Jump", "Run", "Sit", "Stand", "Turn", "Walk"]
SETTINGS = [
    "eval.split=stratified", "eval.test_fraction=0.5", "eval.baselines=[idt]",
    "eval.tasks=[linear, fewshot, retrieval]",
    "labels.fisher={variant: standard, gmm_components: 16, gmm_n_init: 1, gmm_max_iter: 50, rows_per_video: 500}",
    "train.max_steps=150",
]


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def test_run_compares_pretrained_stats_random_and_idt_on_one_split(shared_data: Path, tmp_path: Path) -> None:
    videos = [p for label in CLASSES for p in sorted((shared_data / "arid/train" / label).glob("*.mp4"))[::6][:4]]
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{p}\n" for p in videos))
    out, labels = tmp_path / "out", tmp_path / "labels"  # labels in train.labels_dir: made, trained on, read there
    sets = [item for setting in [*SETTINGS, f"train.labels_dir={labels}"] for item in ("--set", setting)]
    result = CliRunner().invoke(cli, ["run", "--pipeline", "demo", str(listing), str(out), "--workers", "2",
                                      "--device", "cpu", "--no-progress", *sets])
    assert result.exit_code == 0, result.output
    assert "computing labels: stats, curriculum, idt, fisher" in result.output  # the baseline's labels added
    assert not (out / "dataset/labels").exists() and (labels / "stats/stats.h5").is_file()

    # the statistics method learned: its loss fell to under half of the first logged value
    losses = [json.loads(line)["loss"] for line in (out / "run/metrics.jsonl").read_text().splitlines()
              if "loss" in line]
    assert len(losses) >= 5 and losses[-1] < 0.5 * losses[0]

    method = json.loads((out / "report/results.json").read_text())
    idt = json.loads((out / "report_idt/results.json").read_text())
    assert set(method["models"]) == {"pretrained", "random"} and set(idt["models"]) == {"idt"}
    assert idt["train_ids"] == method["train_ids"] and idt["test_ids"] == method["test_ids"]
    assert len(idt["train_ids"]) == 12 and len(idt["test_ids"]) == 12 and idt["missing_descriptors"] == []

    # the baseline's retrieval equals a brute-force nearest neighbour over the stored Fisher vectors
    with h5py.File(labels / "fisher/fisher.h5", "r") as handle:
        rows = dict(zip(handle["videos"].asstr()[:], handle["vector"][:]))
    assert len(rows) == 24 and all(np.isfinite(v).all() and np.linalg.norm(v) > 0.5 for v in rows.values())
    label = {f"{p.parent.name}/{p.stem}": p.parent.name for p in videos}
    train, test = idt["train_ids"], idt["test_ids"]
    similarity = cosine_similarity(np.stack([rows[v] for v in test]), np.stack([rows[v] for v in train]))
    hits = [label[train[int(np.argmax(s))]] == label[v] for v, s in zip(test, similarity)]
    assert idt["models"]["idt"]["retrieval.R@1"] == np.mean(hits)
    assert np.mean(hits) > 2 / 6  # IDT carries the action on these dark clips: twice chance or more

    # one comparison: a column per model, the numbers of the two reports, and the bar chart
    table = (out / "comparison.md").read_text()
    assert "| metric (%) | demo: pretrained | demo: random init | idt: IDT (hand-crafted) |" in table
    for metric in ("linear.top1", "logreg.top1", "retrieval.R@1"):
        values = [method["models"]["pretrained"][metric], method["models"]["random"][metric],
                  idt["models"]["idt"][metric]]
        assert f"| {metric} | {' | '.join(_percent(v) for v in values)} |" in table
    assert (out / "comparison.png").stat().st_size > 10_000


def test_run_refuses_a_single_class_dataset_before_labels_and_training(shared_data: Path, tmp_path: Path) -> None:
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{shared_data / 'arid/train/Jump/Jump_8_3.mp4'} Jump\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--pipeline", "demo", str(listing), str(out), "--workers", "1",
                                      "--device", "cpu", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.output.endswith(f"Error: {out / 'dataset'}: evaluation needs labelled videos of at least 2 classes, "
                                  "found ['Jump']\n")
    assert (out / "dataset/index.json").is_file() and not (out / "dataset/labels").exists() and not (out / "run").exists()


@pytest.mark.parametrize(("tasks", "labelled"), [("[finetune, similarity]", ["stats", "curriculum"]),
                                                  ("[finetune, linear]", ["stats", "curriculum", "idt", "fisher"])])
def test_run_makes_the_baseline_labels_only_when_a_task_takes_them(tasks: str, labelled: list[str], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With only network tasks (fine-tuning, similarity) the IDT baseline has nothing to run: ``run`` says so
    before the labels and does not compute the idt and fisher families (IDT is the costly part)."""
    made: list[list[str]] = []

    def labels_then_stop(dataset, settings, label_tasks, **kwargs):
        made.append(list(label_tasks))
        raise KeyboardInterrupt

    monkeypatch.setattr("preprocess.extract.extract", lambda *args, **kwargs: None)
    monkeypatch.setattr("preprocess.extract.format_summary", lambda summary: "extracted")
    monkeypatch.setattr("preprocess.dataset.Dataset", lambda path: contextlib.nullcontext())
    monkeypatch.setattr("eval.labelled.labelled_videos", lambda dataset: None)
    monkeypatch.setattr("labels.make.make_labels", labels_then_stop)
    result = CliRunner().invoke(cli, ["run", "--pipeline", "demo", str(tmp_path), str(tmp_path / "out"), "--device",
                                      "cpu", "--set", "eval.baselines=[idt]", "--set", f"eval.tasks={tasks}"])
    assert result.exit_code == 130 and made == [labelled], result.output
    skipped = "baselines skipped: none of the tasks ['finetune', 'similarity'] takes stored descriptors\n"
    assert (skipped in result.output) == ("linear" not in tasks)
