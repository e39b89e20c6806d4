"""Files the set-up command builds (the widget and console bundles) or ships beside them."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web


def built_file(path: Path, content_type: str, cache_control: str) -> web.FileResponse:
    """Serve `path`; a clear 503 when it was not built (rather than a bare 404)."""
    if not path.is_file():
        raise web.HTTPServiceUnavailable(text=f"{path.name} is not built: run `make setup`.")
    response = web.FileResponse(path, headers={"Cache-Control": cache_control})
    response.content_type = content_type
    return response
