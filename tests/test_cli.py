"""The assembled command line: every command listed with a one-line description and its own --help."""
from __future__ import annotations

from click.testing import CliRunner

from cli import cli

EXPECTED = {"demo", "eval", "extract-flow", "extract-frames", "inspect", "make-demo-data", "make-labels",
            "report", "show-labels", "train"}


def test_help_lists_every_command_with_a_whole_description() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    listed = {line.split()[0]: line for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert set(listed) == EXPECTED == set(cli.commands)
    for name, line in listed.items():
        assert not line.rstrip().endswith("..."), f"{name}: description cut short: {line!r}"


def test_every_command_has_help_with_defaults() -> None:
    for name in sorted(EXPECTED):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert "Usage:" in result.output and "--help" in result.output
