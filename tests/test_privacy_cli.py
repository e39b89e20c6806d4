"""`python -m bot privacy retention|export|erase` on the test database, through
bot.__main__.main as a terminal would call it (C4.3, C3.2.6)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.app import Container
from bot.config import Settings
from bot.domain.models import (
    AuditEntry,
    Channel,
    Customer,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
    utcnow,
)
from bot.services import privacy as privacy_service
from bot.storage.privacy import PrivacyRequestRepository
from tests.services.chat import Chat


@pytest.fixture(autouse=True)
def environment(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The CLI reads its settings from the environment: point it at the test database."""
    assert settings.mongodb_uri is not None
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri)
    monkeypatch.setenv("BOT_MONGODB_DATABASE", settings.mongodb_database)
    monkeypatch.setenv("BOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level  # main() configures logging


async def cli(*args: str) -> int:
    # main() runs its own event loop, as on a terminal: give it a thread.
    return await asyncio.to_thread(main, ["privacy", *args])


async def filed(container: Container, user: str = "31") -> tuple[Customer, Ticket]:
    await Chat(container, user, locale="en").happy_path(f"{user}: the parcel came late.")
    customer = await container.repos.customers.find(Channel.TELEGRAM, user)
    assert customer is not None
    (ticket,) = await container.repos.tickets.all_for_customer(customer.id)
    return customer, ticket


def rows(output: str) -> dict[str, str]:
    """The CLI's table as {first column: second column}."""
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.strip()}


# ------------------------------------------------------------ retention


async def test_c4_3_retention_dry_run_prints_counts_and_changes_nothing(
    container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow()
    await container.repos.refusals.record((now - timedelta(days=400)).date(), Channel.WIDGET)
    await container.repos.refusals.record(now.date(), Channel.WIDGET)
    for age in (1100, 1100, 10):
        await container.repos.audit.append(
            AuditEntry(
                at=now - timedelta(days=age),
                actor="system",
                action="x",
                target_type="t",
                target_id="t",
            )
        )

    assert await cli("retention", "--dry-run") == 0
    table = rows(capsys.readouterr().out)
    assert table["rule"] == "would"
    assert (table["refusals"], table["audit"], table["drafts"]) == ("1", "2", "0")
    assert await container.repos.refusals.count_before("day", "9999") == 2
    assert await container.repos.audit.count_before("at", now + timedelta(days=1)) == 3

    assert await cli("retention") == 0
    table = rows(capsys.readouterr().out)
    assert table["rule"] == "removed"
    assert (table["refusals"], table["audit"]) == ("1", "2")
    assert await container.repos.refusals.count_before("day", "9999") == 1
    assert await container.repos.audit.count_before("at", now + timedelta(days=1)) == 1

    assert await cli("retention") == 0
    assert set(rows(capsys.readouterr().out).values()) == {"removed", "0"}


# ------------------------------------------------------------ export


async def test_c3_2_6_export_to_standard_output(
    container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, ticket = await filed(container)
    await filed(container, "32")  # someone else
    assert await cli("export", "--customer", ticket.reference) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["customer"]["id"] == customer.id
    assert [t["text"] for t in document["tickets"]] == ["31: the parcel came late."]
    (request,) = [
        r
        for r in await container.repos.privacy_requests.recent()
        if r.kind is PrivacyRequestKind.EXPORT
    ]
    assert (request.by, request.state, request.customer_id) == (
        "cli",
        PrivacyRequestState.DONE,
        customer.id,
    )


async def test_c3_2_6_export_to_a_file_only_its_owner_can_read(
    container: Container, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, _ = await filed(container)
    out = tmp_path / "export.json"
    assert await cli("export", "--customer", customer.id, "--out", str(out)) == 0
    assert json.loads(out.read_bytes())["customer"]["id"] == customer.id
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert capsys.readouterr().out == ""


async def test_an_unknown_customer_is_a_clear_error(
    container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("export", "--customer", "nobody@example.com") == 1
    assert await cli("erase", "--customer", "FB-2026-999999", "--yes") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("error: no customer matches") == 2


async def test_several_matches_are_listed_without_contact_details_and_refused(
    container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    twins = [
        await container.repos.customers.insert(
            Customer(channel=channel, external_id="7", locale="en", email="twin@example.com")
        )
        for channel in (Channel.TELEGRAM, Channel.WIDGET)
    ]
    assert await cli("erase", "--customer", "twin@example.com", "--yes") == 1
    err = capsys.readouterr().err
    assert "2 customers match" in err
    for twin in twins:
        assert f"{twin.channel.value}  {twin.id}" in err
        assert await container.repos.customers.get(twin.id) is not None
    assert "twin@example.com" not in err


# ------------------------------------------------------------ erase


async def test_c3_2_6_erase_asks_first(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, ticket = await filed(container)
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert await cli("erase", "--customer", ticket.reference) == 1
    assert "This cannot be undone" in capsys.readouterr().err
    assert await container.repos.customers.get(customer.id) is not None

    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert await cli("erase", "--customer", ticket.reference) == 0
    assert rows(capsys.readouterr().out)["customers"] == "1"
    assert await container.repos.customers.get(customer.id) is None
    anonymous = await container.tickets.get(ticket.id)
    assert (anonymous.text, anonymous.category) == ("", ticket.category)


async def test_c3_2_6_erase_with_yes_does_not_ask_and_is_logged_by_cli(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, _ = await filed(container)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a question would read "no"
    assert await cli("erase", "--customer", customer.id, "--yes") == 0
    assert "undone" not in capsys.readouterr().err
    assert await container.repos.customers.get(customer.id) is None
    (request,) = [
        r
        for r in await container.repos.privacy_requests.recent()
        if r.kind is PrivacyRequestKind.ERASE
    ]
    assert (request.by, request.state, request.customer_id) == (
        "cli",
        PrivacyRequestState.DONE,
        None,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["privacy"],
        ["privacy", "export"],
        ["privacy", "erase", "--customer"],
        ["privacy", "retention", "--now"],
    ],
)
def test_usage_errors_exit_with_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2


async def test_export_of_a_customer_erased_meanwhile_says_so(
    container: Container, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The customer was erased (from their phone) between the export finding them and
    its request being logged: a traceback, not an answer."""
    customer, _ = await filed(container, "77")
    real_add = PrivacyRequestRepository.add

    async def add(self: PrivacyRequestRepository, request: Any) -> Any:
        await self.collection.database["customers"].delete_one({"_id": customer.id})
        return await real_add(self, request)

    monkeypatch.setattr(PrivacyRequestRepository, "add", add)
    out = tmp_path / "x.json"
    code = await asyncio.to_thread(
        main, ["privacy", "export", "--customer", customer.id, "--out", str(out)]
    )
    assert code == 1
    assert not out.exists()


async def test_erase_while_another_erasure_of_the_customer_runs_says_so(
    container: Container, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another run of the customer's erasure was in hand (the console, the retention job):
    the command waited, then ended in a traceback."""
    monkeypatch.setattr(privacy_service, "ERASURE_WAIT", timedelta(seconds=0.3))
    customer, _ = await filed(container, "41")
    running = await container.repos.locks.acquire(f"erasure:{customer.id}", timedelta(minutes=2))
    assert running is not None
    code = await cli("erase", "--customer", customer.id, "--yes")
    assert code == 1
    assert "being erased elsewhere" in capsys.readouterr().err
    assert await container.repos.customers.get(customer.id) is not None  # left to that run
