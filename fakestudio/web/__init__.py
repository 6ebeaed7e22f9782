"""`fakestudio web`: fakestudio in the browser (docs/web.md).

One local Starlette server, pages rendered on the server with a little plain JavaScript, every
asset shipped in this package (no build step, no CDN: it works offline). Verify, Compare,
Talk (with a live quiz for the room), Studio and Audit; a stable JSON API the pages use.

Importing this package imports neither torch nor diffusers: the studio loads them when the
first picture is generated.
"""

from fakestudio.web.config import WebConfig

__all__ = ["WebConfig", "create_app"]


def create_app(config: WebConfig | None = None):
    from fakestudio.web.app import create_app as _create

    return _create(config or WebConfig())
