"""Staff handoff inside Telegram: a supergroup with forum topics, one topic per ticket.

The topic opens with a ticket card; the customer's later messages are copied in;
a staff member's message in the topic is a reply to the customer, unless it
starts with the note prefix, in which case it stays an internal note. The web
console and these topics are two views of the same tickets.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Message as TgMessage

from bot.channels.telegram.filters import checked_in_place
from bot.channels.telegram.sender import RateLimiter
from bot.domain.flow import CATEGORY_LABELS
from bot.domain.models import Attachment, Channel, Customer, Message, Ticket, TimelineEvent
from bot.domain.text import N_, Text
from bot.i18n import I18n
from bot.services.tickets import TicketService

log = logging.getLogger(__name__)

CARD = N_(
    "New feedback {reference}\nCategory: {category}\nRating: {rating} of 5\n"
    "Channel: {channel} · Language: {locale}\nFirst response due: {due}\n\n{text}\n\n"
    "Reply in this topic to answer the customer; start with {prefix} for an internal note."
)
CUSTOMER_SAYS = N_("Customer: {text}")
STAFF_SAID = N_("Sent to the customer: {text}")
CORRECTION = N_("The customer corrected their feedback: {text}")
NOTE_SAVED = N_("Internal note saved; the customer does not see it.")


class StaffTopics:
    """A TicketListener that mirrors tickets into the staff group's forum topics."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        tickets: TicketService,
        i18n: I18n,
        limiter: RateLimiter,
        note_prefix: str,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.tickets = tickets
        self.i18n = i18n
        self.limiter = limiter
        self.note_prefix = note_prefix
        self.locale = i18n.default  # the staff group's language

    def t(self, text: Text) -> str:
        return self.i18n.render(self.locale, text)

    async def _post(self, topic_id: int, text: str) -> None:
        await self.limiter.wait(self.chat_id)
        await self.bot.send_message(self.chat_id, text[:4096], message_thread_id=topic_id)

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None:
        name = f"{ticket.reference} · {self.t(Text(CATEGORY_LABELS[ticket.category]))}"
        await self.limiter.wait(self.chat_id)
        topic = await self.bot.create_forum_topic(self.chat_id, name[:128])
        await self.tickets.repos.tickets.add_event(
            ticket.id,
            event=TimelineEvent(kind="topic", actor="system", detail=str(topic.message_thread_id)),
            telegram_topic_id=topic.message_thread_id,
            telegram_topic_chat_id=self.chat_id,
        )
        due = self.i18n.format_date(
            self.locale, self.tickets.calendar.local_date(ticket.response_due)
        )
        card = Text(
            CARD,
            {
                "reference": ticket.reference,
                "category": Text(CATEGORY_LABELS[ticket.category]),
                "rating": ticket.rating,
                "channel": ticket.channel.value,
                "locale": ticket.locale,
                "due": due,
                "text": ticket.text,
                "prefix": self.note_prefix,
            },
        )
        await self._post(topic.message_thread_id, self.t(card))
        await self._files(ticket, topic.message_thread_id, ticket.attachments)

    async def _files(self, ticket: Ticket, topic_id: int, attachments: list[Attachment]) -> None:
        """Show the customer's photos and files in the topic.

        A Telegram file id works in any chat of the same bot, so nothing is downloaded;
        files that came from another channel are listed on the ticket in the console.
        """
        if ticket.channel is not Channel.TELEGRAM:
            return
        for attachment in attachments:
            await self.limiter.wait(self.chat_id)
            if attachment.kind == "photo":
                await self.bot.send_photo(
                    self.chat_id, attachment.file_ref, message_thread_id=topic_id
                )
            else:
                await self.bot.send_document(
                    self.chat_id, attachment.file_ref, message_thread_id=topic_id
                )

    async def delete_topic(self, chat_id: int, topic_id: int) -> bool:
        """Delete a ticket's topic with every message in it (an erasure, C3.2.6)."""
        await self.limiter.wait(chat_id)
        try:
            return await self.bot.delete_forum_topic(chat_id, topic_id)
        except TelegramBadRequest as exc:
            if "not found" in exc.message.lower() or "invalid" in exc.message.lower():
                return True  # already gone
            raise

    async def ticket_changed(self, ticket: Ticket, change: str) -> None:
        """A correction from the customer goes to the topic too; other changes are the
        staff's own, made in the console or the topic."""
        if change != "corrected" or ticket.telegram_topic_id is None or not ticket.corrections:
            return
        text = self.t(Text(CORRECTION, {"text": ticket.corrections[-1].text}))
        await self._post(ticket.telegram_topic_id, text)

    async def customer_message(self, ticket: Ticket, message: Message) -> None:
        current = await self.tickets.get(ticket.id)
        if current.telegram_topic_id is None:
            return
        if message.text:
            text = self.t(Text(CUSTOMER_SAYS, {"text": message.text}))
            await self._post(current.telegram_topic_id, text)
        await self._files(current, current.telegram_topic_id, message.attachments)

    async def staff_message(self, ticket: Ticket, message: Message) -> None:
        # Replies written in the topic are already there; mirror the console's.
        current = await self.tickets.get(ticket.id)
        if current.telegram_topic_id is None or (message.staff_id or "").startswith("telegram:"):
            return
        await self._post(
            current.telegram_topic_id, self.t(Text(STAFF_SAID, {"text": message.text}))
        )


def staff_router(chat_id: int) -> Router:
    router = Router(name="staff")
    router.message.filter(
        checked_in_place(F.chat.id == chat_id), checked_in_place(F.message_thread_id)
    )

    @router.message(checked_in_place(F.text))
    async def in_topic(
        message: TgMessage, tickets: TicketService, staff_topics: StaffTopics, event_key: str
    ) -> None:
        assert message.message_thread_id is not None  # noqa: S101 - the filter guarantees it
        if message.from_user is None or message.from_user.is_bot:
            return
        ticket = await tickets.by_telegram_topic(message.chat.id, message.message_thread_id)
        if ticket is None:
            return
        staff_id = f"telegram:{message.from_user.id}"
        text = message.text or ""
        if text.startswith(staff_topics.note_prefix):
            note = text.removeprefix(staff_topics.note_prefix).strip()
            await tickets.add_note(ticket.id, staff_id=staff_id, text=note)
            # A courtesy: if it fails, the note is kept all the same, and the update must
            # not be handled again for it (the note would be saved twice).
            with contextlib.suppress(TelegramAPIError):
                await message.reply(staff_topics.t(Text(NOTE_SAVED)))
            return
        if text.startswith("/"):
            return  # a command to a bot, not words for the customer
        await tickets.staff_reply(
            ticket.id, staff_id=staff_id, text=text, idempotency_key=event_key
        )

    return router
