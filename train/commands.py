"""Command-line commands of the train stage (assembled by cli.py)."""
from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
