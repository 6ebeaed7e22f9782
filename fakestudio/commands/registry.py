"""`fakestudio registry`: a soft-binding registry for durable Content Credentials
(docs/registry.md), and the client options other commands share (`--publish`, `--token`).

No torch here: `registry serve` imports only detectors, Starlette and the database driver.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from fakestudio.errors import UserError
from fakestudio.extras import require

DB_HELP = (
    "Database URL: sqlite:///PATH (default: registry.sqlite in the fakestudio data folder) "
    "or postgresql://USER@HOST:PORT/DB (password from ~/.pgpass or PGPASSWORD)."
)


def _storage(db: str | None):
    from fakestudio.registry.storage import StorageError, open_storage

    try:
        return open_storage(db)
    except StorageError as e:
        raise UserError(str(e)) from None


def publish_options(command):
    """`--publish URL` and `--token TOKEN` for the commands that write images."""
    command = click.option(
        "--token",
        "registry_token",
        default=None,
        metavar="TOKEN",
        help="Publisher token for --publish (default: $FAKESTUDIO_REGISTRY_TOKEN).",
    )(command)
    return click.option(
        "--publish",
        "publish_url",
        default=None,
        metavar="URL",
        help="Publish every output's signed manifest to this soft-binding registry "
        "(or $FAKESTUDIO_PUBLISH), so stripped copies can be traced by anyone.",
    )(command)


def resolve_publish(url: str | None, token: str | None) -> tuple[str | None, str | None]:
    """The registry to publish to and its token; a URL without a token is a usage error."""
    from fakestudio.registry.tokens import ENV

    url = url or os.environ.get("FAKESTUDIO_PUBLISH") or None
    if not url:
        return None, None
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--publish {url}: give an http:// or https:// URL")
    token = token or os.environ.get(ENV)
    if not token:
        raise UserError(f"--publish needs a publisher token: --token or ${ENV}")
    return url, token


def publish_written(written, url: str | None, token: str | None) -> list[dict]:
    """Publish each written output; one line naming the file and the problem on failure."""
    if not url:
        return []
    from detectors.registry_client import RegistryClient, RegistryError

    out = []
    with RegistryClient(url, token) as client:
        for w in written:
            try:
                res = client.publish(Path(w.path).read_bytes())
            except (RegistryError, OSError) as e:
                raise UserError(f"{Path(w.path).name}: not published: {e}") from None
            out.append({"path": str(w.path), "manifestId": res.get("manifestId"), "registry": url})
    return out


@click.group()
def registry():
    """A soft-binding registry: durable Content Credentials for stripped copies.

    Publishers store each output's signed manifest under its watermark; anyone holding a
    copy whose metadata was stripped asks the registry (`verify --registry URL`) and gets the
    signed manifest back. API after the C2PA Soft Binding Resolution API; see docs/registry.md.
    """


@registry.command()
@click.option("--db", default=None, metavar="URL", help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8710, show_default=True, help="Port (0: any free one).")
@click.option(
    "--max-body",
    type=int,
    default=32,
    show_default=True,
    metavar="MB",
    help="Largest request body accepted (publish, byContent), in MB.",
)
@click.option(
    "--rate-limit",
    type=float,
    default=20.0,
    show_default=True,
    help="Requests per second per client address; 0 turns the limit off.",
)
@click.option("--burst", type=int, default=60, show_default=True, help="Rate-limit burst size.")
@click.option(
    "--trust-anchors",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PEM",
    help="Root certificates the server trusts when it reports who signed (repeatable).",
)
def serve(db, host, port, max_body, rate_limit, burst, trust_anchors):
    """Run the registry's HTTP API (until Ctrl-C).

    \b
    fakestudio registry serve                              # SQLite, 127.0.0.1:8710
    fakestudio registry serve --db postgresql://registry@localhost/registry --host 0.0.0.0
    """
    require("registry", "registry serve")
    from fakestudio.commands.verify import read_trust_anchors
    from fakestudio.registry.app import RegistryConfig, create_app
    from fakestudio.serving import bound_port, listen, uvicorn_server

    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: must be 0..65535")
    if max_body < 1:
        raise UserError("--max-body must be at least 1 MB")
    storage = _storage(db)
    cfg = RegistryConfig(
        max_body=max_body * 1024 * 1024,
        rate=rate_limit,
        burst=burst,
        trust_anchors=read_trust_anchors(trust_anchors) or None,
    )
    app = create_app(storage, cfg)
    try:
        sock = listen(host, port)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    bound = bound_port(sock)
    click.echo(f"fakestudio registry: serving on http://{host}:{bound}", err=True)
    sys.stderr.flush()
    try:
        uvicorn_server(app).run(sockets=[sock])
    finally:
        storage.close()


@registry.group()
def token():
    """Publisher tokens (stored hashed; shown once)."""


@token.command("create")
@click.option("--db", default=None, metavar="URL", help=DB_HELP)
@click.option("--name", default="publisher", show_default=True, help="Who the token is for.")
def token_create(db, name):
    """Create a publisher token and print it alone on stdout (it is not stored: keep it).

    \b
    export FAKESTUDIO_REGISTRY_TOKEN=$(fakestudio registry token create --name studio-a)
    """
    from fakestudio.registry import tokens

    storage = _storage(db)
    try:
        _id, secret = tokens.create(storage, name)
    finally:
        storage.close()
    click.echo(secret)


@token.command("list")
@click.option("--db", default=None, metavar="URL", help=DB_HELP)
def token_list(db):
    """List tokens (id, name, created, revoked); never the tokens themselves."""
    storage = _storage(db)
    try:
        click.echo(json.dumps(storage.tokens(), indent=2))
    finally:
        storage.close()


@token.command("revoke")
@click.argument("token_id", type=int)
@click.option("--db", default=None, metavar="URL", help=DB_HELP)
def token_revoke(token_id, db):
    """Revoke a token by its id (from `token list`)."""
    storage = _storage(db)
    try:
        if not storage.revoke_token(token_id):
            raise UserError(f"no token with id {token_id}")
    finally:
        storage.close()


@registry.command("publish")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--to", "url", required=True, metavar="URL", help="The registry.")
@click.option("--token", "registry_token", default=None, help="Publisher token.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def publish(files, url, registry_token, as_json):
    """Publish already-written signed images (their manifests, under their watermarks)."""
    from types import SimpleNamespace

    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: no such file")
    url, tok = resolve_publish(url, registry_token)
    res = publish_written([SimpleNamespace(path=f) for f in files], url, tok)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        for r in res:
            click.echo(f"{r['path']}\t{r['manifestId']}")
