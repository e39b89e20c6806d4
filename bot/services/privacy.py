"""Customers' rights over their data (C3.2.6, C6.1; PIPL: access and copy, correction,
deletion, withdrawal of consent), the same from every channel and from the staff tools.

Every request is logged in privacy_requests with its deadline and answered at once
when the customer asks themselves; staff see the log in the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain.models import (
    Channel,
    ConsentPurpose,
    Customer,
    PrivacyRequest,
    PrivacyRequestKind,
    Ticket,
)
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.consents import ConsentService
from bot.services.delivery import Clock
from bot.storage import Repositories


class TopicEraser(Protocol):
    """Deletes a ticket's copy in the staff's Telegram forum topic; False: try again later."""

    async def __call__(self, chat_id: int, topic_id: int) -> bool: ...


@dataclass
class ErasureReport:
    """What an erasure removed, by collection (counts only: no personal data)."""

    request_id: str
    removed: dict[str, int] = field(default_factory=dict)
    pending: int = 0  # clean-up left for the retention job (a Telegram topic to delete)


class PrivacyService:
    def __init__(
        self,
        repos: Repositories,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        consents: ConsentService,
        *,
        request_days: int,
    ) -> None:
        self.repos = repos
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.consents = consents
        self.request_days = request_days
        self.topic_eraser: TopicEraser | None = None  # set by the Telegram channel

    async def log_request(
        self,
        customer: Customer | None,
        kind: PrivacyRequestKind,
        *,
        channel: Channel,
        by: str,
        detail: dict[str, str] | None = None,
    ) -> PrivacyRequest:
        """Log a request, open, due in privacy_request_days."""
        raise NotImplementedError

    async def close_request(self, request_id: str, detail: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    async def find_customers(self, term: str) -> list[Customer]:
        """Customers matching a customer id, a ticket reference, an e-mail or a phone number
        (for requests that arrive by phone or e-mail)."""
        raise NotImplementedError

    async def export(
        self, customer: Customer, *, by: str = "customer", request: PrivacyRequest | None = None
    ) -> dict[str, Any]:
        """The export document (format in docs/data-export.md). Closes `request`, or logs a
        new export request as answered."""
        raise NotImplementedError

    @staticmethod
    def export_bytes(document: dict[str, Any]) -> bytes:
        """The export as a UTF-8 JSON file."""
        raise NotImplementedError

    async def anonymize_ticket(self, ticket: Ticket) -> dict[str, int]:
        """Erase one ticket's personal data: its text, corrections, attachments, uploads,
        messages, timeline details and staff topic; keep category, rating, dates, status."""
        raise NotImplementedError

    async def erase(
        self, customer: Customer, *, by: str = "customer", request: PrivacyRequest | None = None
    ) -> ErasureReport:
        """Erase everything about the customer, everywhere; tickets keep anonymous fields.
        Closes `request`, or logs a new erase request as answered. Idempotent."""
        raise NotImplementedError

    async def withdraw(self, customer: Customer, purpose: ConsentPurpose, *, by: str) -> None:
        raise NotImplementedError

    async def finish_pending(self) -> int:
        """Retry clean-up left by erasures (Telegram topics); returns how many are done."""
        raise NotImplementedError
