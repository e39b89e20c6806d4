"""Ticket rules: the status state machine and reference numbers (C3.1.3, C3.1.5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from bot.domain.calendar import WorkingCalendar
from bot.domain.models import Model, Ticket, new_id, utcnow
from bot.domain.models import TicketStatus as S
from bot.domain.text import N_

TRANSITIONS: dict[S, frozenset[S]] = {
    S.RECEIVED: frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS, S.CLOSED}),
    S.ACKNOWLEDGED: frozenset(
        {S.IN_PROGRESS, S.WAITING_FOR_CUSTOMER, S.RESOLVED, S.ADOPTED, S.DECLINED, S.CLOSED}
    ),
    S.IN_PROGRESS: frozenset({S.WAITING_FOR_CUSTOMER, S.RESOLVED, S.ADOPTED, S.DECLINED}),
    S.WAITING_FOR_CUSTOMER: frozenset({S.IN_PROGRESS, S.RESOLVED, S.ADOPTED, S.DECLINED}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.ADOPTED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.DECLINED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset({S.IN_PROGRESS}),  # reopened when the customer or staff need to
}

OPEN = frozenset({S.RECEIVED, S.ACKNOWLEDGED, S.IN_PROGRESS, S.WAITING_FOR_CUSTOMER})

# A staff decision or progress that counts as the "initial handling opinion" (C3.1.3).
FIRST_RESPONSE = frozenset(
    {S.IN_PROGRESS, S.WAITING_FOR_CUSTOMER, S.RESOLVED, S.ADOPTED, S.DECLINED}
)

# What the customer is told when a ticket reaches a status (none for "received":
# the acknowledgement already says it).
STATUS_LABELS: dict[S, str] = {
    S.RECEIVED: N_("received"),
    S.ACKNOWLEDGED: N_("acknowledged"),
    S.IN_PROGRESS: N_("in progress"),
    S.WAITING_FOR_CUSTOMER: N_("waiting for your reply"),
    S.RESOLVED: N_("resolved"),
    S.ADOPTED: N_("adopted: your suggestion will be put into practice"),
    S.DECLINED: N_("not adopted"),
    S.CLOSED: N_("closed"),
}


class InvalidTransition(ValueError):
    def __init__(self, current: S, target: S) -> None:
        super().__init__(f"a ticket cannot go from {current} to {target}")
        self.current = current
        self.target = target


def check_transition(current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)


def format_reference(prefix: str, year: int, number: int) -> str:
    """FB-2026-000123: prefix, the year it was filed (company time), a running number."""
    return f"{prefix}-{year}-{number:06d}"


# The statuses staff may move a ticket to from the console (C3.1.5); "received" and
# "acknowledged" are the system's own.
STAFF_TARGETS: tuple[S, ...] = (
    S.IN_PROGRESS,
    S.WAITING_FOR_CUSTOMER,
    S.RESOLVED,
    S.ADOPTED,
    S.DECLINED,
    S.CLOSED,
)


class SlaKind(StrEnum):
    MET = "met"  # the first handling opinion was given (C3.1.3)
    OVERDUE = "overdue"
    DUE_TODAY = "due_today"
    UPCOMING = "upcoming"
    CLOSED = "closed"  # finished without a first response: nothing left to keep


@dataclass(frozen=True)
class Sla:
    kind: SlaKind
    working_days: int = 0  # for UPCOMING: working days left until the due date


def sla_of(ticket: Ticket, now: datetime, calendar: WorkingCalendar) -> Sla:
    """Where a ticket stands against its first-response deadline (C3.1.3).

    "Due today" and "in N working days" are counted in the company's time zone and
    working days, the same way the due date itself was counted.
    """
    if ticket.first_response_at is not None:
        return Sla(SlaKind.MET)
    if ticket.status not in OPEN:
        return Sla(SlaKind.CLOSED)
    if now > ticket.response_due:
        return Sla(SlaKind.OVERDUE)
    today = calendar.local_date(now)
    due_day = calendar.local_date(ticket.response_due)
    if due_day <= today:
        return Sla(SlaKind.DUE_TODAY)
    return Sla(SlaKind.UPCOMING, calendar.working_days_between(today, due_day))


def assignee_of(ticket: Ticket) -> str | None:
    """The staff id the ticket is assigned to: the last "assigned" event decides.

    The repository also keeps it in the document's `assignee` field so the queue can
    filter on it; the timeline stays the record of who assigned whom, and when.
    """
    for event in reversed(ticket.events):
        if event.kind == "assigned":
            return event.detail or None
    return None


class CannedReply(Model):
    """A ready answer staff can start a reply from, in one language (managed by supervisors)."""

    id: str = Field(default_factory=new_id, alias="_id")
    locale: str
    title: str
    text: str
    created_by: str  # staff id
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
