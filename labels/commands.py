"""Command-line commands of the labels stage (assembled by cli.py)."""
from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
