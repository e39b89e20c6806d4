"""Customers' requests about their data, on the staff side (C3.2.6; issue 7).

- /console/privacy: open requests, the soonest due first, with their due dates
  (BOT_PRIVACY_REQUEST_DAYS), and the latest answered ones; a form to log a request that
  arrived by phone or e-mail.
- /console/privacy/{id}: one request, how to answer it (export download, erasure after a
  typed confirmation, the correction of the contact details or of a ticket's words, the
  withdrawal of a consent, or a note of what was done) and its audit trail.
- The ticket page shows the customer's open requests and starts an export or an erasure
  through the same request flow (`ticket_panel`, `start`).

Supervisors and admins only: an export or an erasure is the weightiest thing staff can do
with someone's data. Every view and change is in the audit log under the request's id
(never the customer's: once the customer is erased, the trail must not lead back to them).
The work itself is PrivacyService's; handlers read the form, call it and render.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from bot.console import strings as s
from bot.console.auth import audit, require
from bot.console.pages import BASE, INTAKE_CHANNELS, ConsolePages, View, field, ticket_url
from bot.domain.flow import Invalid, clean_text, parse_contact
from bot.domain.models import (
    Channel,
    Customer,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    StaffRole,
)
from bot.domain.text import Text
from bot.services.privacy import NotTheirs
from bot.services.tickets import TicketNotFound
from bot.storage import CustomerErased, DatabaseUnavailable
from bot.storage.locks import Busy, Lock

if TYPE_CHECKING:
    from bot.app import Container

log = logging.getLogger(__name__)

PRIVACY = f"{BASE}/privacy"
MAX_TERM = 200
MAX_NOTE = 1000
OPEN_SHOWN = 200
ANSWERED_SHOWN = 50
TRAIL_SHOWN = 100
ANSWER_WAIT = timedelta(seconds=10)  # for another staff member's answer to the same request
# A change made for the customer on a request's page: None when made, else the page to show.
Change = Callable[[PrivacyRequest, Customer], Awaitable[web.Response | None]]
CONFIRM_WORD = "ERASE"  # typed when the customer has no ticket whose reference could be typed
TARGET = "privacy_request"
UNSHOWN = frozenset({"note", "closed_by", "started_at"})  # shown otherwise, or internal
# Requests answered by the export file; the rest by a note of what was done.
EXPORTED = (PrivacyRequestKind.EXPORT, PrivacyRequestKind.ACCESS)
NOTED = (PrivacyRequestKind.ACCESS, PrivacyRequestKind.CORRECT, PrivacyRequestKind.WITHDRAW)


def request_url(request_id: str, **query: str) -> str:
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return f"{PRIVACY}/{request_id}{suffix}"


def deadline(view: View, request: PrivacyRequest, now: datetime) -> tuple[str, str]:
    """The due-date badge: its CSS state and its label (calendar days, company time)."""
    calendar = view.pages.container.tickets.calendar
    if request.state is PrivacyRequestState.DONE:
        late = request.done_at is not None and request.done_at > request.due_at
        return ("late" if late else "met"), view.t(s.PRIVACY_LATE if late else s.PRIVACY_ON_TIME)
    if now > request.due_at:
        return "overdue", view.t(s.DEADLINE_OVERDUE)
    days = (calendar.local_date(request.due_at) - calendar.local_date(now)).days
    if days <= 0:
        return "due_today", view.t(s.DEADLINE_TODAY)
    return "upcoming", view.t(s.PRIVACY_DUE_IN, days=days)


async def ticket_panel(view: View, customer: Customer | None) -> dict[str, Any]:
    """The ticket page's privacy section: the customer's open requests, and what may start one.

    Raises DatabaseUnavailable like the rest of the ticket page's reads.
    """
    pages = view.pages
    requests = []
    if customer is not None:
        found = await pages.repos.privacy_requests.for_customer(customer.id)
        requests = [r for r in found if r.state is PrivacyRequestState.OPEN]
    now = pages.tickets.clock()
    channels = [customer.channel] if customer and customer.channel not in INTAKE_CHANNELS else []
    channels += INTAKE_CHANNELS
    return {
        "requests": [
            {
                "id": r.id,
                "href": request_url(r.id),
                "kind": view.t(s.PRIVACY_KINDS[r.kind]),
                "due": view.date(r.due_at),
                "state": deadline(view, r, now)[0],
                "label": deadline(view, r, now)[1],
            }
            for r in sorted(requests, key=lambda r: r.due_at)
        ],
        "can_act": customer is not None and view.at_least(StaffRole.SUPERVISOR),
        "channels": [(c.value, view.t(s.CHANNELS[c])) for c in channels],
    }


class ConsolePrivacy:
    def __init__(self, pages: ConsolePages) -> None:
        self.pages = pages
        self.container: Container = pages.container
        self.repos = pages.repos
        self.privacy = pages.container.privacy

    def register(self, app: web.Application) -> None:
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get(PRIVACY, self.overview)
        add_post(PRIVACY, self.log_request)
        add_post(f"{PRIVACY}/start", self.start)
        add_get(f"{PRIVACY}/{{request_id}}", self.detail)
        add_post(f"{PRIVACY}/{{request_id}}/export", self.export)
        add_post(f"{PRIVACY}/{{request_id}}/erase", self.erase)
        add_post(f"{PRIVACY}/{{request_id}}/close", self.close)
        add_post(f"{PRIVACY}/{{request_id}}/contact", self.correct_contact)
        add_post(f"{PRIVACY}/{{request_id}}/correction", self.correct_ticket)
        add_post(f"{PRIVACY}/{{request_id}}/withdraw", self.withdraw)

    # ------------------------------------------------------------ helpers

    async def _view(self, request: web.Request) -> View:
        require(request, StaffRole.SUPERVISOR)
        return await self.pages.view(request)

    async def _not_found(self, view: View) -> web.Response:
        return self.pages.message(
            view, view.t(s.NOT_FOUND_TITLE), view.t(s.PRIVACY_NOT_FOUND), status=404
        )

    async def _audit(self, request: web.Request, action: str, target: str, **detail: str) -> None:
        await audit(request, action, TARGET, target, **detail)

    async def _by_names(self, ids: set[str]) -> dict[str, str]:
        return await self.pages.names({i for i in ids if i and i != "customer"})

    def _who(self, view: View, by: str, names: Mapping[str, str]) -> str:
        if by == "customer":
            return view.t(s.PRIVACY_BY_CUSTOMER)
        return names.get(by, by)

    async def _open_duplicate(
        self, customer: Customer, kind: PrivacyRequestKind
    ) -> PrivacyRequest | None:
        """An open request of the same kind: a second call or a double click is the same
        request, not a second deadline."""
        for existing in await self.repos.privacy_requests.for_customer(customer.id):
            if existing.state is PrivacyRequestState.OPEN and existing.kind is kind:
                return existing
        return None

    async def _log(
        self,
        request: web.Request,
        view: View,
        customer: Customer,
        kind: PrivacyRequestKind,
        channel: Channel,
    ) -> web.StreamResponse:
        existing = await self._open_duplicate(customer, kind)
        if existing is not None:
            raise web.HTTPSeeOther(request_url(existing.id, done="exists"))
        try:
            logged = await self.privacy.log_request(
                customer, kind, channel=channel, by=view.staff.id
            )
        except CustomerErased:  # erased meanwhile: nobody to log it for
            return await self._not_found(view)
        await self._audit(request, "privacy.log", logged.id, kind=kind.value)
        raise web.HTTPSeeOther(request_url(logged.id, done="logged"))

    # ------------------------------------------------------------ the overview

    async def overview(self, request: web.Request) -> web.StreamResponse:
        return await self._overview(request, await self._view(request))

    async def _overview(
        self,
        request: web.Request,
        view: View,
        *,
        values: Mapping[str, str] | None = None,
        error: str | None = None,
        candidates: list[dict[str, Any]] | None = None,
        status: int = 200,
    ) -> web.Response:
        try:
            open_requests = await self.repos.privacy_requests.open_requests(OPEN_SHOWN)
            recent = await self.repos.privacy_requests.recent(OPEN_SHOWN)
            answered = sorted(
                (r for r in recent if r.state is PrivacyRequestState.DONE),
                key=lambda r: r.done_at or r.opened_at,
                reverse=True,
            )[:ANSWERED_SHOWN]
            names = await self._by_names({r.by for r in [*open_requests, *answered]})
        except DatabaseUnavailable:
            return await self.pages.unavailable(request)
        now = self.pages.tickets.clock()

        def row(r: PrivacyRequest) -> dict[str, Any]:
            state, label = deadline(view, r, now)
            return {
                "id": r.id,
                "href": request_url(r.id),
                "kind": view.t(s.PRIVACY_KINDS[r.kind]),
                "kind_value": r.kind.value,
                "channel": view.t(s.CHANNELS[r.channel]),
                "opened": view.datetime(r.opened_at),
                "due": view.date(r.due_at),
                "done": view.datetime(r.done_at) if r.done_at else "",
                "state": state,
                "label": label,
                "by": self._who(view, r.by, names),
            }

        return self.pages.html(
            "privacy.html",
            view,
            status=status,
            title=view.t(s.PRIVACY_TITLE),
            live="",
            open_rows=[row(r) for r in open_requests],
            answered_rows=[row(r) for r in answered],
            days=self.privacy.request_days,
            kinds=[(k.value, view.t(label)) for k, label in s.PRIVACY_KINDS.items()],
            channels=[(c.value, view.t(s.CHANNELS[c])) for c in INTAKE_CHANNELS],
            values={"term": "", "kind": "", "channel": "", **(values or {})},
            error=error,
            candidates=candidates or [],
        )

    # ------------------------------------------------------------ logging a request

    async def log_request(self, request: web.Request) -> web.StreamResponse:
        """A request that arrived by phone or e-mail, for the customer the term finds."""
        view = await self._view(request)
        form = await request.post()
        values = {
            "term": clean_text(field(form, "term", MAX_TERM * 2)),
            "kind": field(form, "kind", 32),
            "channel": field(form, "channel", 32),
        }
        if (
            not values["term"]
            or len(values["term"]) > MAX_TERM
            or values["kind"] not in set(PrivacyRequestKind)
            or values["channel"] not in {c.value for c in INTAKE_CHANNELS}
        ):
            error = view.t(s.PRIVACY_LOG_INVALID, max=MAX_TERM)
            return await self._overview(request, view, values=values, error=error, status=400)
        try:
            found = await self.privacy.find_customers(values["term"])
            # What was looked up may be someone's e-mail or phone number (C3.1.4).
            await audit(request, "privacy.lookup", "customers", "privacy", results=str(len(found)))
            if len(found) == 1:
                kind, channel = PrivacyRequestKind(values["kind"]), Channel(values["channel"])
                return await self._log(request, view, found[0], kind, channel)
            candidates = [await self._candidate(view, c) for c in found]
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)
        if not found:
            error = view.t(s.PRIVACY_NO_MATCH)
            return await self._overview(request, view, values=values, error=error, status=404)
        error = view.t(s.PRIVACY_SEVERAL, count=len(found))
        return await self._overview(
            request, view, values=values, error=error, candidates=candidates, status=409
        )

    async def _candidate(self, view: View, customer: Customer) -> dict[str, Any]:
        """What tells matching customers apart without showing their data: the channel and
        the ticket references (which the caller can be asked for)."""
        tickets = await self.repos.tickets.for_customer(customer.id)
        return {
            "channel": view.t(s.CHANNELS[customer.channel]),
            "references": [t.reference for t in tickets if t.reference],
        }

    async def start(self, request: web.Request) -> web.StreamResponse:
        """From the ticket page: log a request for that ticket's customer, then answer it on
        the request's page (the same flow as a request logged here)."""
        view = await self._view(request)
        form = await request.post()
        ticket_id = field(form, "ticket", 64)
        kind, channel = field(form, "kind", 32), field(form, "channel", 32)
        if kind not in set(PrivacyRequestKind) or channel not in set(Channel):
            raise web.HTTPSeeOther(ticket_url(quote(ticket_id, safe=""), error="invalid"))
        try:
            ticket = await self.pages.tickets.get(ticket_id)
            customer = await self.repos.customers.get(ticket.customer_id)
            if customer is None:
                return await self._not_found(view)
            # As the panel offers: the customer's own channel, the phone or an e-mail (a
            # withdrawal is filed in the consent ledger under it).
            if Channel(channel) not in (customer.channel, *INTAKE_CHANNELS):
                raise web.HTTPSeeOther(ticket_url(ticket.id, error="invalid"))
            return await self._log(
                request, view, customer, PrivacyRequestKind(kind), Channel(channel)
            )
        except TicketNotFound:
            return await self.pages.not_found(request)
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)

    # ------------------------------------------------------------ one request

    async def _load(self, request: web.Request) -> tuple[PrivacyRequest | None, Customer | None]:
        found = await self.repos.privacy_requests.get(request.match_info["request_id"][:64])
        if found is None or found.customer_id is None:
            return found, None
        return found, await self.repos.customers.get(found.customer_id)

    async def _confirm_word(self, customer: Customer) -> str:
        tickets = await self.repos.tickets.for_customer(customer.id, limit=1)
        return tickets[0].reference if tickets and tickets[0].reference else CONFIRM_WORD

    async def detail(self, request: web.Request) -> web.StreamResponse:
        view = await self._view(request)
        flash = None
        done, error = request.query.get("done", ""), request.query.get("error", "")
        if done in s.PRIVACY_DONE:
            flash = {"kind": "done", "text": view.t(s.PRIVACY_DONE[done])}
        elif error in s.PRIVACY_ERRORS:
            flash = {"kind": "error", "text": view.t(s.PRIVACY_ERRORS[error], max=MAX_NOTE)}
        return await self._detail(request, view, flash=flash)

    async def _detail(
        self,
        request: web.Request,
        view: View,
        *,
        flash: dict[str, str] | None = None,
        note: str = "",
        contact: dict[str, str] | None = None,
        correction: dict[str, str] | None = None,
        status: int = 200,
    ) -> web.Response:
        correction = correction or {"ticket": "", "text": ""}
        try:
            found, customer = await self._load(request)
            if found is None:
                return await self._not_found(view)
            # The page names the customer's channel and tickets: the view is logged first.
            await self._audit(request, "privacy.view", found.id, kind=found.kind.value)
            tickets = await self.repos.tickets.for_customer(customer.id) if customer else []
            word = await self._confirm_word(customer) if customer else ""
            is_open = found.state is PrivacyRequestState.OPEN
            answering = is_open and customer is not None
            correctable = (
                await self.privacy.correctable(customer)
                if answering and customer and found.kind is PrivacyRequestKind.CORRECT
                else []
            )
            withdrawable = (
                await self.privacy.withdrawable(customer)
                if answering and customer and found.kind is PrivacyRequestKind.WITHDRAW
                else []
            )
            trail = await self.repos.audit.recent(target_id=found.id, limit=TRAIL_SHOWN)
            names = await self._by_names({found.by} | {e.actor for e in trail})
        except DatabaseUnavailable:
            return await self.pages.unavailable(request)
        state, label = deadline(view, found, self.pages.tickets.clock())
        return self.pages.html(
            "privacy_request.html",
            view,
            status=status,
            title=view.t(s.PRIVACY_REQUEST_TITLE, kind=view.t(s.PRIVACY_KINDS[found.kind])),
            live="",
            req=found,
            flash=flash,
            kind=view.t(s.PRIVACY_KINDS[found.kind]),
            channel=view.t(s.CHANNELS[found.channel]),
            opened=view.datetime(found.opened_at),
            due=view.date(found.due_at),
            done=view.datetime(found.done_at) if found.done_at else "",
            state=state,
            label=label,
            by=self._who(view, found.by, names),
            customer=customer,
            customer_channel=view.t(s.CHANNELS[customer.channel]) if customer else "",
            tickets=[(ticket_url(t.id), t.reference) for t in tickets],
            note=found.detail.get("note", ""),
            # What the service recorded (counts erased, the field corrected): never personal.
            record=view.record(found.detail, besides=UNSHOWN),
            can_export=is_open and customer is not None and found.kind in EXPORTED,
            can_erase=is_open and customer is not None and found.kind is PrivacyRequestKind.ERASE,
            # A request whose customer is gone (erased meanwhile) can only be noted.
            can_close=is_open and (found.kind in NOTED or customer is None),
            # What staff change for the customer: the contact details and a correction of
            # a ticket's words (a correction request), a consent (a withdrawal).
            can_correct=answering and found.kind is PrivacyRequestKind.CORRECT,
            contact=contact
            or {
                "email": (customer.email if customer else None) or "",
                "phone": (customer.phone if customer else None) or "",
            },
            correctable=[(t.id, t.reference) for t in correctable],
            correction=correction,
            text_max=self.pages.container.settings.text_max_chars,
            can_withdraw=answering and found.kind is PrivacyRequestKind.WITHDRAW,
            withdrawable=[(p.value, view.t(s.CONSENT_PURPOSES[p])) for p in withdrawable],
            word=word,
            typed_note=note,
            max_note=MAX_NOTE,
            trail=[
                {
                    "when": view.datetime(e.at),
                    "who": self._who(view, e.actor, names),
                    "action": view.action(e.action),
                    "detail": view.record(e.detail),
                }
                for e in trail
            ],
            audit_href=f"{BASE}/audit?target={found.id}",
        )

    async def _answerable(
        self, request: web.Request, kinds: tuple[PrivacyRequestKind, ...]
    ) -> tuple[PrivacyRequest, Customer] | str:
        """The open request and its customer, or the outcome to redirect with."""
        found, customer = await self._load(request)
        if found is None:
            return "missing"
        if found.state is not PrivacyRequestState.OPEN:
            return "error=answered"
        if customer is None:
            return "error=no_customer"
        if found.kind not in kinds:
            return "error=invalid"
        return found, customer

    async def _refused(self, view: View, request: web.Request, outcome: str) -> web.Response:
        if outcome == "missing":
            return await self._not_found(view)
        raise web.HTTPSeeOther(f"{request_url(request.match_info['request_id'][:64])}?{outcome}")

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The customer's data as a JSON file; making it answers the request."""
        view = await self._view(request)
        try:
            answerable = await self._answerable(request, EXPORTED)
            if isinstance(answerable, str):
                return await self._refused(view, request, answerable)
            found, customer = answerable
            # C3.1.4: the export is a read of everything about the person: logged first.
            await self._audit(request, "privacy.export", found.id, kind=found.kind.value)
            document = await self.privacy.export(customer, by=view.staff.id, request=found)
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)
        filename = self.privacy.export_filename()
        return web.Response(
            body=self.privacy.export_bytes(document),
            content_type="application/json",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def erase(self, request: web.Request) -> web.StreamResponse:
        """Erase after the staff member typed the word the page showed (nothing undoes it)."""
        view = await self._view(request)
        form = await request.post()
        try:
            answerable = await self._answerable(request, (PrivacyRequestKind.ERASE,))
            if isinstance(answerable, str):
                return await self._refused(view, request, answerable)
            found, customer = answerable
            word = await self._confirm_word(customer)
            typed = field(form, "confirm", 64).strip()
            if typed.casefold() != word.casefold():
                flash = {"kind": "error", "text": view.t(s.PRIVACY_CONFIRM_WRONG)}
                return await self._detail(request, view, flash=flash, status=400)
            # Logged first, like every change: an erasure the database cut short is still
            # on record (the retention job finishes it).
            await self._audit(request, "privacy.erase", found.id, kind=found.kind.value)
            await self.privacy.erase(customer, by=view.staff.id, request=found)
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)
        log.info("privacy erasure done from the console", extra={"request_id": found.id})
        raise web.HTTPSeeOther(request_url(found.id, done="erased"))

    async def close(self, request: web.Request) -> web.StreamResponse:
        """Answer a request by saying what was done (a correction made, a consent withdrawn,
        the data read out on the phone); the note is plain text, shown as text."""
        view = await self._view(request)
        form = await request.post()
        note = clean_text(field(form, "note", MAX_NOTE * 2))
        try:
            found, customer = await self._load(request)
            if found is None:
                return await self._not_found(view)
            if found.state is not PrivacyRequestState.OPEN:
                raise web.HTTPSeeOther(request_url(found.id, error="answered"))
            if found.kind not in NOTED and customer is not None:
                raise web.HTTPSeeOther(request_url(found.id, error="invalid"))
            if not note or len(note) > MAX_NOTE:
                text = view.t(s.PRIVACY_NOTE_INVALID, max=MAX_NOTE)
                flash = {"kind": "error", "text": text}
                return await self._detail(request, view, flash=flash, note=note, status=400)
            await self._audit(request, "privacy.close", found.id, kind=found.kind.value)
            await self.privacy.close_request(found.id, {"note": note, "closed_by": view.staff.id})
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)
        raise web.HTTPSeeOther(request_url(found.id, done="closed"))

    # ------------------------------------------------------------ changes for the customer

    async def _invalid(
        self, request: web.Request, view: View, text: str, **kept: Any
    ) -> web.Response:
        flash = {"kind": "error", "text": text}
        return await self._detail(request, view, flash=flash, status=400, **kept)

    def _one_answer_at_a_time(self, request: web.Request) -> AbstractAsyncContextManager[Lock]:
        """A second submit of the same answer (a double click) waits for the first, then
        finds the request answered: the check that it is open and the change it makes are
        not one step in the database."""
        request_id = request.match_info["request_id"][:64]
        return self.repos.locks.hold(f"privacy_request:{request_id}", wait=ANSWER_WAIT)

    async def _answer(
        self,
        request: web.Request,
        view: View,
        kind: PrivacyRequestKind,
        change: Change,
        done: str,
    ) -> web.StreamResponse:
        """What every change for the customer does around `change`: one at a time per
        request, only while it is open, of `kind` and its customer held, then back to its
        page saying `done`. `change` returns a page instead when what was typed cannot be
        used (or raises HTTPSeeOther to say why not)."""
        try:
            async with self._one_answer_at_a_time(request):
                answerable = await self._answerable(request, (kind,))
                if isinstance(answerable, str):
                    return await self._refused(view, request, answerable)
                found, customer = answerable
                try:
                    refused = await change(found, customer)
                except CustomerErased:  # their erasure began meanwhile
                    return await self._refused(view, request, "error=no_customer")
                if refused is not None:
                    return refused
        except (DatabaseUnavailable, Busy):
            return await self.pages.unavailable(request)
        raise web.HTTPSeeOther(request_url(found.id, done=done))

    async def correct_contact(self, request: web.Request) -> web.StreamResponse:
        """Replace the customer's contact details as they asked (both empty: remove them);
        that answers the request."""
        view = await self._view(request)
        form = await request.post()
        typed = {
            "email": clean_text(field(form, "email", 512)),
            "phone": clean_text(field(form, "phone", 128)),
        }
        email = _contact_value(typed["email"], "email")
        phone = _contact_value(typed["phone"], "phone")

        async def change(found: PrivacyRequest, customer: Customer) -> web.Response | None:
            if email is None or phone is None:
                text = view.t(s.PRIVACY_CONTACT_INVALID)
                return await self._invalid(request, view, text, contact=typed)
            await self._audit(request, "privacy.correct", found.id, field="contact")
            await self.privacy.correct_contact(
                customer, email=email or None, phone=phone or None, by=view.staff.id, request=found
            )
            return None

        return await self._answer(request, view, PrivacyRequestKind.CORRECT, change, "corrected")

    async def correct_ticket(self, request: web.Request) -> web.StreamResponse:
        """Add the customer's correction to one of their tickets (the original words stay,
        marked as corrected); that answers the request."""
        view = await self._view(request)
        form = await request.post()
        settings = self.pages.container.settings
        typed = {
            "ticket": field(form, "ticket", 64),
            "text": clean_text(field(form, "text", settings.text_max_chars * 2)),
        }

        async def change(found: PrivacyRequest, customer: Customer) -> web.Response | None:
            if not settings.text_min_chars <= len(typed["text"]) <= settings.text_max_chars:
                text = view.t(
                    s.PRIVACY_CORRECTION_INVALID,
                    min=settings.text_min_chars,
                    max=settings.text_max_chars,
                )
                return await self._invalid(request, view, text, correction=typed)
            correctable = {t.id: t for t in await self.privacy.correctable(customer)}
            ticket = correctable.get(typed["ticket"])
            if ticket is None:
                text = view.t(s.PRIVACY_ERRORS["invalid"])
                return await self._invalid(request, view, text, correction=typed)
            await self._audit(request, "privacy.correct", found.id, ticket=ticket.reference or "")
            try:
                await self.privacy.correct_ticket(
                    customer, ticket.id, typed["text"], by=view.staff.id, request=found
                )
            except NotTheirs:  # made anonymous meanwhile
                raise web.HTTPSeeOther(request_url(found.id, error="invalid")) from None
            return None

        return await self._answer(request, view, PrivacyRequestKind.CORRECT, change, "corrected")

    async def withdraw(self, request: web.Request) -> web.StreamResponse:
        """Withdraw one of the customer's consents as they asked; it takes effect at once,
        and answers the request."""
        view = await self._view(request)
        form = await request.post()
        chosen = field(form, "purpose", 32)

        async def change(found: PrivacyRequest, customer: Customer) -> web.Response | None:
            withdrawable = {p.value: p for p in await self.privacy.withdrawable(customer)}
            purpose = withdrawable.get(chosen)
            if purpose is None:  # not in force (withdrawn meanwhile), or not withdrawable
                raise web.HTTPSeeOther(request_url(found.id, error="invalid"))
            await self._audit(request, "privacy.withdraw", found.id, purpose=purpose.value)
            # The ledger keeps the hash of what the customer was told; here, by staff,
            # what staff confirm to them.
            shown = Text(s.PRIVACY_WITHDRAW_SHOWN, {"purpose": Text(s.CONSENT_PURPOSES[purpose])})
            await self.privacy.withdraw(
                customer, purpose, shown=shown, by=view.staff.id, request=found
            )
            return None

        return await self._answer(request, view, PrivacyRequestKind.WITHDRAW, change, "withdrawn")


def _contact_value(typed: str, kind: str) -> str | None:
    """The e-mail address or phone number as stored ("" when left empty), or None when it
    is not one (the dialogue's own check, bot.domain.flow.parse_contact)."""
    if not typed:
        return ""
    try:
        parsed = parse_contact(typed)
    except Invalid:
        return None
    return parsed.get(kind)


def register_privacy(app: web.Application, container: Container) -> None:
    ConsolePrivacy(ConsolePages(container)).register(app)


__all__ = ["ConsolePrivacy", "register_privacy", "ticket_panel"]
