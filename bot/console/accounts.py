"""Staff accounts from the command line: `python -m bot staff add`."""

from __future__ import annotations

import asyncio

from bot.app import Container
from bot.config import Settings
from bot.console.auth import hash_password
from bot.domain.models import Staff, StaffRole
from bot.storage.embedded import EmbeddedDatabase


async def add_staff(
    settings: Settings,
    *,
    username: str,
    display_name: str,
    password: str,
    role: str,
    locale: str | None,
) -> bool:
    """Add one staff member to the configured database (the embedded one by default).

    False when the user name is taken.
    """
    embedded = None
    uri = settings.mongodb_uri or EmbeddedDatabase.running_uri(settings.data_dir / "ferretdb")
    if uri is None:
        embedded = await asyncio.to_thread(
            EmbeddedDatabase.start, settings.cache_dir, settings.data_dir / "ferretdb"
        )
        uri = embedded.uri
    container = Container.build(settings, uri)
    try:
        await container.repos.ensure_indexes()
        staff = Staff(
            username=username,
            display_name=display_name,
            password_hash=hash_password(password),
            role=StaffRole(role),
            locale=locale or settings.default_locale,
        )
        return (await container.repos.staff.add(staff)).created
    finally:
        await container.close()
        if embedded is not None:
            embedded.stop()
