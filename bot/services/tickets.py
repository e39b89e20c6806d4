"""Tickets: filing, acknowledgement with working-day due dates, status changes, messages."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from bot.domain.calendar import WorkingCalendar
from bot.domain.flow import CATEGORY_LABELS
from bot.domain.models import (
    Attachment,
    Author,
    Category,
    Channel,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryState,
    Direction,
    Message,
    StatusNotice,
    Ticket,
    TicketStatus,
    TimelineEvent,
    new_id,
)
from bot.domain.text import N_, NP_, Param, Text, Verbatim
from bot.domain.tickets import (
    FIRST_RESPONSE,
    OPEN,
    STATUS_LABELS,
    check_transition,
)
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.delivery import Clock, DeliveryService
from bot.storage import CustomerErased, Repositories
from bot.storage.database import Inserted
from bot.storage.tickets import LOCK_WAIT, TicketQuery

log = logging.getLogger(__name__)

ACK = NP_(
    "Thank you, we have received your feedback. Your reference number is {reference}. "
    "We will give you our first response by {due} ({days} working day).",
    "Thank you, we have received your feedback. Your reference number is {reference}. "
    "We will give you our first response by {due} ({days} working days).",
    by="days",
)
# What the customer can do next depends on where they are.
ACK_NEXT = {
    Channel.TELEGRAM: N_("You can check its status at any time with /status."),
    Channel.TERMINAL: N_("You can check its status at any time with /status."),
    Channel.WIDGET: N_(
        "Our replies appear in this chat, also when you come back later. "
        "Send /status to see how your feedback is going."
    ),
}
STATUS_CHANGED = N_("Update on your feedback {reference}: {status}.")
STATUS_CHANGED_WITH_MESSAGE = N_("Update on your feedback {reference}: {status}.\n\n{message}")
STAFF_REPLY = N_("Reply from our team about {reference}:\n\n{message}")
STATUS_LINE = N_("{reference} · {category} · {status} · first response due {due}")
NO_TICKETS = N_("You have not sent us any feedback yet. Send /start to begin.")
STATUS_HEADER = N_("Your feedback:")


class TicketListener(Protocol):
    """Another view of the tickets (e.g. a staff forum topic per ticket) that follows changes.

    A listener's failure is logged and never undoes or blocks the change itself.
    """

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None: ...

    async def customer_message(self, ticket: Ticket, message: Message) -> None: ...

    async def staff_message(self, ticket: Ticket, message: Message) -> None: ...


class TicketChangeListener(TicketListener, Protocol):
    """A listener that also wants status, assignment, complexity and note changes.

    Optional: `_notify` skips listeners without the method, so the Telegram staff
    topics (which show none of these) need not implement it.
    """

    async def ticket_changed(self, ticket: Ticket, change: str) -> None: ...


class TicketNotFound(LookupError):
    pass


class StatusConflict(RuntimeError):
    """The ticket's status changed while this change was being made; reload and retry."""


@dataclass(frozen=True)
class Deadlines:
    first_response_days: int
    complex_days: int


@dataclass(frozen=True)
class QueueFilters:
    """The staff queue's filters, as staff choose them (strings resolved here, not in a page)."""

    statuses: tuple[TicketStatus, ...] | None = tuple(OPEN)  # None: every status
    category: Category | None = None
    channel: Channel | None = None
    assignee: str | None = None  # a staff id
    unassigned: bool = False
    overdue: bool = False
    due_today: bool = False
    search: str | None = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class QueuePage:
    tickets: list[Ticket]
    total: int
    page: int
    pages: int


def _came_while_waiting(ticket: Ticket, message: Message) -> bool:
    """Whether `message` came after the ticket last began to wait for the customer."""
    waits = [
        e.at
        for e in ticket.events
        if e.kind == "status" and e.to_status is TicketStatus.WAITING_FOR_CUSTOMER
    ]
    return bool(waits) and message.created_at >= max(waits)


class TicketService:
    def __init__(
        self,
        repos: Repositories,
        delivery: DeliveryService,
        calendar: WorkingCalendar,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        *,
        reference_prefix: str,
        deadlines: Deadlines,
    ) -> None:
        self.repos = repos
        self.delivery = delivery
        self.calendar = calendar
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.prefix = reference_prefix
        self.deadlines = deadlines
        self.listeners: list[TicketListener] = []
        delivery.restorers.append(self.announce_left_behind)

    async def _notify(self, event: str, *args: object) -> None:
        for listener in self.listeners:
            handler = getattr(listener, event, None)
            if handler is None:  # an optional event this listener does not follow
                continue
            try:
                await handler(*args)
            except Exception:  # another view failing must not fail the ticket
                log.exception("ticket listener failed", extra={"event": event})

    async def changed(self, ticket: Ticket, change: str) -> None:
        """Tell the listeners of a change made outside this service (an erasure, a
        correction, a consent withdrawn), so the console and analytics follow it."""
        await self._notify("ticket_changed", ticket, change)

    def _format_due(self, ticket: Ticket, locale: str) -> str:
        return self.i18n.format_date(locale, self.calendar.local_date(ticket.response_due))

    async def file(
        self, customer: Customer, channel: Channel, answers: Mapping[str, Any], *, flow_id: str
    ) -> Ticket:
        """File the ticket, store the acknowledgement, then mark it acknowledged (C3.1.3).

        Idempotent per `flow_id`: a retried submit returns the ticket already filed.
        """
        now = self.clock()
        expanded = (await self.repos.consents.current(customer.id)).get(ConsentPurpose.EXPANDED_USE)
        ticket = Ticket(
            flow_id=flow_id,
            customer_id=customer.id,
            channel=channel,
            locale=customer.locale,
            category=Category(answers["category"]),
            rating=int(answers["rating"]),
            text=answers["text"],
            text_own_work=bool(answers.get("text_own_work")),
            attachments=[Attachment.model_validate(a) for a in answers.get("attachments", [])],
            expanded_use=expanded is not None and expanded.granted,
            created_at=now,
            updated_at=now,
            response_due=self.calendar.due(now, self.deadlines.first_response_days),
            events=[TimelineEvent(at=now, kind="created", actor="customer")],
        )
        if not await self.repos.customers.kept(customer.id):
            raise CustomerErased(customer.id)  # their erasure has begun: nothing is filed
        year = self.calendar.local_date(now).year
        inserted = await self.repos.tickets.add(ticket, prefix=self.prefix, year=year)
        ticket = inserted.item
        if not inserted.created and ticket.status is not TicketStatus.RECEIVED:
            return ticket
        contact = answers.get("contact") or {}
        await self.repos.customers.update_fields(customer.id, **contact, last_ticket_id=ticket.id)
        try:
            await self._acknowledge(customer, ticket)
        except CustomerErased:
            # Their erasure began meanwhile (staff log a call while a colleague erases
            # the caller; a form sent as the erasure runs). Nobody was told of this
            # ticket: it goes (a blank one would wait in the staff queue); one filed
            # before, by a first try, goes as their others do.
            if inserted.created:
                await self.repos.tickets.delete(ticket.id)
                if ticket.analytics_id is not None:
                    # An erasure that ran meanwhile may have anonymized it, and so counted
                    # it: under the analytics' own lock, which re-reads the ticket first.
                    async with self.repos.locks.hold(f"analytics:{ticket.id}", wait=LOCK_WAIT):
                        await self.repos.analytics.delete(ticket.analytics_id)
            else:
                await self.repos.tickets.anonymize(ticket.id, at=self.clock(), forget_customer=True)
            raise
        ticket = await self.get(ticket.id)
        if inserted.created:
            self.metrics.tickets_filed.labels(channel.value, ticket.category.value).inc()
            log.info("ticket filed", extra={"ticket_id": ticket.id, "channel": channel.value})
            await self._notify("ticket_filed", ticket, customer)
        return ticket

    async def _acknowledge(self, customer: Customer, ticket: Ticket) -> None:
        params: dict[str, Param] = {
            "reference": ticket.reference,
            "due": self._format_due(ticket, customer.locale),
            "days": self.deadlines.first_response_days,
        }
        ack = Text(ACK, params)
        follow_up = ACK_NEXT.get(customer.channel)
        if follow_up is not None:  # sentences are joined as each language joins them
            ack = Text(
                N_("{acknowledgement} {next_step}"),
                {"acknowledgement": ack, "next_step": Text(follow_up)},
            )
        text = self.i18n.render(customer.locale, ack)
        await self.delivery.enqueue(
            customer, text, kind="ack", ticket_id=ticket.id, idempotency_key=f"ack:{ticket.id}"
        )
        event = TimelineEvent(
            at=self.clock(),
            kind="status",
            actor="system",
            from_status=TicketStatus.RECEIVED,
            to_status=TicketStatus.ACKNOWLEDGED,
        )
        await self.repos.tickets.transition(ticket.id, TicketStatus.RECEIVED, event)

    async def get(self, ticket_id: str) -> Ticket:
        ticket = await self.repos.tickets.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    async def _customer(self, ticket: Ticket) -> Customer | None:
        return await self.repos.customers.get(ticket.customer_id)

    async def change_status(
        self, ticket_id: str, target: TicketStatus, *, actor: str, message: str | None = None
    ) -> Ticket:
        """Move a ticket through the state machine and tell the customer on their channel."""
        ticket = await self.get(ticket_id)
        check_transition(ticket.status, target)
        now = self.clock()
        fields: dict[str, object] = {}
        if target in FIRST_RESPONSE and ticket.first_response_at is None:
            fields["first_response_at"] = now
        event = TimelineEvent(
            at=now,
            kind="status",
            actor=actor,
            from_status=ticket.status,
            to_status=target,
            detail=message,
        )
        # The customer's message goes in with the change, as a notice, and is queued from
        # it: a process that dies (or loses the database) in between leaves the notice,
        # and the dispatcher queues it later. Without it the status changed unannounced.
        notice_id, notice = new_id(), StatusNotice(to=target, actor=actor, message=message)
        fields[f"status_notices.{notice_id}"] = notice.model_dump(mode="python")
        if not await self.repos.tickets.transition(ticket.id, ticket.status, event, **fields):
            raise StatusConflict(ticket.id)
        await self._announce_pending(ticket)  # an earlier change's notice goes first
        await self._announce(ticket, notice_id, notice)
        changed = await self.get(ticket.id)
        await self._notify("ticket_changed", changed, "status")
        return changed

    async def _announce_pending(self, ticket: Ticket) -> None:
        """Queue the notices of earlier status changes still waiting (their queueing
        failed), before anything newer for the ticket: the customer reads them in order."""
        for notice_id, notice in ticket.status_notices.items():
            await self._announce(ticket, notice_id, notice)

    async def _announce(self, ticket: Ticket, notice_id: str, notice: StatusNotice) -> None:
        """Queue the customer's message about a status change (once: its key names the
        notice), then drop the notice."""
        customer = await self._customer(ticket)
        if customer is not None:
            params: dict[str, Param] = {
                "reference": ticket.reference,
                "status": Text(STATUS_LABELS[notice.to]),
            }
            template = STATUS_CHANGED
            if notice.message:
                template = STATUS_CHANGED_WITH_MESSAGE
                params["message"] = Verbatim(notice.message)
            staff = notice.actor != "system"
            with contextlib.suppress(CustomerErased):  # meanwhile: nobody to tell
                await self.delivery.enqueue(
                    customer,
                    self.i18n.render(customer.locale, Text(template, params)),
                    kind="status",
                    ticket_id=ticket.id,
                    author=Author.STAFF if staff else Author.BOT,
                    staff_id=notice.actor if staff else None,
                    idempotency_key=f"status:{ticket.id}:{notice_id}",
                )
        await self.repos.tickets.drop_status_notice(ticket.id, notice_id)

    async def announce_left_behind(self) -> int:
        """Queue the messages of status changes stored without them (a process died, or
        the database went away, between the two); how many."""
        count = 0
        for ticket in await self.repos.tickets.with_status_notices():
            for notice_id, notice in ticket.status_notices.items():
                await self._announce(ticket, notice_id, notice)
                count += 1
        return count

    async def set_complex(self, ticket_id: str, *, actor: str, complex_: bool = True) -> Ticket:
        """Complex tickets get XX working days instead of X, counted from filing (C3.1.3)."""
        ticket = await self.get(ticket_id)
        days = self.deadlines.complex_days if complex_ else self.deadlines.first_response_days
        due = self.calendar.due(ticket.created_at, days)
        event = TimelineEvent(
            at=self.clock(), kind="complex", actor=actor, detail="on" if complex_ else "off"
        )
        await self.repos.tickets.add_event(ticket.id, event, complex=complex_, response_due=due)
        changed = await self.get(ticket.id)
        await self._notify("ticket_changed", changed, "complex")
        return changed

    async def assign(
        self, ticket_id: str, *, actor: str, assignee: str | None, expected: str | None
    ) -> Ticket:
        """Give the ticket to a staff member (None: to nobody), on the timeline.

        `expected` is who had it when the staff member decided (StatusConflict if that
        changed since).
        """
        ticket = await self.get(ticket_id)
        event = TimelineEvent(at=self.clock(), kind="assigned", actor=actor, detail=assignee)
        if not await self.repos.tickets.assign(ticket.id, assignee, event, expected=expected):
            raise StatusConflict(ticket.id)
        changed = await self.get(ticket.id)
        await self._notify("ticket_changed", changed, "assigned")
        return changed

    async def staff_reply(
        self, ticket_id: str, *, staff_id: str, text: str, idempotency_key: str | None = None
    ) -> Message:
        ticket = await self.get(ticket_id)
        customer = await self._customer(ticket)
        if customer is None:
            raise TicketNotFound(ticket_id)
        await self._announce_pending(ticket)
        rendered = self.i18n.render(
            customer.locale,
            Text(STAFF_REPLY, {"reference": ticket.reference, "message": Verbatim(text)}),
        )
        try:
            stored = await self.delivery.enqueue_once(
                customer,
                rendered,
                kind="reply",
                ticket_id=ticket.id,
                author=Author.STAFF,
                staff_id=staff_id,
                idempotency_key=idempotency_key,
            )
        except CustomerErased:  # meanwhile: as for a ticket whose customer was erased
            raise TicketNotFound(ticket_id) from None
        # The staff views first, once (not for the same reply again: a double click, a
        # retried POST): what fails after must not leave a reply they never see.
        if stored.created:
            await self._notify("staff_message", ticket, stored.item)
        if ticket.first_response_at is None:  # (a retry too: the first may have died here)
            event = TimelineEvent(at=self.clock(), kind="reply", actor=staff_id)
            if await self.repos.tickets.first_response(ticket.id, event):
                # The views that keep figures (analytics: answered on time) follow it; no
                # read again, which could fail a reply already kept (they read what they need).
                answered = ticket.model_copy(update={"first_response_at": event.at})
                await self._notify("ticket_changed", answered, "first_response")
        return stored.item

    async def add_note(self, ticket_id: str, *, staff_id: str, text: str) -> Ticket:
        """An internal note on the timeline: staff see it, the customer never does."""
        event = TimelineEvent(at=self.clock(), kind="note", actor=staff_id, detail=text)
        await self.repos.tickets.add_event(ticket_id, event)
        changed = await self.get(ticket_id)
        await self._notify("ticket_changed", changed, "note")
        return changed

    async def log_on_behalf(
        self,
        *,
        staff_id: str,
        channel: Channel,
        locale: str,
        contact: Mapping[str, str],
        answers: Mapping[str, Any],
        flow_id: str,
        external_id: str,
    ) -> Ticket:
        """File feedback a staff member took by phone or e-mail (C2.2 (2), (3)).

        Nobody was asked for consent in a chat, so no consent is recorded: the ticket
        says who logged it instead, and it is used only to handle the feedback (no
        expanded use, C3.1.7). Idempotent per `flow_id`, like every filing.
        """
        customer = await self.repos.customers.get_or_create(channel, external_id, locale)
        ticket = await self.file(
            customer, channel, {**answers, "contact": dict(contact)}, flow_id=flow_id
        )
        if not any(e.kind == "logged" for e in ticket.events):
            event = TimelineEvent(
                at=self.clock(), kind="logged", actor=staff_id, detail=channel.value
            )
            await self.repos.tickets.add_event(ticket.id, event)
            ticket = await self.get(ticket.id)
        return ticket

    async def queue(self, filters: QueueFilters) -> QueuePage:
        """The staff queue: matching tickets, soonest first-response deadline first (C3.1.3)."""
        now = self.clock()
        due_before: datetime | None = None
        due_from: datetime | None = None
        unanswered = filters.overdue or filters.due_today
        statuses = filters.statuses
        if unanswered:  # a deadline binds only open tickets still waiting for a response
            statuses = tuple(s for s in (statuses or tuple(OPEN)) if s in OPEN)
        if filters.due_today:  # due dates are the end of a working day, company time
            end_of_today = datetime.combine(
                self.calendar.local_date(now), time(23, 59, 59), tzinfo=self.calendar.tz
            ) + timedelta(seconds=1)
            due_before = end_of_today
            due_from = None if filters.overdue else now  # both: overdue or due today
        elif filters.overdue:
            due_before = now
        per_page = max(1, filters.per_page)
        page = max(1, filters.page)
        tickets, total = await self.repos.tickets.search(
            TicketQuery(
                statuses=statuses,
                category=filters.category,
                channel=filters.channel,
                assignee=filters.assignee,
                unassigned=filters.unassigned,
                unanswered=unanswered,
                due_before=due_before,
                due_from=due_from,
                search=filters.search,
                skip=(page - 1) * per_page,
                limit=per_page,
            )
        )
        pages = max(1, -(-total // per_page))
        return QueuePage(tickets=tickets, total=total, page=page, pages=pages)

    async def by_telegram_topic(self, chat_id: int, topic_id: int) -> Ticket | None:
        return await self.repos.tickets.by_telegram_topic(chat_id, topic_id)

    async def add_customer_message(
        self,
        customer: Customer,
        ticket: Ticket,
        text: str,
        *,
        attachments: list[Attachment] | None = None,
        idempotency_key: str | None = None,
    ) -> Inserted[Message]:
        """Free text after filing goes onto the open ticket; a waiting ticket wakes up.
        Stored once per idempotency key (created False: it was stored before)."""
        message = Message(
            customer_id=customer.id,
            channel=customer.channel,
            ticket_id=ticket.id,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text=text,
            attachments=attachments or [],
            created_at=self.clock(),
            delivery=Delivery(state=DeliveryState.NOT_APPLICABLE),
            **({"idempotency_key": idempotency_key} if idempotency_key else {}),
        )
        stored = await self.repos.messages.append(message)
        await self.repos.fence(customer.id)  # an erasure began meanwhile: taken back
        # The ticket wakes up, and staff are told, once the words are kept. A resend of
        # words kept before (their answer failed: the ticket's lock was busy, the
        # database went away, the process died) does what the first try did not: a
        # ticket still waiting since before the words came is woken now, and staff told.
        woke = False
        if ticket.status is TicketStatus.WAITING_FOR_CUSTOMER and (
            stored.created or _came_while_waiting(ticket, stored.item)
        ):
            event = TimelineEvent(
                at=self.clock(),
                kind="status",
                actor="customer",
                from_status=ticket.status,
                to_status=TicketStatus.IN_PROGRESS,
            )
            woke = await self.repos.tickets.transition(ticket.id, ticket.status, event)
        if stored.created or woke:
            await self._notify("customer_message", ticket, stored.item)
        return stored

    async def status_report(self, customer: Customer) -> Text:
        """What the customer sees when they ask for the status of their tickets."""
        tickets = await self.repos.tickets.for_customer(customer.id)
        if not tickets:
            return Text(NO_TICKETS)
        lines = [
            self.i18n.render(
                customer.locale,
                Text(
                    STATUS_LINE,
                    {
                        "reference": t.reference,
                        "category": Text(CATEGORY_LABELS[t.category]),
                        "status": Text(STATUS_LABELS[t.status]),
                        "due": self._format_due(t, customer.locale),
                    },
                ),
            )
            for t in tickets
        ]
        header = self.i18n.render(customer.locale, Text(STATUS_HEADER))
        return Text("{header}\n{lines}", {"header": header, "lines": "\n".join(lines)})
