"""The assembled command line: every command listed with a one-line description and its own --help."""
from __future__ import annotations

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
