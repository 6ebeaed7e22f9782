"""Server-rendered pages: Jinja2 templates shipped in this package, autoescaped (file names,
metadata and prompts can never inject markup), data for scripts in JSON script elements."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from fakestudio import __version__
from fakestudio.web.security import json_script

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

NAV = (
    ("verify", "/", "Verify"),
    ("compare", "/compare", "Compare"),
    ("talk", "/talk", "Talk"),
    ("studio", "/studio", "Studio"),
    ("audit", "/audit", "Audit"),
)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json_script"] = lambda v: Markup(json_script(v))
    env.globals.update(nav=NAV, version=__version__)
    return env


ENV = _env()


def page(template: str, status: int = 200, headers: dict | None = None, **ctx) -> HTMLResponse:
    html = ENV.get_template(template).render(**ctx)
    h = {"Cache-Control": "no-store"}
    h.update(headers or {})
    return HTMLResponse(html, status_code=status, headers=h)


def warm_templates() -> None:
    """Compile every page's template (at start: the first visit then only renders)."""
    for path in TEMPLATES.glob("*.html"):
        ENV.get_template(path.name)
