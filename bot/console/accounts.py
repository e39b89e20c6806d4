"""Staff accounts from the command line: `python -m bot staff add`."""

from __future__ import annotations

from bot.app import tool_container
from bot.config import Settings
from bot.console.auth import hash_password
from bot.domain.models import Staff, StaffRole


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
    async with tool_container(settings) as container:
        staff = Staff(
            username=username,
            display_name=display_name,
            password_hash=hash_password(password),
            role=StaffRole(role),
            locale=locale or settings.default_locale,
        )
        return (await container.repos.staff.add(staff)).created
