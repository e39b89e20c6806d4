"""The online form's use case (C2.2 (1)): one page of answers in, a ticket out.

No aiohttp here: the HTTP handlers parse the request, this module validates the fields with
the dialogue's own rules (`bot.domain.flow`) and records exactly what the dialogue records:
the consents with the notice version and the hash of the text shown, then the ticket through
`TicketService.file`, so the acknowledgement, the reference and the due date are the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.channels.form import strings
from bot.domain import flow
from bot.domain.flow import FlowConfig, Input, Invalid, Option
from bot.domain.models import Channel, ConsentPurpose, Customer, Ticket, new_id
from bot.domain.text import Text
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.consents import ConsentService
from bot.services.delivery import Clock
from bot.services.tickets import TicketService
from bot.storage import Repositories

log = logging.getLogger(__name__)

# The form's field names: anything else in a submission is refused, never ignored.
FORM_ID, LANG, NOTICE_VERSION_FIELD, ACTION = "form_id", "lang", "notice_version", "action"
CONSENT_FIELDS: dict[ConsentPurpose, str] = {
    ConsentPurpose.PROCESSING: "consent_processing",
    ConsentPurpose.EXPANDED_USE: "consent_expanded_use",
    ConsentPurpose.LICENCE: "consent_licence",
}
CATEGORY, RATING, TEXT, OWN_WORK, CONTACT = "category", "rating", "text", "text_own_work", "contact"
FIELDS = frozenset(
    {FORM_ID, LANG, NOTICE_VERSION_FIELD, ACTION, CATEGORY, RATING, TEXT, OWN_WORK, CONTACT}
    | set(CONSENT_FIELDS.values())
)
TICKED = "yes"  # the value of every checkbox
SEND, DECLINE = "send", "decline"
GENERAL = "_form"  # the key of an error about the submission as a whole

FORM_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SUBMIT_LOCK_TTL = timedelta(seconds=30)
SUBMIT_LOCK_WAIT = timedelta(seconds=10)

# The consent steps, in the order the dialogue asks them.
CONSENT_STEPS = tuple(step for step in flow.FLOW if step.consent is not None)


def new_form_id() -> str:
    return new_id()


@dataclass(frozen=True)
class Submission:
    """A form that passed every check: what the dialogue would have collected."""

    form_id: str
    locale: str
    consents: Mapping[ConsentPurpose, bool]
    answers: Mapping[str, Any]


@dataclass
class Checked:
    """The outcome of validation: a submission, or the errors to show next to the fields."""

    submission: Submission | None
    errors: dict[str, Text] = field(default_factory=dict)


class FormIntake:
    def __init__(
        self,
        repos: Repositories,
        tickets: TicketService,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        config: FlowConfig,
        consents: ConsentService,
    ) -> None:
        self.consents = consents
        self.repos = repos
        self.tickets = tickets
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.config = config

    # ------------------------------------------------------------ what the form shows

    @property
    def licence_required(self) -> bool:
        return self.config.licence_required

    @property
    def notice_version(self) -> str:
        return self.config.notice_version

    def consent_text(self, purpose: ConsentPurpose) -> Text:
        """The consent step's text exactly as the dialogue shows it (and hashes it)."""
        step = next(s for s in CONSENT_STEPS if s.consent is purpose)
        return Text(step.prompt, step.params({}, self.config))

    def options(self, step_id: str) -> tuple[Option, ...]:
        return flow.STEPS[step_id].options({}, self.config)

    def text_prompt(self) -> Text:
        step = flow.STEPS[TEXT]
        return Text(step.prompt, step.params({}, self.config))

    # ------------------------------------------------------------ validation

    def check(self, fields: Mapping[str, str], locale: str, *, structural_error: bool) -> Checked:
        """Every field with the dialogue's rules; `structural_error`: unknown or repeated fields."""
        errors: dict[str, Text] = {}
        if structural_error:
            errors[GENERAL] = Text(strings.ERR_FORM)
        form_id = fields.get(FORM_ID, "")
        if not FORM_ID_RE.match(form_id):
            errors[GENERAL] = Text(strings.ERR_FORM)
        if fields.get(NOTICE_VERSION_FIELD) != self.notice_version:
            # They agreed to a text we no longer show: ask again rather than record it.
            errors[GENERAL] = Text(strings.ERR_STALE)

        consents = {purpose: fields.get(name) == TICKED for purpose, name in CONSENT_FIELDS.items()}
        if not consents[ConsentPurpose.PROCESSING]:
            errors[CONSENT_FIELDS[ConsentPurpose.PROCESSING]] = Text(strings.ERR_NOTICE)
        if self.licence_required and not consents[ConsentPurpose.LICENCE]:
            errors[CONSENT_FIELDS[ConsentPurpose.LICENCE]] = Text(strings.ERR_LICENCE)

        answers: dict[str, Any] = {"attachments": [], OWN_WORK: fields.get(OWN_WORK) == TICKED}
        parsers: tuple[tuple[str, Input], ...] = (
            (CATEGORY, Input.choice(fields.get(CATEGORY, ""))),
            (RATING, Input.choice(fields.get(RATING, ""))),
            (TEXT, Input.text(fields.get(TEXT, ""))),
        )
        for step_id, inp in parsers:
            step = flow.STEPS[step_id]
            try:
                answers.update(step.parse(inp, answers, self.config, self.options(step_id)))
            except Invalid as invalid:
                # The dialogue's generic "choose one of the options" says less on a page.
                errors[step_id] = (
                    Text(strings.ERR_CATEGORY) if step_id == CATEGORY else invalid.message
                )
        contact = fields.get(CONTACT, "")
        answers[CONTACT] = {}
        if flow.clean_text(contact):
            try:
                answers[CONTACT] = flow.parse_contact(contact)
            except Invalid:
                errors[CONTACT] = Text(strings.ERR_CONTACT)

        if errors:
            return Checked(None, errors)
        return Checked(Submission(form_id, locale, consents, answers))

    # ------------------------------------------------------------ effects

    async def decline(self) -> None:
        """Processing consent declined: an anonymous count, nothing about the person (C6.2)."""
        await self.consents.refused(Channel.FORM)

    async def submit(self, submission: Submission) -> Ticket:
        """Record the consents and file the ticket, once per form id.

        The form id doubles as the customer's anonymous external id and names the ticket's
        flow, so a second submission of the same page (a double click, a reload, a retry
        after a lost response) finds what the first one stored and files nothing new.
        """
        self.metrics.dialogue_events.labels(Channel.FORM.value).inc()
        form_id = submission.form_id
        async with self.repos.locks.hold(f"form:{form_id}", SUBMIT_LOCK_TTL, wait=SUBMIT_LOCK_WAIT):
            customer = await self.repos.customers.get_or_create(
                Channel.FORM, form_id, submission.locale
            )
            await self._record_consents(customer, submission)
            ticket = await self.tickets.file(
                customer, Channel.FORM, submission.answers, flow_id=f"form:{form_id}"
            )
        if ticket.customer_id != customer.id:  # a flow id is never shared: refuse, loudly
            raise RuntimeError("form flow id belongs to another customer")
        return ticket

    async def _record_consents(self, customer: Customer, submission: Submission) -> None:
        # A retried submission finds the consents of the first one: they are not recorded twice.
        recorded = await self.repos.consents.current(customer.id)
        for step in CONSENT_STEPS:
            assert step.consent is not None  # noqa: S101 - CONSENT_STEPS holds consent steps
            if step.consent in recorded:
                continue
            await self.consents.record(
                customer,
                step.consent,
                granted=submission.consents[step.consent],
                shown=self.consent_text(step.consent),
                locale=submission.locale,
                channel=Channel.FORM,
            )
