"""The `fakestudio` command line: small commands, quiet by default, --json for machines.

Exit codes: 0 success; 2 a usage error or bad input (one line on stderr, no traceback);
130 interrupted (no half-written file is left behind). `verify` documents its own codes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from fakestudio import __version__
from fakestudio.errors import UserError
from fakestudio.extras import missing_extra

# Commands that live in their own modules, imported only when invoked: `verify` must start
# without importing torch, and each command family stays in one obvious place.
LAZY_COMMANDS = {
    "generate": "fakestudio.commands.generate:generate",
    "prepare": "fakestudio.commands.prepare:prepare",
    "train": "fakestudio.commands.train:train",
    "lora-info": "fakestudio.commands.train:lora_info",
    "verify": "fakestudio.commands.verify:verify",
    "audit": "fakestudio.commands.verify:audit",
    "compare": "fakestudio.commands.compare:compare",
    "label": "fakestudio.commands.label:label",
    "encounter": "fakestudio.commands.encounter:encounter",
    "demo": "fakestudio.commands.demo:demo",
    "registry": "fakestudio.commands.registry:registry",
    "web": "fakestudio.commands.web:web",
}


class _Group(click.Group):
    """Lazy subcommands; user mistakes become one clear line and exit code 2."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self._available():
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            cmd = getattr(importlib.import_module(module), attr)
        if cmd is not None:
            finite_floats(cmd)
        return cmd

    @staticmethod
    def _available() -> list[str]:
        import importlib.util

        return [
            name
            for name, target in LAZY_COMMANDS.items()
            if importlib.util.find_spec(target.split(":")[0]) is not None
        ]

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"fakestudio: error: {e}", err=True)
            ctx.exit(2)
        except ModuleNotFoundError as e:  # a package of an extra that is not installed
            missing = missing_extra(e, ctx.invoked_subcommand or "fakestudio")
            if missing is None:
                raise
            click.echo(f"fakestudio: error: {missing}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("fakestudio: interrupted; no partial file was left behind", err=True)
            ctx.exit(130)


class _Finite(click.ParamType):
    """A float option that refuses nan and inf with one line naming the option (click's own
    float type, and its ranges, let nan through: every comparison with nan is false)."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = inner.name

    def convert(self, value, param, ctx):
        v = self.inner.convert(value, param, ctx)
        if isinstance(v, float) and not math.isfinite(v):
            opt = param.opts[0] if param is not None and param.opts else "a number"
            raise UserError(f"{opt} {value}: must be a finite number")
        return v

    def get_metavar(self, param, ctx=None):
        return self.inner.get_metavar(param, ctx) if ctx is not None else None

    def __repr__(self):
        return repr(self.inner)


def finite_floats(cmd: click.Command) -> None:
    """Make every float option of ``cmd`` (and of its subcommands) refuse nan and inf."""
    for param in cmd.params:
        if isinstance(param.type, click.types.FloatParamType):
            param.type = _Finite(param.type)
    for sub in getattr(cmd, "commands", {}).values():
        finite_floats(sub)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fakestudio")
def cli():
    """Make labelled AI images and check where any image came from.

    Every image fakestudio writes carries an invisible watermark, a signed C2PA manifest
    saying it is AI-generated, IPTC metadata, and a row in your local output ledger.
    Likeness and publicity laws apply to whoever generates and shares an image.
    """


@cli.group()
def keys():
    """The local C2PA signing identity (created on first use, key file mode 0600)."""


@keys.command("init")
@click.option(
    "--cert",
    type=click.Path(path_type=Path),
    default=None,
    help="Use your own certificate chain (PEM).",
)
@click.option(
    "--key", type=click.Path(path_type=Path), default=None, help="The private key of --cert (PEM)."
)
def keys_init(cert, key):
    """Create the local signing identity, or install your own --cert/--key."""
    from fakestudio.label import identity as ident

    if (cert is None) != (key is None):
        raise UserError("--cert and --key go together")
    if cert is not None:
        idn = ident.install_identity(cert, key)
    else:
        idn = ident.ensure_identity()
    _print_identity(idn)


@keys.command("show")
@click.option("--json", "as_json", is_flag=True)
def keys_show(as_json):
    """Show the signing identity (creating it if missing)."""
    from fakestudio.label import identity as ident

    idn = ident.ensure_identity()
    if as_json:
        click.echo(json.dumps(ident.identity_info(idn), indent=2, default=str))
    else:
        _print_identity(idn)


def _print_identity(idn) -> None:
    from fakestudio.label.identity import identity_info

    for k, v in identity_info(idn).items():
        click.echo(f"{k:>12}: {v}")


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="fakestudio", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("fakestudio: interrupted", err=True)
        sys.exit(130)
