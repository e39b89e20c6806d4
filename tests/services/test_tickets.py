"""Ticket status changes, complexity, and what the customer is told (C3.1.3, C3.1.5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.app import Container
from bot.domain.models import (
    Channel,
    DeliveryState,
    StatusNotice,
    TicketStatus,
    TimelineEvent,
)
from bot.domain.tickets import InvalidTransition
from bot.storage import DatabaseUnavailable
from bot.storage.locks import Busy
from tests.services.chat import Chat
from tests.support import FixedClock, RecordingSender, StaffViews, eventually


async def filed(container: Container, user: str = "77", locale: str = "en") -> str:
    await Chat(container, user, locale=locale).happy_path()
    await container.delivery.drain()
    doc = await container.repos.tickets.collection.find_one({})
    assert doc is not None
    return str(doc["_id"])


async def test_c3_1_5_adopted_reaches_the_customer_with_the_message(
    container: Container, sender: RecordingSender
) -> None:
    ticket_id = await filed(container)
    await container.tickets.change_status(ticket_id, TicketStatus.IN_PROGRESS, actor="staff-1")
    ticket = await container.tickets.change_status(
        ticket_id, TicketStatus.ADOPTED, actor="staff-1", message="We will add tracking links."
    )
    await container.delivery.drain()
    assert ticket.status is TicketStatus.ADOPTED
    texts = sender.texts()
    assert texts[1] == f"Update on your feedback {ticket.reference}: in progress."
    assert "adopted" in texts[2]
    assert "We will add tracking links." in texts[2]
    statuses = [e.to_status for e in ticket.events if e.kind == "status"]
    assert statuses == [TicketStatus.ACKNOWLEDGED, TicketStatus.IN_PROGRESS, TicketStatus.ADOPTED]


async def test_c3_1_5_declined_in_chinese(container: Container, sender: RecordingSender) -> None:
    ticket_id = await filed(container, "78", "zh_CN")
    await container.tickets.change_status(
        ticket_id, TicketStatus.DECLINED, actor="staff-1", message="暂不考虑。"
    )
    await container.delivery.drain()
    assert "未采纳" in sender.texts()[-1]
    assert "暂不考虑。" in sender.texts()[-1]


async def test_c3_1_5_a_status_change_stored_without_its_message_is_announced_later_once(
    container: Container, sender: RecordingSender
) -> None:
    ticket_id = await filed(container)
    ticket = await container.tickets.change_status(ticket_id, TicketStatus.IN_PROGRESS, actor="a")
    assert ticket.status_notices == {}  # queued at once, the notice dropped
    # A process that dies (or loses the database) right after storing the next change:
    # the change and its notice are stored, the message is not queued.
    event = TimelineEvent(
        kind="status", actor="a", from_status=ticket.status, to_status=TicketStatus.RESOLVED
    )
    notice = StatusNotice(to=TicketStatus.RESOLVED, actor="a", message="Fixed in 2.4.")
    fields = {"status_notices.n1": notice.model_dump(mode="python")}
    assert await container.repos.tickets.transition(ticket_id, ticket.status, event, **fields)
    await container.delivery.drain()
    assert "resolved" not in sender.texts()[-1]

    # The dispatcher queues it when it starts (and every few minutes).
    loop = asyncio.create_task(container.delivery.run())

    async def announced() -> str | None:
        return next((t for t in sender.texts() if "Fixed in 2.4." in t), None)

    try:
        text = await eventually(announced, "the status message")
    finally:
        container.delivery.stop()
        await loop
    assert "resolved" in text
    assert (await container.tickets.get(ticket_id)).status_notices == {}
    # Died again after queuing, before dropping the notice: queued once all the same.
    await container.repos.tickets.collection.update_one({"_id": ticket_id}, {"$set": fields})
    assert await container.tickets.announce_left_behind() == 1
    assert await container.tickets.announce_left_behind() == 0
    await container.delivery.drain()
    assert sum("Fixed in 2.4." in t for t in sender.texts()) == 1


async def test_the_state_machine_refuses_impossible_moves(container: Container) -> None:
    ticket_id = await filed(container)
    with pytest.raises(InvalidTransition):
        await container.tickets.change_status(ticket_id, TicketStatus.RECEIVED, actor="s")
    await container.tickets.change_status(ticket_id, TicketStatus.RESOLVED, actor="s")
    await container.tickets.change_status(ticket_id, TicketStatus.CLOSED, actor="s")
    with pytest.raises(InvalidTransition):
        await container.tickets.change_status(ticket_id, TicketStatus.ADOPTED, actor="s")


async def test_a_stale_status_change_is_refused(container: Container) -> None:
    ticket_id = await filed(container)
    stale = await container.tickets.get(ticket_id)
    await container.tickets.change_status(ticket_id, TicketStatus.IN_PROGRESS, actor="a")
    event = TimelineEvent(
        kind="status", actor="b", from_status=stale.status, to_status=TicketStatus.DECLINED
    )
    assert not await container.repos.tickets.transition(ticket_id, stale.status, event)
    ticket = await container.tickets.get(ticket_id)
    assert ticket.status is TicketStatus.IN_PROGRESS


async def test_c3_1_3_first_response_and_complex_due_dates(
    container: Container, clock: FixedClock
) -> None:
    ticket_id = await filed(container)
    ticket = await container.tickets.get(ticket_id)
    assert ticket.first_response_at is None
    normal_due = ticket.response_due
    ticket = await container.tickets.set_complex(ticket_id, actor="supervisor")
    assert ticket.complex
    # Filed Mon 2 Mar 2026: 10 working days later is Mon 16 Mar, end of day in Shanghai.
    assert container.tickets.calendar.local_date(ticket.response_due).isoformat() == "2026-03-16"
    assert ticket.response_due > normal_due
    clock.advance(hours=5)
    await container.tickets.staff_reply(ticket_id, staff_id="agent-1", text="Looking into it.")
    ticket = await container.tickets.get(ticket_id)
    assert ticket.first_response_at == clock()


async def test_overdue_tickets_are_listed(container: Container, clock: FixedClock) -> None:
    ticket_id = await filed(container)
    ticket = await container.tickets.get(ticket_id)
    assert await container.repos.tickets.overdue(clock()) == []
    overdue = await container.repos.tickets.overdue(ticket.response_due + timedelta(seconds=1))
    assert [t.id for t in overdue] == [ticket_id]


async def test_a_customer_reply_wakes_a_waiting_ticket(
    container: Container, sender: RecordingSender
) -> None:
    ticket_id = await filed(container)
    await container.tickets.change_status(
        ticket_id, TicketStatus.WAITING_FOR_CUSTOMER, actor="s", message="Which order was it?"
    )
    await Chat(container, "77", locale="en").text("Order 1234, thank you.")
    ticket = await container.tickets.get(ticket_id)
    assert ticket.status is TicketStatus.IN_PROGRESS


async def test_staff_reply_is_delivered_and_tracked(
    container: Container, sender: RecordingSender
) -> None:
    ticket_id = await filed(container)
    message = await container.tickets.staff_reply(
        ticket_id, staff_id="agent-1", text="Sorry! <b>Refund</b> is on its way."
    )
    await container.delivery.drain()
    stored = await container.repos.messages.get(message.id)
    assert stored is not None
    assert stored.delivery.state is DeliveryState.SENT
    assert stored.channel is Channel.TELEGRAM
    assert "Sorry! <b>Refund</b> is on its way." in sender.texts()[-1]


async def test_a_status_notice_whose_queueing_failed_still_comes_before_later_replies(
    container: Container, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket_id = await filed(container)
    enqueue = container.delivery.enqueue
    failed: list[str] = []

    async def blip(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("kind") == "status" and not failed:
            failed.append("status")
            raise DatabaseUnavailable(TimeoutError("the database went away"))
        return await enqueue(*args, **kwargs)

    monkeypatch.setattr(container.delivery, "enqueue", blip)
    with pytest.raises(DatabaseUnavailable):
        await container.tickets.change_status(
            ticket_id, TicketStatus.WAITING_FOR_CUSTOMER, actor="agent", message="Which phone?"
        )
    changed = await container.tickets.get(ticket_id)
    assert changed.status is TicketStatus.WAITING_FOR_CUSTOMER  # changed, not announced
    await container.tickets.staff_reply(ticket_id, staff_id="agent", text="And which version?")
    await container.delivery.drain()
    assert await container.tickets.announce_left_behind() == 0  # queued by the reply
    texts = [t for t in sender.texts() if "Which phone?" in t or "which version" in t]
    assert len(texts) == 2
    assert "Which phone?" in texts[0]


async def test_the_same_console_reply_twice_is_sent_mirrored_and_counted_once(
    container: Container, sender: RecordingSender
) -> None:
    """A double click, or a POST retried, with the form's key: one message, one mirror in
    the staff views, one first response; also when both arrive at once."""
    ticket_id = await filed(container)
    views = StaffViews()
    container.tickets.listeners.append(views)
    key = "console:" + "a" * 32
    await asyncio.gather(
        *(
            container.tickets.staff_reply(
                ticket_id, staff_id="agent", text="On its way.", idempotency_key=key
            )
            for _ in range(2)
        )
    )
    await container.tickets.staff_reply(
        ticket_id, staff_id="agent", text="On its way.", idempotency_key=key
    )
    await container.delivery.drain()
    assert sum("On its way." in t for t in sender.texts()) == 1
    assert len(views.staff_replies) == 1
    ticket = await container.tickets.get(ticket_id)
    assert len([e for e in ticket.events if e.kind == "reply"]) == 1
    assert ticket.first_response_at is not None


async def test_a_reply_retried_after_its_first_response_failed_reaches_the_staff_views(
    container: Container, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket_id = await filed(container)
    views = StaffViews()
    container.tickets.listeners.append(views)
    first_response = container.repos.tickets.first_response
    calls: list[str] = []

    async def busy_once(*args: Any, **kwargs: Any) -> Any:
        calls.append("first response")
        if len(calls) == 1:
            raise Busy(f"ticket:{ticket_id}")  # the ticket's lock held elsewhere
        return await first_response(*args, **kwargs)

    monkeypatch.setattr(container.repos.tickets, "first_response", busy_once)
    key = "console:" + "b" * 32
    with pytest.raises(Busy):
        await container.tickets.staff_reply(
            ticket_id, staff_id="agent", text="On its way.", idempotency_key=key
        )
    await container.tickets.staff_reply(
        ticket_id, staff_id="agent", text="On its way.", idempotency_key=key
    )
    await container.delivery.drain()
    assert sum("On its way." in t for t in sender.texts()) == 1
    assert len(views.staff_replies) == 1
    assert (await container.tickets.get(ticket_id)).first_response_at is not None


async def test_a_first_reply_reaches_the_analytics_as_a_first_response(
    container: Container,
) -> None:
    ticket_id = await filed(container)
    await container.tickets.staff_reply(ticket_id, staff_id="agent", text="On its way.")
    ticket = await container.tickets.get(ticket_id)
    assert ticket.first_response_at is not None
    assert ticket.analytics_id is not None
    fact = await container.repos.analytics.get(ticket.analytics_id)
    assert fact is not None
    assert fact.first_response_day is not None  # the figures know it was answered


async def test_a_first_response_is_not_read_again_to_tell_the_analytics(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read failing right after the first response was recorded used to fail a reply
    already kept; its retry then told nobody, and the figures kept it unanswered."""
    ticket_id = await filed(container)
    ticket = await container.tickets.get(ticket_id)
    reads: list[str] = []
    get = container.tickets.get

    async def counting_get(*args: Any, **kwargs: Any) -> Any:
        reads.append("get")
        if len(reads) > 1:
            raise DatabaseUnavailable(TimeoutError("the database blinked"))
        return await get(*args, **kwargs)

    monkeypatch.setattr(container.tickets, "get", counting_get)
    await container.tickets.staff_reply(ticket_id, staff_id="agent", text="On its way.")
    assert ticket.analytics_id is not None
    fact = await container.repos.analytics.get(ticket.analytics_id)
    assert fact is not None
    assert fact.first_response_day is not None
