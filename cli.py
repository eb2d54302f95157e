"""vssl command line: ``python cli.py COMMAND ...`` (also installed as the ``vssl`` console script).

The commands live in the CLI layer (``commands/``: one module per stage, plus ``run`` and ``demo``, which
chain every stage); this file assembles them.
"""
from __future__ import annotations

import click

from commands import eval as eval_commands
from commands.contract import ContractGroup
from commands import extract as preprocess_commands
from commands import labels as label_commands
from commands import run as run_commands
from commands import train as train_commands


@click.group(cls=ContractGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120, "terminal_width": 120})
def cli() -> None:
    """Self-supervised video representation learning: CPU stage (frames, flow, labels) and GPU stage
    (pretext training, evaluation)."""


for _module in (preprocess_commands, label_commands, train_commands, eval_commands, run_commands):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
