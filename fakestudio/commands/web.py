"""`fakestudio web`: fakestudio in the browser (docs/web.md).

Imports neither torch nor diffusers at start: the studio loads them for its first picture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fakestudio.errors import UserError
from fakestudio.extras import require


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=7860, show_default=True, help="Port (0: any free one).")
@click.option(
    "--talk",
    "talk_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="The talk's pictures: a `fakestudio demo` output folder, or a folder with real/ and "
    "fake/ sub-folders (pairs in name order).",
)
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="LoRAs the studio offers (and <lora:name:weight> prompt tags resolve to).",
)
@click.option(
    "--registry",
    default=None,
    metavar="URL",
    help="Ask this soft-binding registry when a checked image has no manifest (never by default).",
)
@click.option(
    "--allow-remote-admin",
    is_flag=True,
    help="With --host: let other machines (with the admin token) use the studio and the audit.",
)
@click.option(
    "--max-upload",
    type=int,
    default=64,
    show_default=True,
    metavar="MB",
    help="Largest image accepted, in MB (the CLI's pixel limits apply too).",
)
@click.option(
    "--trust-anchors",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PEM",
    help="Root certificates (PEM) to trust for C2PA; repeatable.",
)
@click.option("--no-ledger", is_flag=True, help="Do not look images up in your output ledger.")
@click.option(
    "--base", default=None, help="The studio's base model (default: $FAKESTUDIO_BASE or world)."
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="The address phones should use (the quiz's QR code), e.g. http://192.168.1.20:7860.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in your browser.")
def web(
    host,
    port,
    talk_dir,
    lora_dir,
    registry,
    allow_remote_admin,
    max_upload,
    trust_anchors,
    no_ledger,
    base,
    public_url,
    open_browser,
):
    """Open fakestudio in the browser: verify by drag and drop, compare with a slider, a
    labelled studio, an audit table, and a talk with a live "which one is real?" quiz.

    \b
    fakestudio web                          # http://127.0.0.1:7860, this machine only
    fakestudio web --talk demo-out          # the demo's story and quiz
    fakestudio web --talk demo-out --host 0.0.0.0   # phones in the room join the quiz

    Loopback only by default. With --host another address, pages need the admin token (the
    printed link sets it) and the audience needs the join code shown on the talk screen.
    """
    require("web", "web")
    from fakestudio.commands.verify import read_trust_anchors, registry_choice
    from fakestudio.serving import bound_port, listen, uvicorn_server
    from fakestudio.web import create_app
    from fakestudio.web.config import WebConfig, is_loopback
    from fakestudio.web.talk import check_talk_dir

    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: must be 0..65535")
    if max_upload < 1:
        raise UserError("--max-upload must be at least 1 MB")
    if talk_dir is not None:
        check_talk_dir(talk_dir)
    if lora_dir is not None and not lora_dir.is_dir():
        raise UserError(f"--lora-dir {lora_dir}: no such folder")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise UserError(f"--public-url {public_url}: give an http:// or https:// URL")
    cfg = WebConfig(
        host=host,
        port=port,
        talk_dir=talk_dir,
        lora_dir=lora_dir,
        registry=registry_choice(registry),
        allow_remote_admin=allow_remote_admin,
        max_upload=max_upload * 1024 * 1024,
        trust_anchors=read_trust_anchors(trust_anchors) or None,
        use_ledger=not no_ledger,
        base=base,
        public_url=public_url.rstrip("/") if public_url else None,
    )
    try:
        sock = listen(host, port)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    cfg.port = bound_port(sock)
    app = create_app(cfg)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{cfg.port}/"
    if is_loopback(host):
        click.echo(f"fakestudio web: {url}  (this machine only; Ctrl-C stops)", err=True)
        first = url
    else:
        base_url = cfg.public_url or url.rstrip("/")
        first = f"{base_url.rstrip('/')}/?token={cfg.admin_token}"
        click.echo(f"fakestudio web: listening on {url}", err=True)
        click.echo(f"  presenter / admin (keep private): {first}", err=True)
        click.echo(f"  audience joins at: {base_url.rstrip('/')}/j/{cfg.join_code}", err=True)
    sys.stderr.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(first)
    uvicorn_server(app, on_exit=app.close_streams, timeout_graceful_shutdown=5).run(sockets=[sock])
