"""The staff console's pages: queue, ticket, manual intake, canned replies, audit log.

Server-rendered jinja2 with autoescaping (customer text is always text, never markup),
one static script and one stylesheet (the CSP allows nothing inline). Handlers read
the request, call the ticket service or a repository, and render or redirect: every
reply and status change goes through TicketService, hence through the delivery
service, so the customer hears of it on their own channel (C3.1.5).
Every page is in the signed-in staff member's own locale.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from babel import Locale
from multidict import MultiDictProxy

from bot.console import strings as s
from bot.console.auth import RANK, audit, csrf_token, require, staff_of
from bot.domain.flow import CATEGORY_LABELS, Invalid, clean_text, parse_contact
from bot.domain.models import (
    Author,
    Category,
    Channel,
    Customer,
    Direction,
    Message,
    Staff,
    StaffRole,
    Ticket,
    TicketStatus,
    TimelineEvent,
    new_id,
)
from bot.domain.text import Param, Plural, Text
from bot.domain.tickets import (
    OPEN,
    STAFF_TARGETS,
    TRANSITIONS,
    CannedReply,
    InvalidTransition,
    assignee_of,
    sla_of,
)
from bot.i18n import SUPPORTED
from bot.services.tickets import QueueFilters, StatusConflict, TicketNotFound
from bot.storage import CustomerErased, DatabaseUnavailable
from bot.storage.locks import Busy
from bot.templating import environment

if TYPE_CHECKING:
    from bot.app import Container

log = logging.getLogger(__name__)
# Timeline events shown with one fixed sentence.
FIXED_EVENTS = {
    "created": s.EVENT_CREATED,
    "topic": s.EVENT_TOPIC,
    "corrected": s.EVENT_CORRECTED,
}

TEMPLATES = Path(__file__).parent / "templates"
BASE = "/console"
MAX_TEXT = 4000  # a reply or note; Telegram's own limit is 4096 characters
MAX_TITLE = 80
MAX_SEARCH = 200
PER_PAGE = 50
AUDIT_SHOWN = 200
KEY_RE = re.compile(r"^[0-9a-f]{32}$")
INTAKE_CHANNELS = (Channel.PHONE, Channel.EMAIL)
DEADLINES = {"overdue": s.DEADLINE_OVERDUE, "today": s.DEADLINE_TODAY, "both": s.DEADLINE_BOTH}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Form = MultiDictProxy[Any]


def field(form: Form, name: str, limit: int = MAX_TEXT * 2) -> str:
    """One text field of a posted form ("" if missing or a file); overlong input is cut
    here only to bound the work: the caller checks the real limit and says so."""
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def ticket_url(ticket_id: str, **query: str) -> str:
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{BASE}/tickets/{ticket_id}{suffix}"


@dataclass
class View:
    """Who is looking, in which language: what every template needs."""

    staff: Staff
    locale: str
    csrf: str
    pages: ConsolePages

    def t(self, msgid: str | Plural, **params: Param) -> str:
        return self.pages.i18n.render(self.locale, Text(msgid, params))

    def action(self, action: str) -> str:
        """An audited action in words (s.AUDIT_ACTIONS); one this version does not know is
        shown as recorded."""
        label = s.AUDIT_ACTIONS.get(action)
        return action if label is None else self.t(label)

    def record(self, detail: Mapping[str, str], *, besides: Collection[str] = ()) -> str:
        """What a privacy request or an audit entry records, in words (s.RECORD_DETAILS);
        a key this version does not know is shown as recorded."""
        parts = []
        for key, value in sorted(detail.items()):
            if key in besides:
                continue
            label = s.RECORD_DETAILS.get(key)
            if label is None:
                parts.append(f"{key}={value}")
                continue
            word = s.RECORD_VALUES.get(key, {}).get(value)
            parts.append(self.t(label, value=self.t(word) if word else value))
        return "; ".join(parts)

    def date(self, value: datetime) -> str:
        calendar = self.pages.container.tickets.calendar
        return self.pages.i18n.format_date(self.locale, calendar.local_date(value))

    def datetime(self, value: datetime) -> str:
        return self.pages.i18n.format_datetime(
            self.locale, value, self.pages.container.settings.timezone
        )

    def language(self, code: str) -> str:
        return Locale.parse(code).get_language_name(self.locale) or code

    def at_least(self, role: StaffRole) -> bool:
        return RANK[self.staff.role] >= RANK[role]


class ConsolePages:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.tickets = container.tickets
        self.repos = container.repos
        self.i18n = container.i18n
        self.env = environment(TEMPLATES)

    def register(self, app: web.Application) -> None:
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get(BASE, self.queue)
        add_get(f"{BASE}/queue", self.queue)
        add_get(f"{BASE}/tickets/{{ticket_id}}", self.ticket)
        add_get(f"{BASE}/tickets/{{ticket_id}}/timeline", self.timeline)
        add_post(f"{BASE}/tickets/{{ticket_id}}/reply", self.reply)
        add_post(f"{BASE}/tickets/{{ticket_id}}/status", self.status)
        add_post(f"{BASE}/tickets/{{ticket_id}}/note", self.note)
        add_post(f"{BASE}/tickets/{{ticket_id}}/complex", self.complex)
        add_post(f"{BASE}/tickets/{{ticket_id}}/assign", self.assign)
        add_get(f"{BASE}/intake", self.intake_form)
        add_post(f"{BASE}/intake", self.intake)
        add_get(f"{BASE}/canned", self.canned)
        add_post(f"{BASE}/canned", self.canned_add)
        add_post(f"{BASE}/canned/{{reply_id}}/delete", self.canned_delete)
        add_get(f"{BASE}/audit", self.audit_log)

    # ------------------------------------------------------------ helpers

    async def view(self, request: web.Request) -> View:
        staff = staff_of(request)
        return View(staff, self.i18n.normalize(staff.locale), await csrf_token(request), self)

    def html(self, template: str, view: View, *, status: int = 200, **context: Any) -> web.Response:
        body = self.env.get_template(template).render(
            v=view, t=view.t, s=s, StaffRole=StaffRole, **context
        )
        response = web.Response(text=body, status=status, content_type="text/html")
        response.headers["Content-Language"] = view.locale.replace("_", "-")
        return response

    def message(self, view: View, title: str, text: str, *, status: int) -> web.Response:
        return self.html("message.html", view, status=status, title=title, text=text, live="")

    async def unavailable(self, request: web.Request) -> web.Response:
        view = await self.view(request)
        log.warning("console page unavailable", extra={"cause": "DatabaseUnavailable"})
        return self.message(view, view.t(s.CONSOLE), view.t(s.UNAVAILABLE), status=503)

    async def not_found(self, request: web.Request) -> web.Response:
        view = await self.view(request)
        return self.message(view, view.t(s.NOT_FOUND_TITLE), view.t(s.NOT_FOUND), status=404)

    async def names(self, ids: set[str]) -> dict[str, str]:
        """Staff display names by id; ids that are not staff records keep their id."""
        found: dict[str, str] = {}
        for staff_id in ids:
            staff = await self.repos.staff.get(staff_id)
            if staff is not None:
                found[staff_id] = staff.display_name
        return found

    # ------------------------------------------------------------ the queue

    def filters(self, request: web.Request, staff: Staff) -> tuple[QueueFilters, dict[str, str]]:
        """The queue's filters from the address; anything unknown falls back to the default."""
        query = request.query
        chosen = {
            "status": query.get("status", "open"),
            "category": query.get("category", ""),
            "channel": query.get("channel", ""),
            "assignee": query.get("assignee", ""),
            "deadline": query.get("deadline", ""),
            "q": query.get("q", "")[:MAX_SEARCH].strip(),
        }
        statuses: tuple[TicketStatus, ...] | None = tuple(s for s in TicketStatus if s in OPEN)
        if chosen["status"] == "all":
            statuses = None
        elif chosen["status"] in TicketStatus.__members__.values():
            statuses = (TicketStatus(chosen["status"]),)
        else:
            chosen["status"] = "open"
        category = Category(chosen["category"]) if chosen["category"] in set(Category) else None
        channel = Channel(chosen["channel"]) if chosen["channel"] in set(Channel) else None
        deadline = chosen["deadline"] if chosen["deadline"] in DEADLINES else ""
        try:
            page = max(1, min(10_000, int(query.get("page", "1"))))
        except ValueError:
            page = 1
        filters = QueueFilters(
            statuses=statuses,
            category=category,
            channel=channel,
            assignee=staff.id if chosen["assignee"] == "me" else None,
            unassigned=chosen["assignee"] == "none",
            overdue=deadline in ("overdue", "both"),
            due_today=deadline in ("today", "both"),
            search=chosen["q"] or None,
            page=page,
            per_page=PER_PAGE,
        )
        return filters, chosen

    async def queue(self, request: web.Request) -> web.StreamResponse:
        view = await self.view(request)
        filters, chosen = self.filters(request, view.staff)
        try:
            page = await self.tickets.queue(filters)
            if filters.search:  # what was searched for may be someone's contact (C3.1.4)
                await audit(request, "tickets.search", "tickets", "queue", results=str(page.total))
            names = await self.names({a for t in page.tickets if (a := assignee_of(t))})
        except DatabaseUnavailable:
            return await self.unavailable(request)
        now = self.tickets.clock()
        rows = []
        for ticket in page.tickets:
            sla = sla_of(ticket, now, self.tickets.calendar)
            assignee = assignee_of(ticket)
            rows.append(
                {
                    "ticket": ticket,
                    "href": ticket_url(ticket.id),
                    "status": view.t(s.STATUSES[ticket.status]),
                    "category": view.t(CATEGORY_LABELS[ticket.category]),
                    "channel": view.t(s.CHANNELS[ticket.channel]),
                    "due": view.date(ticket.response_due),
                    "sla": sla.kind.value,
                    "sla_label": view.t(s.SLA[sla.kind], days=sla.working_days),
                    "assignee": names.get(assignee, assignee) if assignee else "",
                }
            )
        keep = {k: v for k, v in chosen.items() if v}

        def page_href(number: int) -> str:
            return f"{BASE}/queue?{urlencode({**keep, 'page': str(number)})}"

        context: dict[str, Any] = {
            "rows": rows,
            "total": page.total,
            "page": page.page,
            "pages": page.pages,
            "previous_href": page_href(page.page - 1) if page.page > 1 else None,
            "next_href": page_href(page.page + 1) if page.page < page.pages else None,
        }
        if request.query.get("partial") == "1":  # the live refresh: the results only
            return self.html("_results.html", view, **context)
        return self.html(
            "queue.html",
            view,
            title=view.t(s.QUEUE_TITLE),
            live="queue",
            chosen=chosen,
            statuses=[(st.value, view.t(s.STATUSES[st])) for st in TicketStatus],
            categories=[(c.value, view.t(label)) for c, label in CATEGORY_LABELS.items()],
            channels=[(c.value, view.t(label)) for c, label in s.CHANNELS.items()],
            deadlines=[(k, view.t(label)) for k, label in DEADLINES.items()],
            **context,
        )

    # ------------------------------------------------------------ the ticket page

    async def _load(self, request: web.Request) -> tuple[Ticket, Customer | None]:
        ticket = await self.tickets.get(request.match_info["ticket_id"][:64])
        return ticket, await self.repos.customers.get(ticket.customer_id)

    def _event_entry(
        self, view: View, event: TimelineEvent, names: Mapping[str, str]
    ) -> dict[str, Any] | None:
        def name(actor: str | None) -> str:
            if actor in (None, "", "system"):
                return view.t(s.ACTOR_SYSTEM)
            if actor == "customer":
                return view.t(s.ACTOR_CUSTOMER)
            return names.get(actor, actor)

        who = name(event.actor)
        lines: list[str] = []
        kind = event.kind
        if kind in FIXED_EVENTS:
            lines.append(view.t(FIXED_EVENTS[kind]))
        elif kind == "logged":
            channel = Channel(event.detail) if event.detail in set(Channel) else None
            label = view.t(s.CHANNELS[channel]) if channel else (event.detail or "")
            lines.append(view.t(s.EVENT_LOGGED, name=who, channel=label))
        elif kind == "status" and event.to_status is not None:
            from_label = view.t(s.STATUSES[event.from_status]) if event.from_status else "-"
            lines.append(
                view.t(
                    s.EVENT_STATUS,
                    name=who,
                    from_status=from_label,
                    to_status=view.t(s.STATUSES[event.to_status]),
                )
            )
            if event.detail:
                lines.append(view.t(s.EVENT_STATUS_MESSAGE, message=event.detail))
        elif kind == "complex":
            on = event.detail == "on"
            lines.append(view.t(s.EVENT_COMPLEX_ON if on else s.EVENT_COMPLEX_OFF, name=who))
        elif kind == "assigned":
            if event.detail:
                lines.append(view.t(s.EVENT_ASSIGNED, name=who, assignee=name(event.detail)))
            else:
                lines.append(view.t(s.EVENT_UNASSIGNED, name=who))
        elif kind == "note":
            lines.append(view.t(s.EVENT_NOTE, name=who))
            lines.append(event.detail or "")
        elif kind == "reply":
            lines.append(view.t(s.EVENT_REPLY, name=who))
        else:
            lines.append(view.t(s.EVENT_OTHER, name=who, kind=kind))
        return {
            "at": event.at,
            "when": view.datetime(event.at),
            "kind": "note" if kind == "note" else "event",
            "who": "",
            "lines": lines,
            "delivery": None,
            "attachments": [],
        }

    def _message_entry(
        self, view: View, message: Message, names: Mapping[str, str]
    ) -> dict[str, Any]:
        if message.author is Author.CUSTOMER:
            who = view.t(s.ACTOR_CUSTOMER)
        elif message.author is Author.BOT:
            who = view.t(s.ACTOR_BOT)
        else:
            staff_id = message.staff_id or ""
            who = view.t(s.ACTOR_STAFF, name=names.get(staff_id, staff_id))
        delivery = None
        if message.direction is Direction.OUTBOUND:
            state = message.delivery.state
            delivery = {
                "state": state.value,
                "label": view.t(s.DELIVERY[state]),
                "error": view.t(s.DELIVERY_ERROR, error=message.delivery.last_error)
                if message.delivery.last_error
                else "",
                "attempts": view.t(s.DELIVERY_ATTEMPTS, attempts=message.delivery.attempts),
            }
        return {
            "at": message.created_at,
            "when": view.datetime(message.created_at),
            "kind": message.author.value,
            "who": who,
            "lines": message.text.split("\n\n") if message.text else [],
            "delivery": delivery,
            "attachments": [self._attachment(view, a) for a in message.attachments],
        }

    @staticmethod
    def _attachment(view: View, attachment: Any) -> dict[str, Any]:
        size = f" · {attachment.size // 1024 or 1} KB" if attachment.size else ""
        return {
            "name": attachment.name or view.t(s.ATTACHMENT_UNNAMED),
            "meta": f"{attachment.kind}{size}",
            "own_work": attachment.own_work,
        }

    async def _timeline(self, view: View, ticket: Ticket) -> list[dict[str, Any]]:
        messages = await self.repos.messages.for_ticket(ticket.id)
        ids = {e.actor for e in ticket.events} | {
            e.detail or "" for e in ticket.events if e.kind == "assigned"
        }
        ids |= {m.staff_id for m in messages if m.staff_id}
        names = await self.names({i for i in ids if i and i not in ("customer", "system")})
        entries = [e for ev in ticket.events if (e := self._event_entry(view, ev, names))]
        entries += [self._message_entry(view, m, names) for m in messages]
        entries.sort(key=lambda entry: entry["at"])  # stable: events and messages interleave
        return entries

    async def ticket(self, request: web.Request) -> web.StreamResponse:
        view = await self.view(request)
        try:
            ticket, customer = await self._load(request)
        except TicketNotFound:
            return await self.not_found(request)
        except DatabaseUnavailable:
            return await self.unavailable(request)
        try:
            # C3.1.4: this page shows the customer's personal data; the read is logged first.
            await audit(request, "ticket.view", "ticket", ticket.id, customer=ticket.customer_id)
            if customer is not None:
                await audit(request, "customer.view", "customer", customer.id, ticket=ticket.id)
            timeline = await self._timeline(view, ticket)
            consents = await self.repos.consents.history(ticket.customer_id)
            locale = customer.locale if customer else ticket.locale
            canned = await self.repos.canned.all(locale=self.i18n.normalize(locale))
            assignee = assignee_of(ticket)
            assignee_name = (
                (await self.names({assignee})).get(assignee, assignee) if assignee else None
            )
            from bot.console.privacy import ticket_panel  # noqa: PLC0415 - it builds on this module

            privacy = await ticket_panel(view, customer)
        except DatabaseUnavailable:
            return await self.unavailable(request)
        prefill = ""
        chosen_canned = request.query.get("canned", "")
        for reply in canned:
            if reply.id == chosen_canned:
                prefill = reply.text
        sla = sla_of(ticket, self.tickets.clock(), self.tickets.calendar)
        deadlines = self.tickets.deadlines
        flash = self._flash(view, request, ticket)
        consent_lines = [
            view.t(
                s.CONSENT_LINE,
                purpose=view.t(s.CONSENT_PURPOSES[c.purpose]),
                state=view.t(s.CONSENT_GRANTED if c.granted else s.CONSENT_REFUSED),
                version=c.notice_version,
                at=view.datetime(c.at),
            )
            for c in consents
        ]
        logged = any(e.kind == "logged" for e in ticket.events)
        return self.html(
            "ticket.html",
            view,
            title=view.t(s.TICKET_TITLE, reference=ticket.reference),
            live="ticket",
            ticket=ticket,
            customer=customer,
            timeline=timeline,
            flash=flash,
            status_label=view.t(s.STATUSES[ticket.status]),
            category_label=view.t(CATEGORY_LABELS[ticket.category]),
            channel_label=view.t(s.CHANNELS[ticket.channel]),
            customer_channel=view.t(s.CHANNELS[customer.channel]) if customer else "",
            customer_language=view.language(customer.locale) if customer else "",
            consent_lines=consent_lines,
            no_consents=view.t(s.NO_CONSENTS_LOGGED if logged else s.NO_CONSENTS),
            attachments=[self._attachment(view, a) for a in ticket.attachments],
            sla=sla.kind.value,
            sla_label=view.t(s.SLA[sla.kind], days=sla.working_days),
            due=view.date(ticket.response_due),
            filed=view.datetime(ticket.created_at),
            corrections=[{"when": view.datetime(c.at), "text": c.text} for c in ticket.corrections],
            anonymized=view.date(ticket.anonymized_at) if ticket.anonymized_at else None,
            complex_text=view.t(
                s.COMPLEX_IS if ticket.complex else s.COMPLEX_IS_NOT,
                days=deadlines.complex_days if ticket.complex else deadlines.first_response_days,
            ),
            assigned_text=view.t(s.ASSIGNED_TO, name=assignee_name)
            if assignee_name
            else view.t(s.ASSIGNED_NOBODY),
            assigned_to_me=assignee == view.staff.id,
            assignee_id=assignee or "",
            targets=[
                (st.value, view.t(s.STATUSES[st]))
                for st in STAFF_TARGETS
                if st in TRANSITIONS[ticket.status]
            ],
            canned=canned,
            prefill=prefill,
            reply_key=new_id(),
            privacy=privacy,
        )

    async def timeline(self, request: web.Request) -> web.StreamResponse:
        """The timeline alone, for the ticket page's live refresh.

        Not audited again: it continues the page view that was (an entry per refresh, per
        open page, per change would bury the audit log's real entries within hours).
        """
        view = await self.view(request)
        try:
            ticket, _ = await self._load(request)
            timeline = await self._timeline(view, ticket)
        except TicketNotFound:
            return await self.not_found(request)
        except DatabaseUnavailable:
            return await self.unavailable(request)
        return self.html("_timeline.html", view, timeline=timeline)

    def _flash(self, view: View, request: web.Request, ticket: Ticket) -> dict[str, str] | None:
        done = request.query.get("done", "")
        error = request.query.get("error", "")
        if done == "logged":
            text = view.t(
                s.INTAKE_DONE, reference=ticket.reference, due=view.date(ticket.response_due)
            )
            return {"kind": "done", "text": text}
        if done in s.DONE:
            return {"kind": "done", "text": view.t(s.DONE[done])}
        if error in s.ERRORS:
            return {"kind": "error", "text": view.t(s.ERRORS[error])}
        return None

    async def _act(
        self, request: web.Request, action: Callable[[str, Staff, Form], Awaitable[str]]
    ) -> web.StreamResponse:
        """Run one change to a ticket and go back to its page with the outcome (POST, 303)."""
        ticket_id = request.match_info["ticket_id"][:64]
        staff = staff_of(request)
        form = await request.post()
        try:
            outcome = await action(ticket_id, staff, form)
        except TicketNotFound:
            return await self.not_found(request)
        except DatabaseUnavailable:
            return await self.unavailable(request)
        except InvalidTransition:
            outcome = "error=transition"
        except StatusConflict:
            outcome = "error=conflict"
        except Busy:
            outcome = "error=busy"
        raise web.HTTPSeeOther(f"{ticket_url(ticket_id)}?{outcome}")

    @staticmethod
    def _text(form: Form, name: str) -> tuple[str, str | None]:
        text = clean_text(field(form, name))
        if not text:
            return text, "error=empty"
        if len(text) > MAX_TEXT:
            return text, "error=too_long"
        return text, None

    async def reply(self, request: web.Request) -> web.StreamResponse:
        async def act(ticket_id: str, staff: Staff, form: Form) -> str:
            text, problem = self._text(form, "text")
            if problem:
                return problem
            key = field(form, "key")
            await self.tickets.staff_reply(
                ticket_id,
                staff_id=staff.id,
                text=text,
                # A double click or a resent form sends one reply, not two.
                idempotency_key=f"console:{key}" if KEY_RE.match(key) else None,
            )
            return "done=reply"

        return await self._act(request, act)

    async def status(self, request: web.Request) -> web.StreamResponse:
        async def act(ticket_id: str, staff: Staff, form: Form) -> str:
            raw = field(form, "status")
            if raw not in {t.value for t in STAFF_TARGETS}:
                return "error=invalid"
            message = clean_text(field(form, "message"))
            if len(message) > MAX_TEXT:
                return "error=too_long"
            if raw == TicketStatus.DECLINED and not message:
                return "error=reason_needed"  # C3.1.5: a declined customer is told why
            await self.tickets.change_status(
                ticket_id, TicketStatus(raw), actor=staff.id, message=message or None
            )
            return "done=status"

        return await self._act(request, act)

    async def note(self, request: web.Request) -> web.StreamResponse:
        async def act(ticket_id: str, staff: Staff, form: Form) -> str:
            text, problem = self._text(form, "text")
            if problem:
                return problem
            await self.tickets.get(ticket_id)  # a note on no ticket is a 404, not a no-op
            await self.tickets.add_note(ticket_id, staff_id=staff.id, text=text)
            return "done=note"

        return await self._act(request, act)

    async def complex(self, request: web.Request) -> web.StreamResponse:
        async def act(ticket_id: str, staff: Staff, form: Form) -> str:
            value = field(form, "complex")
            if value not in ("on", "off"):
                return "error=invalid"
            await self.tickets.set_complex(ticket_id, actor=staff.id, complex_=value == "on")
            return "done=complex"

        return await self._act(request, act)

    async def assign(self, request: web.Request) -> web.StreamResponse:
        async def act(ticket_id: str, staff: Staff, form: Form) -> str:
            to = field(form, "to")
            assignee: str | None
            if to == "me":
                assignee = staff.id
            elif to == "nobody":
                assignee = None
            elif to == "username":
                colleague = await self.repos.staff.by_username(field(form, "username", 128).strip())
                if colleague is None or not colleague.active:
                    return "error=no_such_staff"
                assignee = colleague.id
            else:
                return "error=invalid"
            was = field(form, "was", 64) or None  # who had it on the page the agent saw
            await self.tickets.assign(ticket_id, actor=staff.id, assignee=assignee, expected=was)
            return "done=assigned"

        return await self._act(request, act)

    # ------------------------------------------------------------ manual intake (C2.2)

    def _intake_page(
        self,
        view: View,
        *,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        status: int = 200,
    ) -> web.Response:
        config = self.container.dialogue.config
        return self.html(
            "intake.html",
            view,
            status=status,
            title=view.t(s.INTAKE_TITLE),
            live="",
            channels=[(c.value, view.t(s.CHANNELS[c])) for c in INTAKE_CHANNELS],
            categories=[(c.value, view.t(label)) for c, label in CATEGORY_LABELS.items()],
            locales=[(code, view.language(code)) for code in SUPPORTED],
            values={
                "channel": "",
                "locale": view.locale,
                "category": "",
                "rating": "",
                "text": "",
                "contact": "",
                "own_work": "",
                "flow_id": new_id(),
                **values,
            },
            # Every field has an entry ("" when fine): the templates are strict. An error
            # is named by its field, or by a reason shown at a field ("contact": "erasing").
            errors={
                name: view.t(
                    s.INTAKE_ERRORS[errors[name]], min=config.text_min, max=config.text_max
                )
                if name in errors
                else ""
                for name in s.INTAKE_FIELDS
            },
        )

    async def intake_form(self, request: web.Request) -> web.StreamResponse:
        return self._intake_page(await self.view(request), values={}, errors={})

    async def intake(self, request: web.Request) -> web.StreamResponse:
        view = await self.view(request)
        form = await request.post()
        config = self.container.dialogue.config
        values = {
            name: field(form, name)
            for name in ("channel", "locale", "category", "rating", "text", "contact", "own_work")
        }
        flow_id = field(form, "flow_id")
        values["flow_id"] = flow_id if KEY_RE.match(flow_id) else new_id()
        errors: dict[str, str] = {}
        if values["channel"] not in {c.value for c in INTAKE_CHANNELS}:
            errors["channel"] = "channel"
        if values["locale"] not in SUPPORTED:
            errors["locale"] = "locale"
        if values["category"] not in set(Category):
            errors["category"] = "category"
        if values["rating"] not in {"1", "2", "3", "4", "5"}:
            errors["rating"] = "rating"
        text = clean_text(values["text"])
        if not config.text_min <= len(text) <= config.text_max:
            errors["text"] = "text"
        contact: dict[str, str] = {}
        if values["contact"].strip():
            try:
                contact = parse_contact(values["contact"])
            except Invalid:
                errors["contact"] = "contact"
        if errors:
            return self._intake_page(view, values=values, errors=errors, status=400)
        channel = Channel(values["channel"])

        async def log() -> Ticket:
            return await self.tickets.log_on_behalf(
                staff_id=view.staff.id,
                channel=channel,
                locale=values["locale"],
                contact=contact,
                answers={
                    "category": values["category"],
                    "rating": int(values["rating"]),
                    "text": text,
                    "text_own_work": values["own_work"] == "yes",
                },
                flow_id=f"console:{values['flow_id']}",
                # The same phone number or address is the same customer next time; without
                # one, a customer of their own that nobody else can ever match.
                external_id=next(iter(contact.values()), f"logged:{values['flow_id']}"),
            )

        try:
            try:
                ticket = await log()
            except CustomerErased as erased:
                # An erasure of the caller that stopped half-way long ago is finished now,
                # and the call is a new customer's; one running now is waited out by staff.
                if not await self.container.privacy.finish_stalled(erased.customer_id):
                    raise
                ticket = await log()
        except (DatabaseUnavailable, Busy):
            return await self.unavailable(request)
        except CustomerErased:
            fresh = {**values, "flow_id": new_id()}  # a later try is a new piece of feedback
            return self._intake_page(view, values=fresh, errors={"contact": "erasing"}, status=409)
        raise web.HTTPSeeOther(ticket_url(ticket.id, done="logged"))

    # ------------------------------------------------------------ canned replies

    async def canned(self, request: web.Request) -> web.StreamResponse:
        require(request, StaffRole.SUPERVISOR)
        return await self._canned_page(request, errors=False, done=request.query.get("done", ""))

    async def _canned_page(
        self,
        request: web.Request,
        *,
        errors: bool,
        done: str = "",
        values: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> web.Response:
        view = await self.view(request)
        try:
            replies = await self.repos.canned.all()
        except DatabaseUnavailable:
            return await self.unavailable(request)
        flash = None
        if done in ("saved", "deleted"):
            flash = view.t(s.CANNED_SAVED if done == "saved" else s.CANNED_DELETED)
        return self.html(
            "canned.html",
            view,
            status=status,
            title=view.t(s.CANNED_TITLE),
            live="",
            replies=[(r, view.language(r.locale)) for r in replies],
            locales=[(code, view.language(code)) for code in SUPPORTED],
            values={"title": "", "text": "", "locale": view.locale, **(values or {})},
            error=view.t(s.CANNED_INVALID) if errors else None,
            flash=flash,
        )

    async def canned_add(self, request: web.Request) -> web.StreamResponse:
        staff = require(request, StaffRole.SUPERVISOR)
        form = await request.post()
        title = clean_text(field(form, "title"))
        text = clean_text(field(form, "text"))
        locale = field(form, "locale")
        values = {"title": title, "text": text, "locale": locale}
        if not title or len(title) > MAX_TITLE or not text or len(text) > MAX_TEXT:
            return await self._canned_page(request, errors=True, values=values, status=400)
        if locale not in SUPPORTED:
            return await self._canned_page(request, errors=True, values=values, status=400)
        try:
            await self.repos.canned.add(
                CannedReply(locale=locale, title=title, text=text, created_by=staff.id)
            )
        except DatabaseUnavailable:
            return await self.unavailable(request)
        raise web.HTTPSeeOther(f"{BASE}/canned?done=saved")

    async def canned_delete(self, request: web.Request) -> web.StreamResponse:
        require(request, StaffRole.SUPERVISOR)
        try:
            await self.repos.canned.delete(request.match_info["reply_id"][:64])
        except DatabaseUnavailable:
            return await self.unavailable(request)
        raise web.HTTPSeeOther(f"{BASE}/canned?done=deleted")

    # ------------------------------------------------------------ the audit log (C3.1.4)

    async def audit_log(self, request: web.Request) -> web.StreamResponse:
        require(request, StaffRole.ADMIN)
        view = await self.view(request)
        query = request.query
        chosen = {
            "actor": query.get("actor", "")[:128].strip(),
            "action": query.get("action", "")[:64].strip(),
            "target": query.get("target", "")[:64].strip(),
        }
        try:
            actor_id: str | None = None
            entries = []
            unknown_actor = False
            if chosen["actor"]:
                actor = await self.repos.staff.by_username(chosen["actor"])
                actor_id = actor.id if actor else None
                unknown_actor = actor is None
            if not unknown_actor:
                entries = await self.repos.audit.recent(
                    actor=actor_id,
                    target_id=chosen["target"] or None,
                    action=chosen["action"] or None,
                    limit=AUDIT_SHOWN,
                )
            names = await self.names({e.actor for e in entries})
        except DatabaseUnavailable:
            return await self.unavailable(request)
        rows = [
            {
                "when": view.datetime(e.at),
                "who": names.get(e.actor, e.actor),
                "action": view.action(e.action),
                "target": view.t(s.AUDIT_TARGETS[e.target_type], id=e.target_id)
                if e.target_type in s.AUDIT_TARGETS
                else f"{e.target_type}:{e.target_id}",
                "target_href": ticket_url(e.target_id)
                if e.target_type == "ticket"
                else f"{BASE}/privacy/{e.target_id}"
                if e.target_type == "privacy_request"
                else None,
                "detail": view.record(e.detail),
            }
            for e in entries
        ]
        return self.html(
            "audit.html",
            view,
            title=view.t(s.AUDIT_TITLE),
            live="",
            rows=rows,
            chosen=chosen,
            actions=[(action, view.t(label)) for action, label in s.AUDIT_ACTIONS.items()],
        )
