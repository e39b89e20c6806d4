"""The privacy menu in a conversation: what each choice does (bot/domain/privacy_menu.py
says what is asked; bot/services/privacy.py does the work and logs each request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import privacy_menu as pm
from bot.domain.flow import (
    CATEGORY_LABELS,
    Command,
    FlowConfig,
    Input,
    Invalid,
    Option,
    Prompt,
    Say,
    choose,
)
from bot.domain.models import ConsentPurpose, Conversation, Customer
from bot.domain.text import N_, Param, Text, Verbatim
from bot.domain.tickets import STATUS_LABELS
from bot.i18n import I18n
from bot.services.privacy import NotTheirs, PrivacyService
from bot.storage import Repositories

SUMMARY = N_(
    "What we hold about you:\n\n"
    "Who you are here: {channel}, ID {identity}\n"
    "Language: {language}\n"
    "Contact details: {contact}\n\n"
    "Your feedback:\n{tickets}\n\n"
    "Your consents:\n{consents}\n\n"
    "We also keep our messages to each other and any files you sent with your feedback. "
    "Choose “Download a copy” in /privacy for all of it."
)
SUMMARY_TICKET = N_("{reference}: {category}, {status}, sent on {date}")
SUMMARY_TICKET_ANONYMOUS = N_("{reference}: deleted, only anonymous figures are kept")
SUMMARY_CONSENT = N_("{purpose}: {decision} on {date} (notice version {version})")
GIVEN, REFUSED = N_("given"), N_("not given or withdrawn")
NONE = N_("none")
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
EXPORT_READY = N_(
    "Here is a copy of all your data as a JSON file (format {format}, version {version}): "
    "your details, feedback, messages, file references and consent records."
)
CONTACT_UPDATED = N_("Your contact details are now: {contact}.")
CONTACT_REMOVED = N_("Your contact details have been removed.")
CORRECTION_ADDED = N_(
    "Your correction was added to {reference}. Our staff see it beside your original words."
)
NOT_CORRECTABLE = N_("That feedback can no longer be corrected.")
WITHDRAWN = N_(
    "Withdrawn: {purpose}. This takes effect now and is recorded. It does not change how we "
    "handle your feedback."
)
KEPT = N_("Nothing was deleted.")
ERASED = N_(
    "Your data has been deleted. We keep only anonymous figures, which do not identify you. "
    "If you write to us again, we will start afresh and ask for your agreement first."
)
PURPOSES = {
    ConsentPurpose.PROCESSING: N_("processing of your data to handle your feedback"),
    ConsentPurpose.EXPANDED_USE: N_("use for market analysis and product improvement"),
    ConsentPurpose.LICENCE: N_("the licence for your feedback"),
}


@dataclass(frozen=True)
class ExportFile:
    name: str
    mime_type: str
    content: bytes


@dataclass
class MenuOutcome:
    """What a menu input did. `aside` is the menu's next state (None: closed)."""

    aside: dict[str, str] | None
    replies: list[Prompt | Say] = field(default_factory=list)
    file: ExportFile | None = None
    erased: bool = False
    passthrough: bool = False  # the menu closed; the input is for the feedback flow


class PrivacyMenu:
    def __init__(
        self, repos: Repositories, privacy: PrivacyService, i18n: I18n, config: FlowConfig
    ) -> None:
        self.repos = repos
        self.privacy = privacy
        self.i18n = i18n
        self.config = config

    # ------------------------------------------------------------ entry

    def open(self) -> MenuOutcome:
        return MenuOutcome({"step": pm.MENU})

    async def current(self, aside: dict[str, str] | None, customer: Customer) -> Prompt:
        """The question the menu is at (`aside`: the menu's state; None: its start)."""
        aside = aside or {"step": pm.MENU}
        step = aside["step"]
        if step == pm.MENU:
            return pm.prompt(pm.MENU, pm.menu_options(await self._facts(customer)))
        if step == pm.CONTACT:
            return pm.prompt(
                pm.CONTACT,
                (Option(pm.REMOVE, Text(N_("Remove them"))),),
                {"contact": self._contact(customer)},
            )
        if step == pm.TICKET:
            return pm.prompt(pm.TICKET, await self._ticket_options(customer))
        if step == pm.CORRECTION:
            params: dict[str, Param] = {
                "reference": aside.get("reference", ""),
                "min": self.config.text_min,
                "max": self.config.text_max,
            }
            return pm.prompt(pm.CORRECTION, params=params)
        if step == pm.WITHDRAW:
            return pm.prompt(pm.WITHDRAW, await self._withdraw_options(customer))
        return pm.prompt(
            pm.ERASE,
            (
                Option(pm.ERASE_YES, Text(N_("Yes, delete my data"))),
                Option(pm.ERASE_NO, Text(N_("No, keep it"))),
            ),
        )

    async def handle(
        self, conversation: Conversation, customer: Customer, inp: Input
    ) -> MenuOutcome:
        aside = conversation.aside or {"step": pm.MENU}
        step = aside["step"]
        if inp.kind == "command":
            command = Command(inp.value)
            if command is Command.HELP:
                return MenuOutcome(
                    aside, [Say(Text(pm.MENU_HELP)), await self.current(aside, customer)]
                )
            if command is Command.BACK and step != pm.MENU:
                return await self._to({"step": pm.MENU}, customer)
            if command is Command.START:
                return MenuOutcome(None, passthrough=True)
            return MenuOutcome(None, [Say(Text(pm.CLOSED))])  # cancel, or back from the menu
        shown = await self.current(aside, customer)
        try:
            return await self._answer(step, aside, customer, inp, shown)
        except Invalid as invalid:
            again = Prompt(
                shown.step, shown.text, shown.options, invalid.message, shown.can_go_back
            )
            return MenuOutcome(aside, [again])

    # ------------------------------------------------------------ the choices

    async def _answer(
        self, step: str, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        answer = {
            pm.MENU: self._menu,
            pm.CONTACT: self._new_contact,
            pm.TICKET: self._pick_ticket,
            pm.CORRECTION: self._correction,
            pm.WITHDRAW: self._withdraw,
            pm.ERASE: self._erase,
        }[step]
        return await answer(aside, customer, inp, shown)

    async def _menu(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        choice = choose(inp, shown.options)
        if choice == pm.SEE:
            await self.privacy.access(customer)
            return MenuOutcome(None, [Say(await self.summary(customer))])
        if choice == pm.EXPORT:
            return await self.export(customer)
        if choice == pm.CORRECT:
            options = await self._ticket_options(customer)
            if len(options) == 1:
                return await self._to(
                    {"step": pm.CORRECTION, "reference": options[0].value}, customer
                )
            return await self._to({"step": pm.TICKET}, customer)
        return await self._to({"step": choice}, customer)  # contact, withdraw, erase

    async def export(self, customer: Customer) -> MenuOutcome:
        """Everything held about the customer, as a file in the chat (logged as answered)."""
        document = await self.privacy.export(customer)
        file = ExportFile(
            self.privacy.export_filename(),
            "application/json",
            self.privacy.export_bytes(document),
        )
        params: dict[str, Param] = {"format": document["format"], "version": document["version"]}
        return MenuOutcome(None, [Say(Text(EXPORT_READY, params))], file=file)

    async def _new_contact(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        contact = pm.contact(inp)
        await self.privacy.correct_contact(
            customer,
            email=(contact or {}).get("email"),
            phone=(contact or {}).get("phone"),
        )
        if contact is None:
            return MenuOutcome(None, [Say(Text(CONTACT_REMOVED))])
        value = Verbatim(contact.get("email") or contact["phone"])
        return MenuOutcome(None, [Say(Text(CONTACT_UPDATED, {"contact": value}))])

    async def _pick_ticket(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        reference = choose(inp, shown.options)
        return await self._to({"step": pm.CORRECTION, "reference": reference}, customer)

    async def _correction(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        text = pm.correction(inp, self.config.text_min, self.config.text_max)
        reference = aside.get("reference", "")
        ticket = await self.repos.tickets.by_reference(reference)
        if ticket is None:
            return MenuOutcome(None, [Say(Text(NOT_CORRECTABLE))])
        try:
            await self.privacy.correct_ticket(customer, ticket.id, text)
        except NotTheirs:
            return MenuOutcome(None, [Say(Text(NOT_CORRECTABLE))])
        return MenuOutcome(None, [Say(Text(CORRECTION_ADDED, {"reference": reference}))])

    async def _withdraw(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        purpose = ConsentPurpose(choose(inp, shown.options))
        if purpose is ConsentPurpose.PROCESSING:
            return await self._to({"step": pm.ERASE}, customer)
        await self.privacy.withdraw(customer, purpose, shown=shown.text)
        return MenuOutcome(None, [Say(Text(WITHDRAWN, {"purpose": Text(PURPOSES[purpose])}))])

    async def _erase(
        self, aside: dict[str, str], customer: Customer, inp: Input, shown: Prompt
    ) -> MenuOutcome:
        if choose(inp, shown.options) != pm.ERASE_YES:
            return MenuOutcome(None, [Say(Text(KEPT))])
        await self.privacy.erase(customer)
        return MenuOutcome(None, [Say(Text(ERASED))], erased=True)

    async def _to(self, aside: dict[str, str], customer: Customer) -> MenuOutcome:
        return MenuOutcome(aside, [await self.current(aside, customer)])

    # ------------------------------------------------------------ what they have

    async def _ticket_options(self, customer: Customer) -> tuple[Option, ...]:
        return tuple(
            Option(
                t.reference,
                Text(
                    N_("{reference}: {category}"),
                    {"reference": t.reference, "category": Text(CATEGORY_LABELS[t.category])},
                ),
            )
            for t in await self.privacy.correctable(customer)
        )

    async def _withdraw_options(self, customer: Customer) -> tuple[Option, ...]:
        purposes = [*await self.privacy.withdrawable(customer), ConsentPurpose.PROCESSING]
        return tuple(Option(p.value, Text(pm.PURPOSE_LABELS[p])) for p in purposes)

    async def _facts(self, customer: Customer) -> pm.MenuFacts:
        return pm.MenuFacts(
            can_correct=bool(await self.privacy.correctable(customer)),
            withdrawable=await self.privacy.withdrawable(customer),
        )

    @staticmethod
    def _contact(customer: Customer) -> Param:
        value = " / ".join(v for v in (customer.email, customer.phone) if v)
        return Verbatim(value) if value else Text(NONE)

    async def summary(self, customer: Customer) -> Text:
        """A readable summary of what is held, in the customer's language."""
        locale = customer.locale
        render = self.i18n.render

        def day(value: datetime) -> str:
            return self.i18n.format_date(locale, value.date())

        tickets = await self.repos.tickets.all_for_customer(customer.id)
        ticket_lines = [
            render(
                locale,
                Text(SUMMARY_TICKET_ANONYMOUS, {"reference": t.reference})
                if t.anonymized_at
                else Text(
                    SUMMARY_TICKET,
                    {
                        "reference": t.reference,
                        "category": Text(CATEGORY_LABELS[t.category]),
                        "status": Text(STATUS_LABELS[t.status]),
                        "date": day(t.created_at),
                    },
                ),
            )
            for t in tickets
        ]
        consents = await self.repos.consents.current(customer.id)
        consent_lines = [
            render(
                locale,
                Text(
                    SUMMARY_CONSENT,
                    {
                        "purpose": Text(PURPOSES[purpose]),
                        "decision": Text(GIVEN if record.granted else REFUSED),
                        "date": day(record.at),
                        "version": record.notice_version,
                    },
                ),
            )
            for purpose, record in sorted(consents.items())
        ]
        none = render(locale, Text(NONE))
        return Text(
            SUMMARY,
            {
                "channel": Text(pm.CHANNEL_LABELS[customer.channel]),
                "identity": Verbatim(customer.external_id),
                "language": LANGUAGE_NAMES.get(customer.locale, customer.locale),
                "contact": self._contact(customer),
                "tickets": "\n".join(ticket_lines) or none,
                "consents": "\n".join(consent_lines) or none,
            },
        )
