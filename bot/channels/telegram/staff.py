"""Staff handoff inside Telegram: a supergroup with forum topics, one topic per ticket.

The topic opens with a ticket card; the customer's later messages are copied in;
a staff member's message in the topic is a reply to the customer, unless it
starts with the note prefix, in which case it stays an internal note. The web
console and these topics are two views of the same tickets.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from aiogram import Bot, F, Router
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import Message as TgMessage

from bot.channels.telegram.filters import checked_in_place
from bot.channels.telegram.keyboards import chunks
from bot.channels.telegram.sender import RateLimiter
from bot.domain.flow import CATEGORY_LABELS
from bot.domain.models import Attachment, Channel, Customer, Message, Ticket
from bot.domain.text import N_, Text
from bot.i18n import I18n
from bot.services.tickets import TicketService
from bot.storage.database import DatabaseUnavailable
from bot.storage.locks import KeptLock
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
PAGES = 20  # pages of due posts looked at in one round
POLL_SECONDS = 2.0  # how often posts that other processes stored are looked for
POST_LEASE = timedelta(seconds=120)  # one post's call in one process's hands; renewed
POST_TRIES = 100  # failures (not refusals) before a post is given up: about 8 hours
MAX_BACKOFF_SECONDS = 300.0


REFUSED = (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound)


class Outcome(enum.Enum):
    DONE = "done"  # posted, or nothing is left to post: the ticket's next one may go
    RETRY = "retry"  # failed: tried again later, and the ticket's later posts wait
    HELD = "held"  # another process has it
    PAUSED = "paused"  # the group is paced (a 429): nothing more this round


class _ErasedTopicLeft(Exception):
    """An erased ticket's topic could not be deleted yet: tried again until it is."""


class _LeaseLost(Exception):
    """The post's lock ran out (a very slow Bot API) and may be another process's now."""


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

    def resume(self) -> None:
        """Before `run` starts again after a stop."""
        self._stopping.clear()

    async def post_due(self) -> bool:
        """Post what is due, each ticket's posts in order (its topic first); True when a
        full batch was due and something went (more may be due)."""
        seen: set[str] = set()
        posted = 0
        for _ in range(PAGES):
            # Due posts of tickets not served yet this round: one ticket's many posts
            # (behind a head waiting for its retry) must not fill every page.
            due = await self.repos.staff_posts.due(self.tickets.clock(), BATCH, skip=seen)
            tickets = list(dict.fromkeys(post.ticket_id for post in due))
            seen.update(tickets)
            served, paused = await self._serve(tickets)
            if paused:
                return False  # the group waits (a 429): so does every ticket's post
            posted += served
            if len(due) < BATCH:
                return False
        return posted > 0

    async def _serve(self, tickets: list[str]) -> tuple[int, bool]:
        """Each ticket's posts, in order, until one waits: how many went, and whether the
        group must wait (a 429)."""
        served = 0
        for ticket_id in tickets:
            while not self._stopping.is_set():
                head = await self.repos.staff_posts.head(ticket_id)
                if head is None or head.next_attempt_at > self.tickets.clock():
                    break  # all posted, or its next one waits for a retry: later ones too
                outcome = await self._take(head)
                if outcome is Outcome.PAUSED:
                    return served, True
                if outcome is not Outcome.DONE:
                    break
                served += 1
        return served, False

    async def _take(self, post: StaffPost) -> Outcome:
        """Post it under its lock (kept while it is in hand), as it is stored now: another
        process may have posted it since it was listed, or begun it (then the parts it
        sent are not sent again)."""
        now = self.tickets.clock()
        lock = await self.repos.locks.acquire(
            f"staff-post:{post.id}", POST_LEASE, now=now, owner=self.owner
        )
        if lock is None:
            return Outcome.HELD  # another process is posting it
        async with KeptLock(self.repos.locks, lock, POST_LEASE, self.tickets.clock) as held:
            current = await self.repos.staff_posts.get(post.id)
            if current is None:
                return Outcome.DONE
            if current.next_attempt_at > self.tickets.clock():
                return Outcome.HELD
            return await self._attempt(current, held)

    async def _attempt(self, post: StaffPost, held: KeptLock) -> Outcome:
        what = {"kind": post.kind, "ticket_id": post.ticket_id}
        try:
            await self._post_one(post, held)
        except TelegramRetryAfter as exc:  # the group's pace: not the post's fault
            self.limiter.pause(self.chat_id, float(exc.retry_after))
            at = self.tickets.clock() + timedelta(seconds=float(exc.retry_after))
            await self.repos.staff_posts.retry(post.id, at=at, attempts=post.attempts)
            return Outcome.PAUSED
        except _LeaseLost:
            return Outcome.HELD
        except REFUSED as exc:  # this post will never go (the topic was deleted by hand)
            log.warning("staff post refused", extra={**what, "error": type(exc).__name__})
        except Exception as exc:  # Telegram or the database away, a proxy's error page
            # The error's name only: an answer aiogram could not read carries the text.
            error = type(exc).__name__
            attempts = post.attempts + 1
            # An erased ticket's topic is deleted until it goes: it holds their words.
            if attempts < POST_TRIES or isinstance(exc, _ErasedTopicLeft):
                log.info("staff post failed; retried later", extra={**what, "error": error})
                delay = min(2.0**attempts, MAX_BACKOFF_SECONDS)
                at = self.tickets.clock() + timedelta(seconds=delay)
                await self.repos.staff_posts.retry(post.id, at=at, attempts=attempts)
                return Outcome.RETRY
            log.warning("staff post given up", extra={**what, "error": error})
        await self.repos.staff_posts.done(post.id)
        return Outcome.DONE

    async def _post_one(self, post: StaffPost, held: KeptLock) -> None:
        ticket = await self.repos.tickets.get(post.ticket_id)
        if ticket is None:
            return
        if ticket.anonymized_at is not None:
            # Erased: nothing of it goes to the group, and a topic this post made goes.
            if post.topic_id is not None:
                try:
                    await self.delete_topic(self.chat_id, post.topic_id)
                except Exception as exc:
                    raise _ErasedTopicLeft from exc
            return
        if post.kind == "filed":
            topic_id = await self._topic(post, ticket, held)
            if topic_id is not None:
                await self._send(post, held, topic_id, self._card(ticket), ticket.attachments)
                await self._erased_meanwhile(ticket.id, topic_id)
            return
        topic_id = ticket.telegram_topic_id
        if topic_id is None:
            return  # a ticket from before the staff group, or its topic was given up
        if post.kind == "correction":
            place = int(post.ref)
            if place < len(ticket.corrections):
                text = self.t(Text(CORRECTION, {"text": ticket.corrections[place].text}))
                await self._send(post, held, topic_id, text, [])
            return
        message = await self.repos.messages.get(post.ref)
        if message is None:
            return  # deleted since (an erasure)
        if post.kind == "customer":
            text = self.t(Text(CUSTOMER_SAYS, {"text": message.text})) if message.text else ""
            attachments = message.attachments if ticket.channel is Channel.TELEGRAM else []
            await self._send(post, held, topic_id, text, attachments)
        else:
            text = self.t(Text(STAFF_SAID, {"text": message.text}))
            await self._send(post, held, topic_id, text, [])

    async def _topic(self, post: StaffPost, ticket: Ticket, held: KeptLock) -> int | None:
        """The ticket's topic: made now (or by a first try of this post), then recorded on
        the ticket unless an erasure came first (then it is deleted: None)."""
        if ticket.telegram_topic_id is not None:
            return ticket.telegram_topic_id
        topic_id = post.topic_id
        if topic_id is None:
            name = f"{ticket.reference} · {self.t(Text(CATEGORY_LABELS[ticket.category]))}"
            await self.limiter.wait(self.chat_id)
            topic = await self.bot.create_forum_topic(self.chat_id, name[:128])
            topic_id = topic.message_thread_id
            await self._record(post, held, parts=0, topic_id=topic_id)
        if not await self.repos.tickets.set_topic(ticket.id, self.chat_id, topic_id):
            await self.delete_topic(self.chat_id, topic_id)  # anonymized meanwhile
            return None
        return topic_id

    async def _erased_meanwhile(self, ticket_id: str, topic_id: int) -> None:
        """Anonymized while the card went (the erasure read the ticket before its topic
        was recorded, and found none to delete): the topic, with the card, goes now."""
        after = await self.repos.tickets.get(ticket_id)
        if after is not None and after.anonymized_at is not None:
            await self.delete_topic(self.chat_id, topic_id)
            await self.repos.tickets.forget_topic(ticket_id)

    def _card(self, ticket: Ticket) -> str:
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
        return self.t(card)

    async def _send(
        self,
        post: StaffPost,
        held: KeptLock,
        topic_id: int,
        text: str,
        attachments: list[Attachment],
    ) -> None:
        """The post's text, then its files (photos and documents: a Telegram file id works
        in any chat of the same bot, so nothing is downloaded); only the parts a first try
        did not send, each recorded as it goes."""
        parts: list[tuple[Callable[[], Awaitable[object]], bool]] = []  # (call, a file?)
        for chunk in chunks(text) if text else []:
            call = partial(self.bot.send_message, self.chat_id, chunk, message_thread_id=topic_id)
            parts.append((call, False))
        for attachment in attachments:
            send = self.bot.send_photo if attachment.kind == "photo" else self.bot.send_document
            call = partial(send, self.chat_id, attachment.file_ref, message_thread_id=topic_id)
            parts.append((call, True))
        for number, (part, a_file) in enumerate(parts[post.parts :], start=post.parts + 1):
            await self.limiter.wait(self.chat_id)
            if held.lost:
                raise _LeaseLost  # another process may be sending this part now
            try:
                await part()
            except REFUSED as exc:
                if not a_file:
                    raise  # the topic is gone: nothing of the post can go
                # One file Telegram will not take (an expired file id): the others go.
                log.warning("staff post file refused", extra={"error": type(exc).__name__})
            await self._record(post, held, parts=number)

    async def _record(
        self, post: StaffPost, held: KeptLock, *, parts: int, topic_id: int | None = None
    ) -> None:
        """What went: tried again through a database outage for as long as the post's
        lock is kept. A part sent but not recorded would be sent again by a retry."""
        pause = 0.1
        while True:
            try:
                await self.repos.staff_posts.progress(post.id, parts=parts, topic_id=topic_id)
            except DatabaseUnavailable:
                if held.lost or self._stopping.is_set():
                    raise _LeaseLost from None  # tried again later, by whoever has it
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            else:
                return

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
