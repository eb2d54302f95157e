"""The assembled command line: every command listed with a one-line description and its own --help."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import cli

EXPECTED = {"demo", "eval", "extract-flow", "extract-frames", "inspect", "make-demo-data", "make-labels",
            "report", "run", "show-labels", "train"}


def test_help_lists_every_command_with_a_whole_description() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    listed = {line.split()[0]: line for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert set(listed) == EXPECTED == set(cli.commands)
    for name, line in listed.items():
        assert not line.rstrip().endswith("..."), f"{name}: description cut short: {line!r}"


def test_every_command_documents_each_of_its_options() -> None:
    for name in sorted(EXPECTED):
        result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, f"{name}: {result.output}"
        for param in cli.commands[name].params:
            for flag in getattr(param, "opts", []):
                if flag.startswith("-"):
                    assert flag in result.output, f"{name} --help does not mention {flag}"
            if getattr(param, "help", None) is not None:
                assert param.help.split()[0] in result.output, f"{name}: help of {param.name} missing"


def test_run_refuses_a_pipeline_whose_method_is_not_implemented(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["run", "--pipeline", "cpc_flow_tvl1", "--set", "train.method=byol", str(tmp_path),
                                      str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "pipeline 'cpc_flow_tvl1': its method 'byol' is not implemented yet" in result.output
    assert not (tmp_path / "out").exists()  # refused before any work
    unknown = CliRunner().invoke(cli, ["run", "--pipeline", "nope", str(tmp_path), str(tmp_path / "out")])
    assert unknown.exit_code == 2 and "unknown pipeline 'nope' (known: cpc_diff, " in unknown.output
    assert " demo, " in unknown.output


def test_eval_options_reach_the_settings_and_the_call(tmp_path, monkeypatch) -> None:
    """Each direct option of eval lands in the eval settings (over the pipeline and --set) or the call it names."""
    calls = []
    monkeypatch.setattr("eval.evaluate.evaluate", lambda *args, **kwargs: calls.append((args, kwargs)) or {
        "models": {"random": {"linear.top1": 0.5}}, "n_test": 2})
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("")
    result = CliRunner().invoke(cli, [
        "eval", "--weights", "random", "--backbone", "c3d", "--backbone-arg", "channels=[8, 16, 16, 32, 32]",
        "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--pipeline", "cvrl_r3d50_k400", "--set", "eval.seed=1",
        "--task", "linear", "--task", "similarity", "--stage", "pool4", "--split", "stratified", "--clips", "3",
        "--label-fraction", "0.1", "--label-fraction", "1", "--pairs", str(pairs), "--seed", "5", "--cache-dir",
        str(tmp_path / "cache"), "--device", "cpu", "--no-figures", "--no-progress", "--labels-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (args, kwargs), = calls
    settings = kwargs["settings"]
    assert args == ("random", tmp_path, tmp_path / "r", ["linear", "similarity"])
    assert (settings.stage, settings.split, settings.clips.clips_per_video, settings.finetune.label_fractions,
            settings.similarity.pairs, settings.seed) == ("pool4", "stratified", 3, [0.1, 1.0], str(pairs), 5)
    assert (settings.clips.frames, settings.clips.stride) == (32, 2)  # the rest from the pipeline
    assert (kwargs["backbone"], kwargs["backbone_args"], kwargs["cache_dir"], kwargs["device"], kwargs["make_figures"],
            kwargs["progress"], kwargs["labels_dir"]) == ("c3d", {"channels": [8, 16, 16, 32, 32]}, tmp_path / "cache",
                                                          "cpu", False, False, tmp_path)


@pytest.mark.parametrize("name", ["labels", "labels: v2", "run #2"])
def test_train_labels_dir_reaches_the_settings_as_the_folder_given(name: str, tmp_path, monkeypatch) -> None:
    """--labels-dir is the folder's path whatever characters it holds (not parsed as a YAML value)."""
    trained = []
    monkeypatch.setattr("commands.train.train_pipeline", lambda pipeline, *args, **kwargs: trained.append(pipeline)
                        or tmp_path / "backbone.pt")
    (tmp_path / name).mkdir()
    result = CliRunner().invoke(cli, ["train", "--pipeline", "demo", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "run"), "--device", "cpu", "--labels-dir", str(tmp_path / name),
                                      "--set", "train.lr=0.01"])
    assert result.exit_code == 0, result.output
    assert trained[0].train.labels_dir == str(tmp_path / name) and trained[0].train.lr == 0.01
