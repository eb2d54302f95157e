"""The one-line statement under the results table: what the comparison with random initialisation shows; the
``report`` command's files and refusals."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli import cli
from eval.report import comparison_line, is_top1, results_table

PRETRAINED = {"linear.top1": 0.75, "linear.top5": 1.0, "logreg.top1": 0.5, "fewshot.1shot": 0.4,
              "fewshot.1shot.std": 0.1, "retrieval.R@1": 0.5, "retrieval.R@5": 1.0, "finetune.100%.video_top1": 0.25}
RANDOM = {"linear.top1": 0.25, "linear.top5": 1.0, "logreg.top1": 0.5, "fewshot.1shot": 0.3,
          "fewshot.1shot.std": 0.2, "retrieval.R@1": 0.25, "retrieval.R@5": 1.0, "finetune.100%.video_top1": 0.5}


def test_top1_metrics_are_the_headline_figures() -> None:
    names = [n for n in PRETRAINED if is_top1(n)]
    assert names == ["linear.top1", "logreg.top1", "fewshot.1shot", "retrieval.R@1", "finetune.100%.video_top1"]


def test_the_line_counts_metrics_ahead_and_averages_the_gap() -> None:
    results = {"models": {"pretrained": PRETRAINED, "random": RANDOM}, "n_test": 24}
    # gaps in points: +50, 0, +10, +25, -25 -> 3 of 5 higher, mean +12
    expected = ("Shows: the pretrained backbone is ahead of its random initialisation on 24 held-out videos "
                "(3 of 5 top-1 metrics higher, mean +12.0 points).")
    assert comparison_line(results) == expected
    table = results_table(results)
    assert table.endswith("\n" + expected + "\n") and "| linear.top1 | 75.0 | 25.0 | +50.0 |" in table


def test_the_line_says_so_when_pretraining_did_not_help() -> None:
    results = {"models": {"pretrained": RANDOM, "random": PRETRAINED}, "n_test": 8}
    assert comparison_line(results).startswith("Shows: the pretrained backbone is not ahead of its random "
                                               "initialisation on 8 held-out videos (1 of 5 top-1 metrics higher, "
                                               "mean -12.0 points)")


def test_a_single_model_gets_no_line() -> None:
    table = results_table({"models": {"random": RANDOM}, "n_test": 8})
    assert "Shows:" not in table and table.endswith("|\n")


def test_report_writes_into_new_folders_and_refuses_bad_input_naming_the_file(tmp_path: Path) -> None:
    report = tmp_path / "rep"
    report.mkdir()
    (report / "results.json").write_text(json.dumps({"models": {"pretrained": PRETRAINED, "random": RANDOM}}))
    out = tmp_path / "new/all.md"
    result = CliRunner().invoke(cli, ["report", str(report), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| linear.top1 |" in out.read_text() and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    odd = CliRunner().invoke(cli, ["report", str(report), "--figure", str(tmp_path / "bars.foo")])
    assert odd.exit_code == 2 and f"Error: {tmp_path / 'bars.foo'}: Format 'foo' is not supported" in odd.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/results.json").write_text("{not json")
    bad = CliRunner().invoke(cli, ["report", str(report), str(tmp_path / "bad")])
    assert bad.exit_code == 2 and f"Error: {tmp_path / 'bad/results.json'}: not valid JSON" in bad.output
    missing = CliRunner().invoke(cli, ["report", str(tmp_path / "new")])
    assert missing.exit_code == 2 and f"{tmp_path / 'new/results.json'}: no evaluation results" in missing.output
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd/results.json").write_text(json.dumps({"models": 3}))
    foreign = CliRunner().invoke(cli, ["report", str(tmp_path / "odd")])
    assert foreign.exit_code == 2 and f"{tmp_path / 'odd/results.json'}: not an evaluation results file (no " \
                                      f"'models' mapping" in foreign.output
    for models in ({"pretrained": 3}, {"pretrained": {"linear.top1": "75%"}}):
        (tmp_path / "odd/results.json").write_text(json.dumps({"models": models}))
        odd_model = CliRunner().invoke(cli, ["report", str(tmp_path / "odd")])
        assert odd_model.exit_code == 2 and odd_model.output == (
            f"Error: {tmp_path / 'odd/results.json'}: model 'pretrained' has no mapping of metric names to numbers\n"
        ), odd_model.output
