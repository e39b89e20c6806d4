"""The one way HTML pages are rendered: jinja2 with autoescaping, strict about names."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def environment(folder: Path) -> Environment:
    """Templates from `folder`. Autoescaping keeps customer text inert; a misspelt name
    fails the page instead of rendering empty."""
    return Environment(
        loader=FileSystemLoader(folder),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
