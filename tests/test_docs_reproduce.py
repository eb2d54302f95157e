"""docs/REPRODUCE.md stays complete and runnable: every pipeline of pipelines.yaml has a row in its
per-pipeline table (and the table names no pipeline that does not exist), and every ``cli.py COMMAND`` line
of its bash blocks uses only options that command has, with valid values for choice options and real
pipeline names (``P`` is the placeholder). No data, no model: a fraction of a second."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "REPRODUCE.md"
PIPELINES = ROOT / "pipelines.yaml"
TABLE_HEADER = "| pipeline | extraction | labels | pretraining | evaluation |"
PLACEHOLDER = "P"  # the doc's stand-in for any pipeline name


def pipeline_names(path: Path = PIPELINES) -> set[str]:
    """Names of the pipelines defined in ``path``."""
    return set(yaml.safe_load(path.read_text())["pipelines"])


def table_pipelines(text: str) -> set[str]:
    """The back-quoted names in the first column of the per-pipeline table (the one under TABLE_HEADER)."""
    lines = text.splitlines()
    starts = [k for k, line in enumerate(lines) if line.strip() == TABLE_HEADER]
    assert len(starts) == 1, f"{DOC}: expected one per-pipeline table headed {TABLE_HEADER!r}, found {len(starts)}"
    names: set[str] = set()
    for line in lines[starts[0] + 2:]:  # skip the header's separator row
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def cli_lines(text: str) -> list[list[str]]:
    """Tokens after ``cli.py`` (command first) of every line in the ```bash blocks that runs cli.py; comments
    are dropped and a line is split as the shell would."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            tokens = shlex.split(line, comments=True)
            if "cli.py" in tokens:
                found.append(tokens[tokens.index("cli.py") + 1:])
    return found


def option_problems(tokens: list[str], pipelines: set[str]) -> list[str]:
    """What is wrong with one ``COMMAND --option value ...`` line: an unknown command or option, a value that
    a choice option does not accept, a ``--pipeline`` that is neither a pipeline nor the placeholder."""
    if not tokens or tokens[0] not in cli.commands:
        return [f"unknown command {tokens[:1]}"]
    command = cli.commands[tokens[0]]
    params = {name: p for p in command.params if isinstance(p, click.Option) for name in (*p.opts, *p.secondary_opts)}
    problems = []
    k = 1
    while k < len(tokens):
        name, has_value, inline = tokens[k].partition("=")
        k += 1
        if not name.startswith("--") or name == "--help":
            continue
        param = params.get(name)
        if param is None:
            problems.append(f"{tokens[0]}: no option {name}")
            continue
        if param.is_flag or param.count:
            continue
        values = [inline] if has_value else tokens[k:k + param.nargs]
        k += 0 if has_value else param.nargs
        if isinstance(param.type, click.Choice):
            problems += [f"{tokens[0]} {name}: {v!r} is not one of {list(param.type.choices)}"
                         for v in values if v not in param.type.choices]
        if name == "--pipeline":
            known = pipelines | {PLACEHOLDER}
            problems += [f"{tokens[0]} --pipeline: no pipeline {v!r}" for v in values if v not in known]
    return problems


def test_every_pipeline_has_a_row_in_the_per_pipeline_table():
    in_table, defined = table_pipelines(DOC.read_text()), pipeline_names()
    assert not defined - in_table, f"{DOC}: pipelines of {PIPELINES} without a row: {sorted(defined - in_table)}"
    assert not in_table - defined, f"{DOC}: rows for pipelines not in {PIPELINES}: {sorted(in_table - defined)}"


def test_command_lines_use_options_the_cli_has():
    lines = cli_lines(DOC.read_text())
    assert {"extract-flow", "extract-frames", "make-labels", "train", "eval", "report"} <= {t[0] for t in lines}
    problems = [p for tokens in lines for p in option_problems(tokens, pipeline_names())]
    assert not problems, f"{DOC}: " + "; ".join(problems)


def test_the_checks_catch_a_removed_row_and_a_wrong_option():
    """The two checks above are not vacuous: a row removed, an option renamed, a wrong choice value and an
    unknown pipeline in a copy of the real file are each reported."""
    text = DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `video_la` |"))
    assert "video_la" not in table_pipelines(text.replace(row + "\n", ""))
    assert "video_la" in table_pipelines(text)
    defined = pipeline_names()
    cases = {
        ("extract-flow", "IN", "OUT", "--split-file", "x"): ["extract-flow: no option --split-file"],
        ("train", "--device", "tpu"): ["train --device: 'tpu' is not one of ['cpu', 'cuda']"],
        ("train", "--pipeline", "no_such"): ["train --pipeline: no pipeline 'no_such'"],
        ("extract-flow", "--size", "128", "171", "--no-diff", "--set=a=b", "--pipeline", "P"): [],
        ("no-such-command",): ["unknown command ['no-such-command']"],
    }
    for tokens, expected in cases.items():
        assert option_problems(list(tokens), defined) == expected, tokens
