"""Anonymized analytics (C3.1.1, C3.2.4): what the statistics may know about a ticket.

A ticket is projected onto one `AnalyticsFact`: its key is the ticket's random
`analytics_id`, never the ticket's id, reference or customer; every date is a day in
the company's time zone (no times); nothing of the customer's identity or contact
comes along. The customer's words come along only with the expanded-use consent
(C3.1.7), only while the ticket is not anonymized, and only after `scrub` has taken
contact details and identifiers out of them.

Pure functions: no I/O, so they are tested without a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from bot.domain.calendar import WorkingCalendar
from bot.domain.models import Category, Channel, Model, Ticket, TicketStatus
from bot.domain.tickets import OPEN

# Statuses that end the handling of a ticket (for now): the day it got there is kept.
FINISHED = frozenset(
    {TicketStatus.RESOLVED, TicketStatus.ADOPTED, TicketStatus.DECLINED, TicketStatus.CLOSED}
)
# The longest scrubbed text kept: a ticket's text is bounded already; this bounds a store
# that outlives the setting.
MAX_TEXT = 4000


class Suggestion(StrEnum):
    """The C3.1.5 decision on a suggestion, as the statistics count it."""

    ADOPTED = "adopted"
    DECLINED = "declined"


class AnalyticsFact(Model):
    """One ticket as the statistics see it: no ids, no times, no contact (C3.2.4)."""

    id: str = Field(alias="_id")  # the ticket's analytics_id: random, leads nowhere
    day: date  # filed, in the company's time zone
    channel: Channel
    category: Category
    locale: str
    rating: int = Field(ge=1, le=5)
    status: TicketStatus
    complex: bool = False
    open: bool
    response_due_day: date  # the X (or XX) working-days deadline, as a day
    first_response_day: date | None = None
    # True: first response by the deadline; False: after it, or still none once it has
    # passed; None: none yet and not due yet, or finished without one (C3.1.3).
    on_time: bool | None = None
    closed_day: date | None = None  # the day it reached its finished status
    suggestion: Suggestion | None = None
    text: str | None = None  # scrubbed, and only with expanded-use consent (C3.1.7)


# ---------------------------------------------------------------- the scrub

# A URL ends at white space, quotes, angle brackets or CJK punctuation.
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'\uff0c\u3002\uff1b\u3001\uff09]+", re.IGNORECASE
)
_ALNUM = r"A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
_EMAIL = re.compile(
    rf"[{_ALNUM}._%+\-]{{1,64}}\s?[@\uff20]\s?[{_ALNUM}\-]{{1,63}}"
    rf"(?:[.\uff0e][{_ALNUM}\-]{{1,63}})+"
)
# 18-character resident identity card number: 17 digits and a digit or X.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}\d{7}[\dXx](?![0-9A-Za-z])")
# Card and account numbers: twelve digits or more, before the phone rules see their parts.
_LONG_DIGITS = re.compile(r"\d(?:[\s\-]?\d){11,}")
# International numbers: a plus, then digits with the usual separators.
_INTERNATIONAL = re.compile(r"[+\uff0b]\s?\d(?:[\s().\-]{0,2}\d){5,16}")
# Mainland mobiles, optionally with +86/0086, written in blocks or not.
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[\s\-]?)?1[3-9]\d(?:[\s\-]?\d){8}(?!\d)")
# Landlines with an area code: 010-12345678, (021) 1234 5678, 0755 8765432.
_LANDLINE = re.compile(r"(?<!\d)\(?0\d{2,3}\)?[\s\-]?\d{3,4}[\s\-]?\d{4}(?!\d)")
# Anything else that is a long run of digits (order, card, account or QQ numbers),
# separators allowed: seven digits or more.
_DIGITS = re.compile(r"\d(?:[\s\-.]?\d){6,}")
_HANDLE = re.compile(r"[@\uff20][\w.\-]{1,64}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Full-width forms of @, + and . (and of letters and digits) count as their ASCII twins.
# Placeholders stay in the text so that analysts see that something was there.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_URL, "[url]"),
    (_EMAIL, "[email]"),
    (_ID_CARD, "[id]"),
    (_INTERNATIONAL, "[phone]"),
    (_LONG_DIGITS, "[number]"),
    (_MOBILE, "[phone]"),
    (_LANDLINE, "[phone]"),
    (_DIGITS, "[number]"),
    (_HANDLE, "[handle]"),
)


def scrub(text: str) -> str:
    """The text with e-mail addresses, phone numbers, identity card numbers, URLs,
    @handles and long digit runs replaced by placeholders such as "[email]".

    The text stays text: markup is not interpreted (a `<script>` tag is kept as the
    characters it is), broken surrogates become U+FFFD instead of failing the
    storage's UTF-8 encoding, and control characters are dropped.
    """
    cleaned = _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))[:MAX_TEXT]
    for pattern, placeholder in _RULES:
        cleaned = pattern.sub(placeholder, cleaned)
    return cleaned.strip()


# ---------------------------------------------------------------- the projection


def _suggestion(ticket: Ticket) -> Suggestion | None:
    """The standing decision: the last adopted/declined, unless the ticket went back to
    work after it (a reopened decision is no decision). Closing keeps the decision."""
    decision: Suggestion | None = None
    seen = False
    for event in ticket.events:
        if event.kind != "status" or event.to_status is None:
            continue
        seen = True
        if event.to_status in (TicketStatus.ADOPTED, TicketStatus.DECLINED):
            decision = Suggestion(event.to_status.value)
        elif event.to_status is not TicketStatus.CLOSED:
            decision = None
    if not seen and ticket.status in (TicketStatus.ADOPTED, TicketStatus.DECLINED):
        decision = Suggestion(ticket.status.value)  # a timeline without status events
    return decision


def _finished_at(ticket: Ticket) -> datetime | None:
    if ticket.status not in FINISHED:
        return None
    for event in reversed(ticket.events):
        if event.kind == "status" and event.to_status is ticket.status:
            return event.at
    return ticket.updated_at


def _on_time(ticket: Ticket, now: datetime) -> bool | None:
    if ticket.first_response_at is not None:
        return ticket.first_response_at <= ticket.response_due
    if ticket.status not in OPEN:
        return None  # finished without one: nothing left to keep (as bot.domain.tickets.sla_of)
    return False if now > ticket.response_due else None


def _latest_words(ticket: Ticket) -> str:
    """The customer's words as they last put them: a correction (C3.2.6) replaces the
    original here, where nobody needs to see what was corrected."""
    return ticket.corrections[-1].text if ticket.corrections else ticket.text


def may_keep_text(ticket: Ticket, *, consent_withdrawn: bool = False) -> bool:
    """Only with the expanded-use consent in force (C3.1.7), never once anonymized."""
    return (
        ticket.expanded_use
        and not consent_withdrawn
        and ticket.anonymized_at is None
        and bool(ticket.text)
    )


def project(
    ticket: Ticket,
    calendar: WorkingCalendar,
    now: datetime,
    *,
    consent_withdrawn: bool = False,
) -> AnalyticsFact | None:
    """The ticket's fact, or None when it has no analytics key."""
    if ticket.analytics_id is None:
        return None
    day = calendar.local_date
    finished = _finished_at(ticket)
    return AnalyticsFact(
        id=ticket.analytics_id,
        day=day(ticket.created_at),
        channel=ticket.channel,
        category=ticket.category,
        locale=ticket.locale,
        rating=ticket.rating,
        status=ticket.status,
        complex=ticket.complex,
        open=ticket.status in OPEN,
        response_due_day=day(ticket.response_due),
        first_response_day=day(ticket.first_response_at) if ticket.first_response_at else None,
        on_time=_on_time(ticket, now),
        closed_day=day(finished) if finished is not None else None,
        suggestion=_suggestion(ticket),
        text=scrub(_latest_words(ticket))
        if may_keep_text(ticket, consent_withdrawn=consent_withdrawn)
        else None,
    )


# ---------------------------------------------------------------- backlog by age


@dataclass(frozen=True)
class AgeBucket:
    """Open tickets whose age in days (today minus the filing day) is in [low, high]."""

    key: str
    low: int
    high: int | None  # None: no upper bound

    def holds(self, age: int) -> bool:
        return age >= self.low and (self.high is None or age <= self.high)


BACKLOG_BUCKETS: tuple[AgeBucket, ...] = (
    AgeBucket("0-2", 0, 2),
    AgeBucket("3-5", 3, 5),
    AgeBucket("6-10", 6, 10),
    AgeBucket("11-30", 11, 30),
    AgeBucket("31+", 31, None),
)


def bucket_of(age: int) -> AgeBucket:
    for bucket in BACKLOG_BUCKETS:
        if bucket.holds(age):
            return bucket
    return BACKLOG_BUCKETS[0]  # filed "tomorrow" (a clock set back): the youngest


def percent(part: int, whole: int) -> float | None:
    """part / whole in percent; None when there is nothing to divide by."""
    return None if whole == 0 else 100.0 * part / whole
