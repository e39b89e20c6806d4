"""Customers' rights over their data (C3.2.6, C6.1; PIPL: access and copy, correction,
deletion, withdrawal of consent), the same from every channel and from the staff tools.

Every request is logged in privacy_requests with its deadline. A customer's own
request is answered at once; one that staff log (it arrived by phone or e-mail)
stays open, with its due date, until staff answer it in the console or the CLI.

Where personal data lives (kept in step with the `personal` marks in
bot/domain/models.py, which tests/test_privacy.py walks): the customer record
(channel identity, contact details), the dialogue state (draft answers), ticket
texts, corrections, attachments and timeline details, messages, uploads and
upload tokens (owned by the hashed conversation key), the consent ledger, the
locks named after a conversation, the audit trail's targets, and the staff's
Telegram forum topic that mirrors a ticket.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.flow import EMAIL_RE
from bot.domain.models import (
    Attachment,
    Channel,
    ConsentPurpose,
    Correction,
    Customer,
    Message,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
    TimelineEvent,
)
from bot.domain.privacy import EXPORT_FORMAT, EXPORT_VERSION, NOTICE_VERSION, conversation_key
from bot.domain.text import Text
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.consents import ConsentService
from bot.services.delivery import Clock
from bot.services.tickets import TicketService
from bot.storage import CustomerErased, Repositories
from bot.storage.locks import Busy, KeptLock
from bot.storage.tickets import REFERENCE_RE

CORRECTABLE = 10  # the latest tickets a correction may be added to

log = logging.getLogger(__name__)

# An erasure that a process began and did not finish (it died) is taken up again by the
# retention job once it is this old.
ERASURE_RESUME_AFTER = timedelta(minutes=5)
# One erasure of a customer at a time: its lock (kept while it runs), and how long another
# request to erase them waits for it.
ERASURE_LOCK = timedelta(minutes=2)
ERASURE_WAIT = timedelta(seconds=30)
# Rounds of the retention job (hourly by default) a staff topic deletion is retried.
TOPIC_TRIES = 72
CUSTOMER_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class TopicEraser(Protocol):
    """Deletes a ticket's copy in the staff's Telegram forum topic; False: try again later."""

    async def __call__(self, chat_id: int, topic_id: int) -> bool: ...


class NotTheirs(LookupError):
    """The ticket is not this customer's (or no longer holds their data)."""


@dataclass
class ErasureReport:
    """What an erasure removed, by collection (counts only: no personal data)."""

    request_id: str
    removed: dict[str, int] = field(default_factory=dict)
    pending: int = 0  # clean-up left for the retention job (a Telegram topic to delete)

    def add(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.removed[name] = self.removed.get(name, 0) + count


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "kind": attachment.kind,
        "name": attachment.name,
        "mime_type": attachment.mime_type,
        "size": attachment.size,
        "own_work": attachment.own_work,
        "reference": attachment.file_ref,
    }


def _upload_ids(attachments: list[Attachment]) -> list[str]:
    return [
        a.file_ref.removeprefix("upload:") for a in attachments if a.file_ref.startswith("upload:")
    ]


class PrivacyService:
    def __init__(
        self,
        repos: Repositories,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        consents: ConsentService,
        tickets: TicketService,
        *,
        request_days: int,
        licence_required: bool = True,
    ) -> None:
        self.repos = repos
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.consents = consents
        self.tickets = tickets
        self.request_days = request_days
        self.licence_required = licence_required
        self.topic_eraser: TopicEraser | None = None  # set by the Telegram channel

    # ------------------------------------------------------------ the request log

    async def log_request(
        self,
        customer: Customer | None,
        kind: PrivacyRequestKind,
        *,
        channel: Channel,
        by: str,
        detail: dict[str, str] | None = None,
        fenced: bool = True,
    ) -> PrivacyRequest:
        """Log a request, open, due in privacy_request_days."""
        now = self.clock()
        request = PrivacyRequest(
            kind=kind,
            channel=channel,
            customer_id=None if customer is None else customer.id,
            by=by,
            opened_at=now,
            due_at=now + timedelta(days=self.request_days),
            detail=dict(detail or {}),
        )
        await self.repos.privacy_requests.add(request)
        if fenced and customer is not None and await self.repos.customers.get(customer.id) is None:
            # Erased meanwhile (on another device, or by staff), after the erasure made
            # its requests forget the customer (it does so once the record is gone).
            await self.repos.privacy_requests.set_fields(request.id, customer_id=None)
            raise CustomerErased(customer.id)
        source = "customer" if by == "customer" else "staff"
        self.metrics.privacy_requests.labels(kind.value, source).inc()
        return request

    async def close_request(self, request_id: str, detail: dict[str, str] | None = None) -> None:
        await self.repos.privacy_requests.close(request_id, at=self.clock(), detail=detail)

    async def _answered(
        self,
        customer: Customer,
        kind: PrivacyRequestKind,
        by: str,
        request: PrivacyRequest | None,
        detail: dict[str, str] | None = None,
    ) -> PrivacyRequest:
        """Close `request`, or log a new one as answered now (a customer's own request)."""
        if request is None:
            request = await self.log_request(
                customer, kind, channel=customer.channel, by=by, detail=detail
            )
        await self.close_request(request.id, detail)
        return request

    async def find_customers(self, term: str) -> list[Customer]:
        """Customers matching a customer id, a ticket reference, an e-mail or a phone number
        (for requests that arrive by phone or e-mail)."""
        term = term.strip()
        if not term:
            return []
        found: dict[str, Customer] = {}
        if CUSTOMER_ID_RE.match(term):
            customer = await self.repos.customers.get(term)
            if customer is not None:
                found[customer.id] = customer
        if REFERENCE_RE.match(term):
            ticket = await self.repos.tickets.by_reference(term.upper())
            if ticket is not None and ticket.customer_id:
                customer = await self.repos.customers.get(ticket.customer_id)
                if customer is not None:
                    found[customer.id] = customer
        elif "@" in term and EMAIL_RE.match(term):
            for customer in await self.repos.customers.with_contact(email=term):
                found[customer.id] = customer
        else:
            digits = re.sub(r"\D", "", term)
            if 7 <= len(digits) <= 15 and re.fullmatch(r"\+?[0-9 ()\-]+", term):
                for candidate in ("+" + digits, digits):
                    for customer in await self.repos.customers.with_contact(phone=candidate):
                        found[customer.id] = customer
        return list(found.values())

    # ------------------------------------------------------------ see and export

    async def export(
        self, customer: Customer, *, by: str = "customer", request: PrivacyRequest | None = None
    ) -> dict[str, Any]:
        """The export document (format in docs/data-export.md). Closes `request`, or logs a
        new export request as answered."""
        request = await self._answered(customer, PrivacyRequestKind.EXPORT, by, request)
        tickets = await self.repos.tickets.all_for_customer(customer.id)
        references = {t.id: t.reference for t in tickets}
        messages = await self.repos.messages.all_for_customer(customer.id)
        key = conversation_key(customer.channel.value, customer.external_id)
        conversation = await self.repos.conversations.get(key)
        requests = await self.repos.privacy_requests.for_customer(customer.id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": _iso(self.clock()),
            "notice_version": NOTICE_VERSION,
            "customer": {
                "id": customer.id,
                "channel": customer.channel.value,
                "channel_user_id": customer.external_id,
                "display_name": customer.display_name,
                "email": customer.email,
                "phone": customer.phone,
                "language": customer.locale,
                "created_at": _iso(customer.created_at),
                "updated_at": _iso(customer.updated_at),
            },
            "consents": [
                {
                    "purpose": record.purpose.value,
                    "granted": record.granted,
                    "notice_version": record.notice_version,
                    "text_sha256": record.text_hash,
                    "language": record.locale,
                    "channel": record.channel.value,
                    "at": _iso(record.at),
                }
                for record in await self.repos.consents.history(customer.id)
            ],
            "tickets": [self._export_ticket(ticket) for ticket in tickets],
            "messages": [self._export_message(m, references) for m in messages],
            "draft": None
            if conversation is None or conversation.step is None
            else {"step": conversation.step, "answers": conversation.answers},
            "uploads": [
                {
                    "reference": f"upload:{upload.id}",
                    "name": upload.name,
                    "mime_type": upload.mime_type,
                    "size": upload.size,
                    "sha256": upload.sha256,
                    "created_at": _iso(upload.created_at),
                }
                for upload in await self.repos.uploads.list_owned(key)
            ],
            "requests": [
                {
                    "kind": r.kind.value,
                    "channel": r.channel.value,
                    "opened_at": _iso(r.opened_at),
                    "due_at": _iso(r.due_at),
                    "state": r.state.value,  # this export's own request is closed above
                }
                for r in requests
            ],
        }

    @staticmethod
    def _export_ticket(ticket: Ticket) -> dict[str, Any]:
        return {
            "reference": ticket.reference,
            "channel": ticket.channel.value,
            "language": ticket.locale,
            "category": ticket.category.value,
            "rating": ticket.rating,
            "text": ticket.text,
            "text_own_work": ticket.text_own_work,
            "corrections": [{"at": _iso(c.at), "text": c.text} for c in ticket.corrections],
            "attachments": [_attachment(a) for a in ticket.attachments],
            "expanded_use_consent": ticket.expanded_use,
            "status": ticket.status.value,
            "complex": ticket.complex,
            "created_at": _iso(ticket.created_at),
            "first_response_due": _iso(ticket.response_due),
            "first_response_at": _iso(ticket.first_response_at),
            "updated_at": _iso(ticket.updated_at),
            "anonymized_at": _iso(ticket.anonymized_at),
            # The timeline as the customer lived it. Staff ids and internal notes are the
            # company's working records, not data the customer gave (C3.2.6).
            "timeline": [
                {
                    "at": _iso(event.at),
                    "kind": event.kind,
                    "by": event.actor if event.actor in ("customer", "system") else "staff",
                    "from_status": event.from_status.value if event.from_status else None,
                    "to_status": event.to_status.value if event.to_status else None,
                }
                for event in ticket.events
                if event.kind != "note"
            ],
        }

    @staticmethod
    def _export_message(message: Message, references: dict[str, str]) -> dict[str, Any]:
        return {
            "seq": message.seq,
            "ticket": references.get(message.ticket_id or ""),
            "direction": message.direction.value,
            "from": message.author.value,
            "kind": message.kind,
            "text": message.text,
            "attachments": [_attachment(a) for a in message.attachments],
            "at": _iso(message.created_at),
            "delivery": message.delivery.state.value,
        }

    @staticmethod
    def export_bytes(document: dict[str, Any]) -> bytes:
        """The export as a UTF-8 JSON file."""
        return json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")

    def export_filename(self) -> str:
        day = self.consents.calendar.local_date(self.clock())  # the company's date
        return f"feedback-data-{day.isoformat()}.json"

    async def access(self, customer: Customer) -> None:
        """Log that the customer looked at the summary of their data (it is answered)."""
        await self._answered(customer, PrivacyRequestKind.ACCESS, "customer", None)

    # ------------------------------------------------------------ what may be changed

    async def correctable(self, customer: Customer) -> list[Ticket]:
        """The customer's latest tickets whose text a correction may still be added to."""
        tickets = await self.repos.tickets.for_customer(customer.id, limit=CORRECTABLE)
        return [t for t in tickets if t.anonymized_at is None]

    async def withdrawable(self, customer: Customer) -> list[ConsentPurpose]:
        """Consents in force that may be withdrawn (processing aside: withdrawing it is an
        erasure). The licence is irrevocable (C3.2.3) unless this deployment makes it
        optional (BOT_LICENCE_REQUIRED=false)."""
        current = await self.repos.consents.current(customer.id)
        optional = [ConsentPurpose.EXPANDED_USE]
        if not self.licence_required:
            optional.append(ConsentPurpose.LICENCE)
        return [p for p in optional if p in current and current[p].granted]

    # ------------------------------------------------------------ correct

    async def correct_contact(
        self,
        customer: Customer,
        *,
        email: str | None,
        phone: str | None,
        by: str = "customer",
        request: PrivacyRequest | None = None,
    ) -> None:
        """Replace the contact details (None and None: remove them)."""
        await self.repos.customers.update_fields(customer.id, email=email, phone=phone)
        await self._answered(
            customer, PrivacyRequestKind.CORRECT, by, request, {"field": "contact"}
        )

    async def correct_ticket(
        self,
        customer: Customer,
        ticket_id: str,
        text: str,
        *,
        by: str = "customer",
        request: PrivacyRequest | None = None,
    ) -> Ticket:
        """Add a correction to the ticket's text; the original stays, marked as corrected."""
        ticket = await self.repos.tickets.get(ticket_id)
        if ticket is None or ticket.customer_id != customer.id or ticket.anonymized_at:
            raise NotTheirs(ticket_id)
        now = self.clock()
        # Staff adding it for the customer (a request by phone) are its actor.
        event = TimelineEvent(at=now, kind="corrected", actor=by)
        if not await self.repos.tickets.add_correction(
            ticket.id, Correction(at=now, text=text), event
        ):  # anonymized since it was read (an erasure, or retention)
            raise NotTheirs(ticket_id)
        await self._answered(
            customer, PrivacyRequestKind.CORRECT, by, request, {"ticket": ticket.reference}
        )
        updated = await self.tickets.get(ticket.id)
        await self.tickets.changed(updated, "corrected")
        return updated

    # ------------------------------------------------------------ withdraw

    async def withdraw(
        self,
        customer: Customer,
        purpose: ConsentPurpose,
        *,
        shown: Text,
        by: str = "customer",
        request: PrivacyRequest | None = None,
    ) -> None:
        """Record the withdrawal in the ledger; it takes effect at once (C3.1.7): the
        customer's tickets stop counting as usable beyond handling them, and their words
        leave the analytics store. Recorded for the customer by staff (`request`), it is
        filed under the channel the request came by (a phone call, an e-mail)."""
        await self.consents.record(
            customer,
            purpose,
            granted=False,
            shown=shown,
            locale=customer.locale,
            channel=customer.channel if request is None else request.channel,
        )
        if purpose is ConsentPurpose.EXPANDED_USE:
            for ticket_id in await self.repos.tickets.withdraw_expanded_use(customer.id):
                ticket = await self.repos.tickets.get(ticket_id)
                if ticket is not None:
                    await self.tickets.changed(ticket, "consent")
        await self._answered(
            customer, PrivacyRequestKind.WITHDRAW, by, request, {"purpose": purpose.value}
        )

    # ------------------------------------------------------------ erase

    async def anonymize_ticket(
        self,
        ticket: Ticket,
        *,
        forget_customer: bool = False,
        request: PrivacyRequest | None = None,
    ) -> dict[str, int]:
        """Erase one ticket's personal data: its text, corrections, attachments, uploads,
        messages, timeline details and staff topic; keep category, rating, dates, status.

        Idempotent. A staff topic that cannot be deleted now is left to the retention job
        (on `request`, or on a request logged for the purpose)."""
        counts: dict[str, int] = {}
        messages = await self.repos.messages.for_ticket(ticket.id)
        uploads = _upload_ids(ticket.attachments)
        for message in messages:
            uploads += _upload_ids(message.attachments)
        counts["uploads"] = await self.repos.uploads.delete_ids(uploads)
        counts["messages"] = await self.repos.messages.delete_for_ticket(ticket.id)
        # The topic first: once the ticket forgets it, nothing would lead back to it.
        topic = (ticket.telegram_topic_chat_id, ticket.telegram_topic_id)
        if topic[0] is not None and topic[1] is not None:
            request = await self._delete_topic(ticket, topic[0], topic[1], request, counts)
        cleared = await self.repos.tickets.anonymize(
            ticket.id, at=self.clock(), forget_customer=forget_customer
        )
        if cleared is not None and cleared != topic:
            # Made after the ticket was read above (the staff posts' worker): it goes too.
            await self._delete_topic(ticket, cleared[0], cleared[1], request, counts)
        counts["tickets"] = 1
        updated = await self.repos.tickets.get(ticket.id)
        if updated is not None:
            await self.tickets.changed(updated, "anonymized")
        return counts

    async def _delete_topic(
        self,
        ticket: Ticket,
        chat_id: int,
        topic_id: int,
        request: PrivacyRequest | None,
        counts: dict[str, int],
    ) -> PrivacyRequest | None:
        """Delete a ticket's staff topic, or leave it to the retention job (on `request`,
        or on a request logged for the purpose, which is returned)."""
        if await self._erase_topic(chat_id, topic_id):
            return request
        if request is None:
            request = await self.log_request(
                None, PrivacyRequestKind.ERASE, channel=ticket.channel, by="system"
            )
            await self.close_request(request.id, {"reason": "retention"})
        await self.repos.privacy_requests.add_pending(
            request.id, {"telegram_topic": [chat_id, topic_id]}
        )
        counts["pending"] = counts.get("pending", 0) + 1
        return request

    async def _erase_topic(self, chat_id: int, topic_id: int) -> bool:
        if self.topic_eraser is None:
            return False
        try:
            return await self.topic_eraser(chat_id, topic_id)
        except Exception:  # Telegram down: the retention job tries again
            log.warning("could not delete a staff topic; will retry")
            return False

    async def erase(
        self,
        customer: Customer,
        *,
        by: str = "customer",
        request: PrivacyRequest | None = None,
        wait: timedelta | None = None,
    ) -> ErasureReport:
        """Erase everything about the customer, everywhere; tickets keep anonymous fields.
        Closes `request`, or logs a new erase request as answered. Idempotent: run again
        (the retention job does, if a process died half-way) it finishes the work.

        One run at a time per customer (Busy if another has not finished within `wait`,
        ERASURE_WAIT by default):
        a second run that came after the first had finished, and the customer had begun
        afresh, deleted their new dialogue by its key."""
        lock = await self.repos.locks.acquire_within(
            f"erasure:{customer.id}",
            ERASURE_LOCK,
            wait=ERASURE_WAIT if wait is None else wait,
            now=self.clock,
            every=(0.2, 0.2),  # a whole erasure to wait for, not a write
        )
        async with KeptLock(self.repos.locks, lock, ERASURE_LOCK, self.clock):
            current = await self.repos.customers.get(customer.id)
            if current is not None:
                return await self._erase(current, by=by, request=request)
        # Erased already (by another run, or this is a retry): only the request is left.
        if request is None:
            request = await self.log_request(
                customer, PrivacyRequestKind.ERASE, channel=customer.channel, by=by, fenced=False
            )
        await self._close_erasure(request.id, customer.id, {})
        return ErasureReport(request_id=request.id)

    async def _erase(
        self, customer: Customer, *, by: str, request: PrivacyRequest | None
    ) -> ErasureReport:
        if request is None:
            request = await self.log_request(  # (an erasure run again: unfenced)
                customer, PrivacyRequestKind.ERASE, channel=customer.channel, by=by, fenced=False
            )
        started = self.clock()
        await self.repos.privacy_requests.set_fields(
            request.id, **{"detail.started_at": started.isoformat()}
        )
        # Marked before anything is deleted: a writer that does not wait for the
        # erasure (words onto a ticket, a staff reply) takes back what it wrote
        # from here on (Repositories.fence).
        if customer.erasing_since is None:
            await self.repos.customers.update_fields(customer.id, erasing_since=started)
        report = ErasureReport(request_id=request.id)
        await self._anonymize_tickets(customer.id, request, report)
        key = conversation_key(customer.channel.value, customer.external_id)
        repos = self.repos
        report.add(
            {
                "messages": await repos.messages.delete_for_customer(customer.id),
                "consents": await repos.consents.delete_for_customer(customer.id),
                "conversations": await repos.conversations.delete_for_customer(customer.id),
                "uploads": await repos.uploads.delete_owned(key),
                "upload_tokens": await repos.upload_tokens.delete_owned(key),
                "audit": await repos.audit.pseudonymize(customer.id, f"erased:{request.id}"),
            }
        )
        await repos.conversations.erase(key)  # a draft from before the customer record
        await repos.locks.forget(f"conversation:{key}")
        # A step in flight when the erasure began (a ticket being filed, with its
        # acknowledgement) holds the dialogue's claim, which erasing the dialogue above
        # waited for: what it wrote after the first pass goes too.
        await self._anonymize_tickets(customer.id, request, report, only_new=True)
        report.add({"messages": await repos.messages.delete_for_customer(customer.id)})
        report.add({"customers": int(await repos.customers.delete(customer))})
        removed = {name: str(count) for name, count in sorted(report.removed.items()) if count}
        await self._close_erasure(request.id, customer.id, removed)
        log.info("customer data erased", extra={"request_id": request.id, **removed})
        return report

    async def _close_erasure(
        self, request_id: str, customer_id: str, removed: dict[str, str] | None = None
    ) -> None:
        """The erasure's request answered, the customer's other open ones with it, and no
        request naming them any more. After the customer record is gone: a request logged
        later finds no customer and forgets them itself (log_request)."""
        await self.close_request(request_id, removed)
        await self.repos.privacy_requests.close_open_for_customer(
            customer_id, at=self.clock(), detail={"answered_by_erasure": request_id}
        )
        await self.repos.privacy_requests.forget_customer(customer_id)

    async def finish_stalled(self, customer_id: str) -> bool:
        """Finish the erasure of a customer marked longer ago than ERASURE_RESUME_AFTER
        (the process erasing them died) now, not at the retention job's next round: they
        wrote again, and until then everything they wrote would be taken back. True if
        one was finished."""
        customer = await self.repos.customers.get(customer_id)
        stalled = self.clock() - ERASURE_RESUME_AFTER
        if customer is None or customer.erasing_since is None or customer.erasing_since > stalled:
            return False
        request = next(
            (
                r
                for r in await self.repos.privacy_requests.for_customer(customer_id)
                if r.kind is PrivacyRequestKind.ERASE and r.state is PrivacyRequestState.OPEN
            ),
            None,
        )
        try:
            await self.erase(
                customer,
                by="system" if request is None else request.by,
                request=request,
                wait=timedelta(0),
            )
        except Busy:
            return False  # being finished right now (the retention job, another device)
        return True

    async def _anonymize_tickets(
        self,
        customer_id: str,
        request: PrivacyRequest,
        report: ErasureReport,
        *,
        only_new: bool = False,
    ) -> None:
        """Anonymize the customer's tickets (`only_new`: those not anonymized yet)."""
        for ticket in await self.repos.tickets.all_for_customer(customer_id):
            if only_new and ticket.anonymized_at is not None:
                continue
            counts = await self.anonymize_ticket(ticket, forget_customer=True, request=request)
            report.pending += counts.pop("pending", 0)
            report.add(counts)

    async def _retry_topics(self, request: PrivacyRequest) -> int:
        """Try each topic again; one that keeps failing (the bot lost its rights in the
        group) is given up after TOPIC_TRIES rounds, and the request says so for staff."""
        left: list[dict[str, Any]] = []
        given_up = 0
        for task in request.pending:
            chat_id, topic_id = task["telegram_topic"]
            if await self._erase_topic(int(chat_id), int(topic_id)):
                continue
            tries = int(task.get("tries", 0)) + 1
            if tries >= TOPIC_TRIES:
                given_up += 1
            else:
                left.append({**task, "tries": tries})
        if given_up:
            log.warning("gave up deleting staff topics", extra={"count": given_up})
            await self.repos.privacy_requests.set_fields(
                request.id, **{"detail.telegram_topics_left": str(given_up)}
            )
        await self.repos.privacy_requests.set_fields(
            request.id, pending=left, has_pending=bool(left)
        )
        return len(request.pending) - len(left) - given_up

    async def finish_pending(self) -> int:
        """Finish what erasures left: Telegram topics to delete, and erasures a process
        began and did not finish (it died). Returns how many pieces were done."""
        done = 0
        if self.topic_eraser is not None:  # no Telegram in this process: leave them be
            for request in await self.repos.privacy_requests.with_pending_work():
                done += await self._retry_topics(request)
        stale = self.clock() - ERASURE_RESUME_AFTER
        for request in await self.repos.privacy_requests.unfinished_erasures(stale):
            customer = (
                None
                if request.customer_id is None
                else await self.repos.customers.get(request.customer_id)
            )
            if customer is None:  # it died after the record went: only the requests left
                if request.customer_id is not None:
                    await self._close_erasure(request.id, request.customer_id)
                await self.close_request(request.id)
            else:
                try:
                    await self.erase(customer, by=request.by, request=request, wait=timedelta(0))
                except Busy:
                    continue  # being finished right now elsewhere
            done += 1
        return done


__all__ = [
    "ErasureReport",
    "NotTheirs",
    "PrivacyRequestState",
    "PrivacyService",
    "TopicEraser",
]
