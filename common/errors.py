"""The exceptions every stage raises for work it refuses to do."""
from __future__ import annotations

import click


class ConfigError(ValueError):
    """A pipelines file, override or setting that does not fit the settings it describes."""


class Refused(click.ClickException):
    """The command did nothing (bad settings, a dataset it must not touch): the message says why (exit status 2)."""

    exit_code = 2


class Unwritable(Refused):
    """A folder or file the run must write is read-only or not ours (exit status 2)."""
