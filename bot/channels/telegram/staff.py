"""Staff handoff inside Telegram: a supergroup with forum topics, one topic per ticket.

The topic opens with a ticket card; the customer's later messages are copied in;
a staff member's message in the topic is a reply to the customer, unless it
starts with the note prefix, in which case it stays an internal note. The web
console and these topics are two views of the same tickets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import Message as TgMessage

from bot.channels.telegram.filters import checked_in_place
from bot.channels.telegram.sender import RateLimiter
from bot.domain.flow import CATEGORY_LABELS
from bot.domain.models import Attachment, Channel, Customer, Message, Ticket, TimelineEvent
from bot.domain.text import N_, Text
from bot.i18n import I18n
from bot.services.tickets import TicketService
from bot.storage.database import DatabaseUnavailable
from bot.storage.staff_posts import StaffPost, StaffPostKind

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

BATCH = 50  # posts taken at a time
POLL_SECONDS = 2.0  # how often posts that other processes stored are looked for
POST_LEASE = timedelta(seconds=120)  # one post in one process's hands (the group's pace)
POST_TRIES = 10  # a post Telegram keeps refusing (the topic was deleted) is given up
MAX_BACKOFF_SECONDS = 300.0


class NotYet(Exception):
    """The post must wait: its ticket's topic is still to be made."""


class StaffTopics:
    """A TicketListener that mirrors tickets into the staff group's forum topics.

    A change leaves what the topic is owed in staff_posts (one insert, while the change
    is made); `run` posts it, in order per ticket, at the group's pace, and retries what
    fails. Nobody waits for the group: not a customer whose words are being stored, not
    a staff member sending a reply from the console.
    """

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        tickets: TicketService,
        i18n: I18n,
        limiter: RateLimiter,
        note_prefix: str,
        *,
        owner: str,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.tickets = tickets
        self.repos = tickets.repos
        self.i18n = i18n
        self.limiter = limiter
        self.note_prefix = note_prefix
        self.owner = owner  # names this process on the posts it holds
        self.locale = i18n.default  # the staff group's language
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def t(self, text: Text) -> str:
        return self.i18n.render(self.locale, text)

    # ------------------------------------------------------------ what the topics are owed

    async def _owe(self, kind: StaffPostKind, ticket: Ticket, ref: str = "") -> None:
        await self.repos.staff_posts.add(kind, ticket.id, at=self.tickets.clock(), ref=ref)
        self._wake.set()

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None:
        await self._owe("filed", ticket)

    async def ticket_changed(self, ticket: Ticket, change: str) -> None:
        """A correction from the customer goes to the topic too; other changes are the
        staff's own, made in the console or the topic."""
        if change == "corrected" and ticket.corrections:
            await self._owe("correction", ticket, str(len(ticket.corrections) - 1))

    async def customer_message(self, ticket: Ticket, message: Message) -> None:
        await self._owe("customer", ticket, message.id)

    async def staff_message(self, ticket: Ticket, message: Message) -> None:
        # Replies written in the topic are already there; mirror the console's.
        if not (message.staff_id or "").startswith("telegram:"):
            await self._owe("staff", ticket, message.id)

    # ------------------------------------------------------------ posting

    async def run(self) -> None:
        """Post what is owed until stop(): at once when this process owes something, and
        every POLL_SECONDS for what other processes stored (or what waits for a retry)."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                more = await self.post_due()
            except DatabaseUnavailable:
                more = False
            except Exception:  # the worker must go on
                log.exception("staff posts failed; retrying")
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def post_due(self) -> bool:
        """Post the posts due now, each ticket's in order; True if one was posted from a
        full batch (more may be due)."""
        now = self.tickets.clock()
        owed = await self.repos.staff_posts.oldest(BATCH)
        held: set[str] = set()  # tickets with an earlier post waiting, or in other hands
        posted = 0
        for post in owed:
            if self._stopping.is_set():
                return False
            if post.ticket_id in held:
                continue
            if post.next_attempt_at > now:  # its retry is later: the ticket's next wait
                held.add(post.ticket_id)
                continue
            lock = await self.repos.locks.acquire(
                f"staff-post:{post.id}", POST_LEASE, owner=self.owner
            )
            if lock is None:  # another process is posting it
                held.add(post.ticket_id)
                continue
            try:
                if await self._attempt(post):
                    posted += 1
                    continue
                held.add(post.ticket_id)
            finally:
                with contextlib.suppress(DatabaseUnavailable):  # it expires by itself then
                    await self.repos.locks.release(lock)
        return posted > 0 and len(owed) == BATCH

    async def _attempt(self, post: StaffPost) -> bool:
        """Post it; True when it is done with (posted, or nothing is left to post)."""
        attempts = post.attempts
        try:
            await self._post_one(post)
        except NotYet:
            delay = 1.0
        except TelegramRetryAfter as exc:  # the group's pace: not the post's fault
            delay = float(exc.retry_after)
        except TelegramAPIError as exc:
            attempts += 1
            what = {"kind": post.kind, "ticket_id": post.ticket_id, "error": type(exc).__name__}
            if attempts >= POST_TRIES:
                log.warning("staff post given up", extra=what)
                await self.repos.staff_posts.done(post.id)
                return True
            log.info("staff post failed; retried later", extra=what)
            delay = min(2.0**attempts, MAX_BACKOFF_SECONDS)
        else:
            await self.repos.staff_posts.done(post.id)
            return True
        at = self.tickets.clock() + timedelta(seconds=delay)
        await self.repos.staff_posts.retry(post.id, at=at, attempts=attempts)
        return False

    async def _post_one(self, post: StaffPost) -> None:
        ticket = await self.repos.tickets.get(post.ticket_id)
        if ticket is None or ticket.anonymized_at is not None:
            return  # erased: nothing of it goes to the group
        if post.kind == "filed":
            await self._open_topic(ticket)
            return
        topic_id = ticket.telegram_topic_id
        if topic_id is None:
            if await self.repos.staff_posts.owed("filed", ticket.id):
                raise NotYet  # its topic is still to be made: after it
            return  # a ticket from before the staff group was set up: it has no topic
        if post.kind == "correction":
            place = int(post.ref)
            if place < len(ticket.corrections):
                text = self.t(Text(CORRECTION, {"text": ticket.corrections[place].text}))
                await self._post(topic_id, text)
            return
        message = await self.repos.messages.get(post.ref)
        if message is None:
            return  # deleted since (an erasure)
        if post.kind == "customer":
            if message.text:
                await self._post(topic_id, self.t(Text(CUSTOMER_SAYS, {"text": message.text})))
            await self._files(ticket, topic_id, message.attachments)
        else:
            await self._post(topic_id, self.t(Text(STAFF_SAID, {"text": message.text})))

    async def _post(self, topic_id: int, text: str) -> None:
        await self.limiter.wait(self.chat_id)
        await self.bot.send_message(self.chat_id, text[:4096], message_thread_id=topic_id)

    async def _open_topic(self, ticket: Ticket) -> None:
        """The ticket's topic (made unless a first try made it), its card and files."""
        topic_id = ticket.telegram_topic_id
        if topic_id is None:
            name = f"{ticket.reference} · {self.t(Text(CATEGORY_LABELS[ticket.category]))}"
            await self.limiter.wait(self.chat_id)
            topic = await self.bot.create_forum_topic(self.chat_id, name[:128])
            topic_id = topic.message_thread_id
            await self.repos.tickets.add_event(
                ticket.id,
                event=TimelineEvent(kind="topic", actor="system", detail=str(topic_id)),
                telegram_topic_id=topic_id,
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
        await self._post(topic_id, self.t(card))
        await self._files(ticket, topic_id, ticket.attachments)
        after = await self.repos.tickets.get(ticket.id)
        if after is not None and after.anonymized_at is not None:
            # Erased while the topic was being made: the erasure found no topic to
            # delete, and the card carries the customer's words. It goes now.
            await self.delete_topic(self.chat_id, topic_id)
            await self.repos.tickets.forget_topic(ticket.id)

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
