"""The typed records the services work with and the repositories store.

Fields that hold personal data carry `json_schema_extra={"personal": True}`
(contract C3.2.5), so export, correction and erasure can find all of it by
walking the models instead of relying on a hand-kept list.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def personal(**kwargs: Any) -> Any:
    """A field that holds personal information (C3.2.5)."""
    return Field(json_schema_extra={"personal": True}, **kwargs)


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WIDGET = "widget"
    FORM = "form"  # the online form, C2.2 (1)
    PHONE = "phone"  # logged by staff on the customer's behalf, C2.2 (3)
    EMAIL = "email"  # logged by staff on the customer's behalf, C2.2 (2)
    TERMINAL = "terminal"  # `python -m bot chat`, for developers


class Category(StrEnum):
    """C2.1: eight categories plus "other"; each ticket has exactly one."""

    PRODUCT_QUALITY = "product_quality"
    SERVICE_QUALITY = "service_quality"
    PRICE = "price"
    LOGISTICS = "logistics"
    AFTER_SALES = "after_sales"
    USER_INTERFACE = "user_interface"
    FEATURE_SUGGESTION = "feature_suggestion"
    OVERALL_SATISFACTION = "overall_satisfaction"
    OTHER = "other"


class TicketStatus(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CUSTOMER = "waiting_for_customer"
    RESOLVED = "resolved"
    ADOPTED = "adopted"  # C3.1.5: the suggestion is adopted
    DECLINED = "declined"  # C3.1.5: the suggestion is not adopted, with the reason
    CLOSED = "closed"


class ConsentPurpose(StrEnum):
    PROCESSING = "processing"  # C6.2: required to handle the feedback at all
    EXPANDED_USE = "expanded_use"  # C3.1.7: optional, market analysis and product improvement
    LICENCE = "licence"  # C3.2.3: the feedback licence


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=False)


class Customer(Model):
    """One person on one channel. The id is random and says nothing about them."""

    id: str = Field(default_factory=new_id, alias="_id")
    channel: Channel
    external_id: str = personal(description="Telegram user id, widget visitor or user id")
    locale: str
    display_name: str | None = personal(default=None)
    email: str | None = personal(default=None)
    phone: str | None = personal(default=None)
    # The ticket filed last: usually the open one new words go to (found by `_id`).
    last_ticket_id: str | None = None
    # Set when their erasure begins: what is written for them from then on is taken
    # back by its writer (Repositories.fence). The record itself goes last.
    erasing_since: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConsentRecord(Model):
    """One line of the append-only consent ledger; the current state is derived from it."""

    id: str = Field(default_factory=new_id, alias="_id")
    customer_id: str
    seq: int = 0  # the ledger's order per customer (timestamps can tie)
    purpose: ConsentPurpose
    granted: bool
    notice_version: str
    text_hash: str  # sha256 of the exact text shown, in the locale shown
    locale: str
    channel: Channel
    at: datetime = Field(default_factory=utcnow)


class Attachment(Model):
    id: str = Field(default_factory=new_id)
    kind: str  # "photo" | "document"
    file_ref: str = personal(description="the channel's file id or the stored upload key")
    name: str | None = personal(default=None)
    mime_type: str | None = None
    size: int | None = None
    own_work: bool = False  # C5.2: the customer marks it as their own work


class Correction(Model):
    """A customer's correction to their ticket's text (C3.2.6): added, never overwriting."""

    at: datetime = Field(default_factory=utcnow)
    text: str = personal()


class TimelineEvent(Model):
    at: datetime = Field(default_factory=utcnow)
    kind: str  # created | status | complex | assigned | note
    actor: str  # "customer", "system", or a staff id
    from_status: TicketStatus | None = None
    to_status: TicketStatus | None = None
    detail: str | None = None


class StatusNotice(Model):
    """A status change whose message to the customer is not queued yet: stored with the
    change, in the same write, and dropped once the message is queued; left behind by a
    process that died (or lost the database) in between, it is queued later
    (TicketService.announce_left_behind)."""

    to: TicketStatus
    actor: str
    message: str | None = personal(default=None, description="the staff's words to them")


class Ticket(Model):
    id: str = Field(default_factory=new_id, alias="_id")
    reference: str = ""
    ref_year: int = 0
    ref_number: int = 0
    flow_id: str = Field(default_factory=new_id)  # idempotency: one ticket per dialogue run
    customer_id: str
    channel: Channel
    locale: str
    category: Category
    rating: int = Field(ge=1, le=5)
    text: str = personal(description="the customer's own words")
    text_own_work: bool = False  # C5.2
    attachments: list[Attachment] = Field(default_factory=list)
    expanded_use: bool = False  # C3.1.7 consent in force when the ticket was filed
    status: TicketStatus = TicketStatus.RECEIVED
    complex: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    response_due: datetime
    first_response_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    events: list[TimelineEvent] = Field(default_factory=list)
    telegram_topic_id: int | None = None  # the staff forum topic, where one is used
    telegram_topic_chat_id: int | None = None  # the staff group that topic is in
    corrections: list[Correction] = personal(default_factory=list)
    # The ticket's key in the analytics store: random, so an analytics record names no
    # ticket and no person. Kept when the ticket is anonymized (it then leads to nobody),
    # so later status changes still reach the anonymous figures.
    analytics_id: str | None = Field(default_factory=new_id)
    anonymized_at: datetime | None = None  # personal data erased (C3.2.6, C4.3)
    status_notices: dict[str, StatusNotice] = Field(default_factory=dict)  # by notice id


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class Author(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    STAFF = "staff"


class DeliveryState(StrEnum):
    PENDING = "pending"  # stored, not sent yet (or waiting for a retry)
    SENT = "sent"
    UNDELIVERABLE = "undeliverable"  # permanent failure: blocked bot, deleted chat, too many tries
    NOT_APPLICABLE = "n/a"  # inbound messages


class Delivery(Model):
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    # A text longer than a channel takes in one message goes in parts: how many of them
    # went already, so that a retry after a failure in the middle sends only the rest.
    parts_sent: int = 0


class Message(Model):
    """A message in a customer's conversation, either way. Outbound ones are the outbox."""

    id: str = Field(default_factory=new_id, alias="_id")
    customer_id: str
    channel: Channel
    ticket_id: str | None = None
    seq: int = 0  # per-customer order, for replay on reconnect
    direction: Direction
    author: Author
    kind: str = "text"  # text | ack | status | reply | notice
    text: str = personal(default="")
    attachments: list[Attachment] = Field(default_factory=list)
    idempotency_key: str = Field(default_factory=new_id)
    staff_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    delivery: Delivery = Field(default_factory=Delivery)


class StaffRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Staff(Model):
    id: str = Field(default_factory=new_id, alias="_id")
    username: str
    display_name: str
    password_hash: str
    role: StaffRole = StaffRole.AGENT
    locale: str = "zh_CN"
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class AuditEntry(Model):
    id: str = Field(default_factory=new_id, alias="_id")
    at: datetime = Field(default_factory=utcnow)
    actor: str  # staff id, "customer:<id>" or "system"
    action: str  # e.g. "customer.view", "customer.export"
    target_type: str
    target_id: str
    detail: dict[str, str] = Field(default_factory=dict)


class PrivacyRequestKind(StrEnum):
    ACCESS = "access"  # see my data
    EXPORT = "export"
    CORRECT = "correct"
    ERASE = "erase"
    WITHDRAW = "withdraw"


class PrivacyRequestState(StrEnum):
    OPEN = "open"
    DONE = "done"


class PrivacyRequest(Model):
    """A customer's request about their data (C3.2.6, PIPL), with its deadline.

    Kept as the record that the request was answered; once an erasure is done it
    holds nothing that leads back to the person (customer_id is cleared).
    """

    id: str = Field(default_factory=new_id, alias="_id")
    kind: PrivacyRequestKind
    channel: Channel  # where the customer asked (phone/e-mail: logged by staff)
    customer_id: str | None = None
    by: str  # "customer", or the staff id who logged it
    opened_at: datetime = Field(default_factory=utcnow)
    due_at: datetime
    state: PrivacyRequestState = PrivacyRequestState.OPEN
    done_at: datetime | None = None
    detail: dict[str, str] = Field(default_factory=dict)  # non-personal: purpose, reference
    # Work left after the request was answered (a Telegram topic to delete); the
    # retention job finishes it.
    pending: list[dict[str, Any]] = Field(default_factory=list)


# How many of a dialogue's latest inputs are remembered (Conversation.recent_inputs): more
# than a channel's resends can lag behind (the widget resends one input at a time).
RECENT_INPUTS = 32


class Conversation(Model):
    """The dialogue state of one customer, stored so a flow resumes anywhere."""

    id: str = Field(alias="_id")  # the customer id: one dialogue per customer
    locale: str
    step: str | None = None  # None: no flow running
    answers: dict[str, Any] = personal(default_factory=dict)  # may hold text and contact
    history: list[str] = Field(default_factory=list)  # steps passed, for "back"
    editing: bool = False  # an answer is being edited from the summary
    customer_id: str | None = None  # set once processing consent is given
    version: int = 0  # optimistic concurrency: two devices, one dialogue
    # Random, drawn when the dialogue is first stored: names its versions' claims
    # (ConversationRepository), so a dialogue started afresh after a deletion does not
    # meet the claims of the one before. None: stored before epochs existed.
    epoch: str | None = None
    last_input: str | None = None  # idempotency key of the input that made this version
    # The keys of the inputs that made the last RECENT_INPUTS versions, oldest first: a
    # copy of one of them arriving late (its first delivery was slow, the channel sent it
    # again meanwhile, and later inputs followed) is known as applied, not applied again.
    recent_inputs: list[str] = Field(default_factory=list)
    # The idempotency key of the input that made the customer's export file: the same
    # input delivered again (its answer, which carried the file, failed) makes it again.
    export_input: str | None = None
    # The privacy menu, open beside the flow: {"step": ..., "reference": ...}; None: closed.
    aside: dict[str, str] | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # When this copy was read from the database, or written (time.monotonic()); None: it
    # was made here and never stored. ConversationRepository reads the stored version
    # again before it writes a copy held long.
    _read_at: float | None = PrivateAttr(default=None)

    def applied(self, key: str | None) -> bool:
        """Whether the input with this idempotency key made one of the recent versions."""
        return key is not None and (key == self.last_input or key in self.recent_inputs)

    def made_by(self, key: str | None, **update: Any) -> Conversation:
        """A copy with `update`, recording `key` as the input that makes its next version."""
        recent = self.recent_inputs
        if key is not None and key not in recent:
            recent = [*recent, key][-RECENT_INPUTS:]
        return self.model_copy(update={**update, "last_input": key, "recent_inputs": recent})

    def __eq__(self, other: object) -> bool:
        # Equal when the same dialogue state, however long ago each copy was read.
        if not isinstance(other, Conversation):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, as every model here


def personal_fields(model: type[BaseModel]) -> list[str]:
    """Names of a model's fields marked personal."""
    return [
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("personal")
    ]
