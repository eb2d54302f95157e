"""Command-line commands of the preprocess stage (assembled by cli.py)."""
from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
