"""HTTP upload of a file for the widget, with a one-time token issued over the socket."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from aiohttp import BodyPartReader, web

from bot.storage import Repositories
from bot.storage.uploads import Upload

CHUNK = 64 * 1024

# The content decides the type, not the name or the declared type.
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def sniff(content: bytes) -> str | None:
    for prefix, mime in MAGIC:
        if content.startswith(prefix):
            return mime
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def safe_name(raw: str | None) -> str:
    """A file name to show, not to use as a path: last component, printable, bounded."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or "file"


class UploadRejected(Exception):
    def __init__(self, status: int, code: str, **params: int | str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.params = params


async def receive(
    request: web.Request,
    repos: Repositories,
    *,
    max_bytes: int,
    types: frozenset[str],
) -> Upload:
    """Check the token, read one `file` part within the limit, check its type, store it."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    grant = await repos.upload_tokens.redeem(token) if token else None
    if grant is None:
        raise UploadRejected(401, "expired")
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (ValueError, AssertionError, KeyError) as exc:
        raise UploadRejected(400, "invalid") from exc
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise UploadRejected(400, "invalid")
    content = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        content.extend(chunk)
        if len(content) > max_bytes:
            raise UploadRejected(413, "file_too_large", limit=max(1, max_bytes // (1024 * 1024)))
    data = bytes(content)
    mime = sniff(data)
    if mime is None or mime not in types:
        raise UploadRejected(415, "unsupported_type")
    upload = Upload(
        owner=grant.owner,
        name=safe_name(part.filename),
        mime_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
    )
    return await repos.uploads.insert(upload)
