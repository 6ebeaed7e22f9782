"""CLI commands, one module per family; registered lazily in fakestudio/cli.py."""

from __future__ import annotations

import json

import click


def echo_written(written, as_json: bool, published: list[dict] | None = None) -> None:
    """Print what a generating command wrote: paths, or JSON records with --json (with the
    registry's manifest id for each output published with --publish)."""
    if as_json:
        ids = {p["path"]: p for p in published or []}
        records = []
        for w in written:
            rec = w.to_dict()
            if str(w.path) in ids:
                rec["published"] = {
                    "registry": ids[str(w.path)]["registry"],
                    "manifestId": ids[str(w.path)]["manifestId"],
                }
            records.append(rec)
        click.echo(json.dumps(records, indent=2))
    else:
        for w in written:
            click.echo(str(w.path))
