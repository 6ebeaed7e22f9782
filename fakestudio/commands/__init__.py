"""CLI commands, one module per family; registered lazily in fakestudio/cli.py."""

from __future__ import annotations

import json

import click


def echo_written(written, as_json: bool) -> None:
    """Print what a generating command wrote: paths, or JSON records with --json."""
    if as_json:
        click.echo(json.dumps([w.to_dict() for w in written], indent=2))
    else:
        for w in written:
            click.echo(str(w.path))
