"""The dialogue use case: one customer input in, what to show out.

Channels call `handle` with a parsed input and render the returned `Rendered`
replies; they know nothing of steps, consents or tickets. State lives in the
conversations collection, so a flow resumes exactly where it was after a
restart or from another device.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.domain import flow
from bot.domain.flow import Command, Facts, FlowConfig, Input, Prompt, Say, Transition
from bot.domain.models import Channel, ConsentPurpose, Conversation, Customer, Message
from bot.domain.privacy import NOTICE_VERSION, conversation_key
from bot.domain.privacy_menu import NOTHING_HELD
from bot.domain.text import N_, Text
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.consents import ConsentService
from bot.services.delivery import Clock
from bot.services.privacy import PrivacyService
from bot.services.privacy_dialogue import ERASED, ExportFile, MenuOutcome, PrivacyMenu
from bot.services.tickets import NO_TICKETS, TicketService
from bot.storage import CustomerErased, Repositories
from bot.storage.conversations import ConcurrentUpdate
from bot.storage.database import Inserted

log = logging.getLogger(__name__)

ADDED_TO_TICKET = N_(
    "Added to your feedback {reference}. We will reply here. Send /start to give new feedback."
)
NO_FLOW_HELP = N_(
    "I collect feedback about our products and services. Send /start to give feedback, "
    "/status to see your feedback, /language to switch between 中文 and English, "
    "/privacy for your data and consents."
)
LANGUAGE_SET = N_("Language set to English.")
BACK, CANCEL, HELP = N_("Back"), N_("Cancel"), N_("Help")
HINT = N_("You can go back or cancel at any time.")
WORDS = ("text", "file")  # inputs that go onto an open ticket as a message outside a flow


@dataclass(frozen=True)
class RenderedOption:
    value: str
    label: str


@dataclass(frozen=True)
class Rendered:
    """A reply in the customer's language, ready for a channel to draw."""

    text: str
    options: tuple[RenderedOption, ...] = ()
    controls: tuple[RenderedOption, ...] = ()  # back / cancel / help, values "cmd:<name>"
    step: str | None = None
    input_kind: str | None = None
    error: str | None = None
    hint: str | None = None
    file: ExportFile | None = None  # a file to send with the text (a data export)
    erased: bool = False  # the customer's data was just erased: a channel forgets them too


@dataclass(frozen=True)
class Handled:
    """What one input did: the replies, and the customer's words when they went onto
    their open ticket as a message (`created` False: that input was stored before)."""

    replies: list[Rendered]
    stored: Inserted[Message] | None = None
    # The customer's language and the question they are at after it (what `current`
    # answers), when that is known without reading it again; None: ask `current`.
    where: tuple[str, Rendered | None] | None = None


class DialogueService:
    def __init__(
        self,
        repos: Repositories,
        tickets: TicketService,
        i18n: I18n,
        metrics: Metrics,
        clock: Clock,
        config: FlowConfig,
        consents: ConsentService,
        privacy: PrivacyService,
    ) -> None:
        self.consents = consents
        self.privacy = privacy
        self.privacy_menu = PrivacyMenu(repos, privacy, i18n, config)
        self.repos = repos
        self.tickets = tickets
        self.i18n = i18n
        self.metrics = metrics
        self.clock = clock
        self.config = config

    # ------------------------------------------------------------ entry points

    async def handle(
        self,
        channel: Channel,
        external_id: str,
        inp: Input,
        *,
        locale_hint: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[Rendered]:
        handled = await self.handle_input(
            channel, external_id, inp, locale_hint=locale_hint, idempotency_key=idempotency_key
        )
        return handled.replies

    async def handle_input(
        self,
        channel: Channel,
        external_id: str,
        inp: Input,
        *,
        locale_hint: str | None = None,
        idempotency_key: str | None = None,
    ) -> Handled:
        self.metrics.dialogue_events.labels(channel.value).inc()
        for _ in range(3):
            try:
                return await self._handle_once(
                    channel, external_id, inp, locale_hint, idempotency_key
                )
            except ConcurrentUpdate:
                # Another device answered at the same moment: apply ours to the new state.
                continue
            except CustomerErased as erased:
                # Their erasure (from another device, or by staff) began meanwhile, and
                # what this input wrote was taken back: say so, as the menu does. One
                # left half-done long ago (its process died) is finished now: their next
                # input starts afresh, not at the retention job's next round.
                await self.privacy.finish_stalled(erased.customer_id)
                reply = self._say(self.i18n.negotiate(locale_hint), Text(ERASED))
                return Handled([replace(reply, erased=True)])
        raise ConcurrentUpdate(conversation_key(channel.value, external_id))

    async def set_language(self, channel: Channel, external_id: str, locale: str) -> list[Rendered]:
        locale = self.i18n.normalize(locale)
        conversation, customer = await self._who(channel, external_id, locale)
        if customer is not None:
            await self.repos.customers.update_fields(customer.id, locale=locale)
        if conversation.version == 0 and conversation.step is None:
            return [self._say(locale, Text(LANGUAGE_SET))]
        changed = conversation.model_copy(update={"locale": locale})
        saved = await self.repos.conversations.save(changed)
        return [self._say(locale, Text(LANGUAGE_SET)), *self._where(locale, saved)]

    async def status(
        self, channel: Channel, external_id: str, locale_hint: str | None = None
    ) -> list[Rendered]:
        conversation, customer = await self._who(channel, external_id, locale_hint)
        locale = customer.locale if customer else conversation.locale
        if customer is None:
            return [self._say(locale, Text(NO_TICKETS))]
        return [self._say(locale, await self.tickets.status_report(customer))]

    async def current(
        self, channel: Channel, external_id: str, locale_hint: str | None = None
    ) -> tuple[str, Rendered | None]:
        """The customer's language and the question they are at (None: no flow running)."""
        conversation, customer = await self._who(channel, external_id, locale_hint)
        locale = customer.locale if customer else conversation.locale
        prompt = await self._here(locale, conversation, customer)
        return locale, prompt[0] if prompt else None

    async def say(
        self, channel: Channel, external_id: str, text: Text, locale_hint: str | None = None
    ) -> Rendered:
        """Render a fixed message in this customer's language (for channel notices)."""
        conversation, customer = await self._who(channel, external_id, locale_hint)
        return self._say(customer.locale if customer else conversation.locale, text)

    async def customer(self, channel: Channel, external_id: str) -> Customer | None:
        """The customer behind a channel identity, if they agreed to be kept."""
        return (await self._who(channel, external_id, None))[1]

    # ------------------------------------------------------------ the privacy menu

    async def _open_privacy(
        self, conversation: Conversation, customer: Customer | None, key: str | None
    ) -> list[Rendered]:
        locale = customer.locale if customer else conversation.locale
        if customer is None:
            return [self._say(locale, Text(NOTHING_HELD)), *self._where(locale, conversation)]
        outcome = self.privacy_menu.open()
        saved = await self.repos.conversations.save(conversation.made_by(key, aside=outcome.aside))
        return await self._here(locale, saved, customer)

    async def _privacy_input(
        self, conversation: Conversation, customer: Customer, inp: Input, key: str | None
    ) -> list[Rendered] | None:
        """Apply an input to the open privacy menu; None: it closed, the input is the flow's."""
        locale = customer.locale
        aside_step = (conversation.aside or {}).get("step")
        if inp.kind != "command" and inp.step is not None and inp.step != aside_step:
            return await self._here(locale, conversation, customer)  # an old button
        outcome: MenuOutcome = await self.privacy_menu.handle(conversation, customer, inp)
        if outcome.passthrough:
            return None
        replies = self._menu_replies(customer, outcome)
        if outcome.erased:
            # Everything about them is gone, the dialogue state with it: store nothing.
            return [replace(reply, erased=True) for reply in replies]
        update: dict[str, Any] = {"aside": outcome.aside}
        if outcome.file is not None:
            update["export_input"] = key
        saved = await self.repos.conversations.save(conversation.made_by(key, **update))
        if outcome.aside is None:  # closed: back to the question they were at, if any
            replies += self._where(locale, saved)
        return replies

    def _menu_replies(self, customer: Customer, outcome: MenuOutcome) -> list[Rendered]:
        """A menu input's replies in the customer's language, its file on the first."""
        replies = [self._render(customer.locale, reply) for reply in outcome.replies]
        if outcome.file is not None and replies:
            replies[0] = replace(replies[0], file=outcome.file)
        return replies

    async def _here(
        self, locale: str, conversation: Conversation, customer: Customer | None
    ) -> list[Rendered]:
        """Where the customer is: the privacy menu's question, or the flow's."""
        if conversation.aside is not None and customer is not None:
            menu = await self.privacy_menu.current(conversation.aside, customer)
            return [self._render_prompt(locale, menu)]
        return self._where(locale, conversation)

    # ------------------------------------------------------------ internals

    async def _conversation(
        self, channel: Channel, external_id: str, locale_hint: str | None
    ) -> Conversation:
        key = conversation_key(channel.value, external_id)
        stored = await self.repos.conversations.get(key)
        if stored is not None:
            return stored
        return Conversation(id=key, locale=self.i18n.negotiate(locale_hint))

    async def _who(
        self, channel: Channel, external_id: str, locale_hint: str | None
    ) -> tuple[Conversation, Customer | None]:
        """The dialogue of this identity, and its customer: by the id the dialogue keeps,
        else by the channel identity (its key; both look-ups by `_id`)."""
        conversation = await self._conversation(channel, external_id, locale_hint)
        return conversation, await self._customer_of(conversation, channel, external_id)

    async def _customer_of(
        self, conversation: Conversation, channel: Channel, external_id: str
    ) -> Customer | None:
        if conversation.customer_id is not None:
            customer = await self.repos.customers.get(conversation.customer_id)
            if customer is not None and (customer.channel, customer.external_id) == (
                channel,
                external_id,
            ):
                return customer
        return await self.repos.customers.find(channel, external_id)

    async def _facts(self, customer: Customer | None) -> Facts:
        if customer is None:
            return Facts()
        decided = set()
        for purpose, record in (await self.repos.consents.current(customer.id)).items():
            if record.notice_version != NOTICE_VERSION:
                continue  # agreed to an older text: ask again
            if record.granted or purpose is ConsentPurpose.EXPANDED_USE:
                decided.add(purpose)
        return Facts(decided=frozenset(decided))

    async def _handle_once(
        self,
        channel: Channel,
        external_id: str,
        inp: Input,
        locale_hint: str | None,
        idempotency_key: str | None,
    ) -> Handled:
        conversation = await self._conversation(channel, external_id, locale_hint)
        locale = conversation.locale
        # The customer is read only when this input needs them: a step inside the flow
        # with nothing to record does not (one database command less per step).
        known: list[Customer | None] = []

        async def who() -> Customer | None:
            if not known:
                known.append(await self._customer_of(conversation, channel, external_id))
            return known[0]

        again = await self._again(conversation, inp, idempotency_key, who)
        if again is not None:
            return again

        if inp.kind == "command" and inp.value == Command.PRIVACY:
            return Handled(await self._open_privacy(conversation, await who(), idempotency_key))
        if conversation.aside is not None:
            customer = await who()
            if customer is None:  # erased on another device meanwhile
                conversation = conversation.model_copy(update={"aside": None})
            else:
                replies = await self._privacy_input(conversation, customer, inp, idempotency_key)
                if replies is not None:
                    return Handled(replies)
                conversation = conversation.model_copy(update={"aside": None})

        stale_choice = inp.kind == "choice" and conversation.step is None
        if stale_choice or (
            inp.kind != "command" and inp.step is not None and inp.step != conversation.step
        ):
            # An answer to another question (a button pressed twice, an old message, a
            # resend after another device moved on): not an answer to this one, and not
            # words for the ticket either. Show where they are.
            return Handled(self._where(locale, conversation))

        if conversation.step is None and inp.kind != "command":
            # Outside the flow: words and files go onto the open ticket, if there is one.
            customer = await who()
            if customer is not None:
                handled = await self._onto_ticket(customer, inp, idempotency_key)
                if handled is not None:
                    return handled
            inp = Input.command(Command.START)
        elif conversation.step is None and inp.value in (
            Command.BACK,
            Command.CANCEL,
            Command.HELP,
        ):
            return Handled([self._say(locale, Text(NO_FLOW_HELP))])

        return await self._flow_step(conversation, inp, who, channel, external_id, idempotency_key)

    async def _again(
        self,
        conversation: Conversation,
        inp: Input,
        key: str | None,
        who: Callable[[], Awaitable[Customer | None]],
    ) -> Handled | None:
        """The answer to an input delivered again, or None: it is new."""
        locale = conversation.locale
        if conversation.applied(key):
            # The same input delivered again (a channel retrying after a failure, or a late
            # copy of it after later inputs): it was applied once already, so only show
            # where the customer is now; or, when it asked for their export, make the file
            # again: the answer that failed may have been the one that carried it.
            customer = await who()
            if conversation.export_input == key and customer is not None:
                outcome = await self.privacy_menu.export(customer)
                return Handled(
                    self._menu_replies(customer, outcome) + self._where(locale, conversation)
                )
            return Handled(await self._here(locale, conversation, customer))
        if key is not None and conversation.step is not None and inp.kind in WORDS:
            # Words sent again that were kept on a ticket before this flow began (their
            # answer was lost; meanwhile another device started a new feedback): a
            # duplicate, not the answer to the new flow's question. One read by `_id`.
            earlier = await self.repos.messages.by_idempotency_key(key, legacy=False)
            if earlier is not None:
                return Handled([], Inserted(earlier, created=False))
        return None

    async def _flow_step(
        self,
        conversation: Conversation,
        inp: Input,
        who: Callable[[], Awaitable[Customer | None]],
        channel: Channel,
        external_id: str,
        idempotency_key: str | None,
    ) -> Handled:
        """A step of the feedback flow; the customer is read only if the step needs them."""
        facts = await self._facts(await who()) if flow.needs_facts(conversation, inp) else Facts()
        transition = flow.handle(conversation, inp, self.config, facts)
        locale = conversation.locale
        if transition.effects or transition.ended:
            # The next version is claimed before the effects: a step from a stale copy
            # (another device answered first) is refused before it records a consent or
            # files a ticket, not after.
            async with self.repos.conversations.next_version(conversation):
                customer = await self._apply(transition, channel, external_id, await who(), locale)
                await self._store(transition, customer, idempotency_key)
        else:  # nothing about the customer changes, nor which customer the dialogue is of
            await self._store(transition, None, idempotency_key)
        return Handled([self._render(locale, reply) for reply in transition.replies])

    async def _onto_ticket(
        self, customer: Customer, inp: Input, idempotency_key: str | None
    ) -> Handled | None:
        """Words or a file outside the flow, onto the open ticket; None: there is none."""
        ticket = await self.repos.tickets.latest_open(customer.id, customer.last_ticket_id)
        if ticket is None:
            if idempotency_key is not None:
                earlier = await self.repos.messages.by_idempotency_key(idempotency_key)
                if earlier is not None:  # kept on a ticket that was closed since
                    return Handled([], Inserted(earlier, created=False))
            return None
        attachments = [inp.attachment] if inp.attachment is not None else []
        text = flow.clean_text(inp.value)  # the words, or a file's caption
        stored = await self.tickets.add_customer_message(
            customer, ticket, text, attachments=attachments, idempotency_key=idempotency_key
        )
        added = Text(ADDED_TO_TICKET, {"reference": ticket.reference})
        # No flow runs and no menu is open (the menu lets only /start through), and
        # nothing was saved: they are at no question, in their language.
        return Handled([self._say(customer.locale, added)], stored, (customer.locale, None))

    async def _apply(
        self,
        transition: Transition,
        channel: Channel,
        external_id: str,
        customer: Customer | None,
        locale: str,
    ) -> Customer | None:
        for effect in transition.effects:
            if isinstance(effect, flow.RefuseProcessing):
                await self.consents.refused(channel)
            elif isinstance(effect, flow.RecordConsent):
                if customer is None:
                    # Processing consent given: from here on we may keep who they are.
                    customer = await self.repos.customers.get_or_create(
                        channel, external_id, locale
                    )
                await self.consents.record(
                    customer,
                    effect.purpose,
                    granted=effect.granted,
                    shown=effect.shown,
                    locale=locale,
                    channel=channel,
                )
            elif isinstance(effect, flow.FileTicket):
                assert customer is not None  # noqa: S101 - consent steps come before the summary
                await self.tickets.file(customer, channel, effect.answers, flow_id=effect.flow_id)
        return customer

    async def _store(
        self, transition: Transition, customer: Customer | None, input_key: str | None
    ) -> None:
        conversation = transition.conversation.made_by(input_key)
        if customer is None and transition.ended:
            # Declined (or cancelled) before agreeing to anything: keep nothing.
            await self.repos.conversations.delete(conversation)
            return
        if customer is not None and conversation.customer_id != customer.id:
            conversation = conversation.model_copy(update={"customer_id": customer.id})
        await self.repos.conversations.save(conversation)

    # ------------------------------------------------------------ rendering

    def _where(self, locale: str, conversation: Conversation) -> list[Rendered]:
        """The question the conversation is at, or nothing when no flow runs."""
        if conversation.step is None:
            return []
        step = flow.STEPS[conversation.step]
        return [self._render_prompt(locale, flow.prompt_for(step, conversation, self.config))]

    def _say(self, locale: str, text: Text) -> Rendered:
        return Rendered(text=self.i18n.render(locale, text))

    def _render(self, locale: str, reply: Prompt | Say) -> Rendered:
        if isinstance(reply, Say):
            return self._say(locale, reply.text)
        return self._render_prompt(locale, reply)

    def _render_prompt(self, locale: str, prompt: Prompt) -> Rendered:
        render = self.i18n.render
        controls = (
            [RenderedOption("cmd:back", render(locale, Text(BACK)))] if prompt.can_go_back else []
        )
        controls += [
            RenderedOption("cmd:cancel", render(locale, Text(CANCEL))),
            RenderedOption("cmd:help", render(locale, Text(HELP))),
        ]
        error = render(locale, prompt.error) if prompt.error else None
        body = render(locale, prompt.text)
        return Rendered(
            text=f"{error}\n\n{body}" if error else body,
            options=tuple(RenderedOption(o.value, render(locale, o.label)) for o in prompt.options),
            controls=tuple(controls),
            step=prompt.step.id,
            input_kind=prompt.step.kind.value,
            error=error,
            hint=render(locale, Text(HINT)),
        )
