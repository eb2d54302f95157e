"""vssl command line: ``python cli.py COMMAND ...`` (also installed as the ``vssl`` console script).

Each stage contributes its commands from its own ``commands`` module; this file only assembles them.
"""
from __future__ import annotations

import click

from eval import commands as eval_commands
from labels import commands as label_commands
from preprocess import commands as preprocess_commands
from train import commands as train_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """Self-supervised video representation learning: CPU stage (frames, flow, labels) and GPU stage
    (pretext training, evaluation)."""


for _module in (preprocess_commands, label_commands, train_commands, eval_commands):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
