"""Ticket rules: the status state machine and reference numbers (C3.1.3, C3.1.5)."""

from __future__ import annotations

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
