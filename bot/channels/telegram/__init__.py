"""The Telegram channel: aiogram 3, long polling by default, webhook when configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import TelegramMethod
from aiogram.types import Update, User
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from limits.aio.storage import MemoryStorage, Storage
from pydantic import ValidationError

from bot.admission import Admission
from bot.channels.telegram import commands, dialogue
from bot.channels.telegram.commands import set_menu
from bot.channels.telegram.middlewares import FloodControl, InOrderPerUser, OncePerUpdate
from bot.channels.telegram.polling import ConfirmingPoller
from bot.channels.telegram.render import show
from bot.channels.telegram.responses import response_models
from bot.channels.telegram.sender import RateLimiter, TelegramSender
from bot.channels.telegram.staff import StaffTopics, staff_router
from bot.config import Settings
from bot.domain.models import Channel
from bot.domain.text import N_, Text
from bot.i18n import I18n
from bot.services.delivery import DeliveryService
from bot.services.dialogue import DialogueService
from bot.services.tickets import TicketService
from bot.storage import Repositories
from bot.storage.locks import Lease

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
STAFF_POSTS_STOP_SECONDS = 5.0  # the staff post in hand, at a stop (then it stays owed)
SLOW_DOWN = N_("You are sending messages very quickly. Please wait a few seconds, then go on.")


class WebhookHandler(SimpleRequestHandler):
    """aiogram's webhook handler, except that:
    - a body which is not an update (not JSON, `null`, a wrong shape) is answered 400:
      aiogram let the parse error become a 500;
    - past the process's capacity (bot.admission) an update is answered 503 at once,
      which Telegram delivers again a little later;
    - an update still being handled after DEADLINE is answered 503, not 200: aiogram's
      feed_webhook_update answers 200 after 55 s and goes on in the background, and an
      update that then failed was lost (Telegram never sends an answered one again). It
      goes on here too, with its claim and its admission slot; the redelivery waits for
      it (bot.channels.telegram.middlewares.OncePerUpdate), or takes over if it failed.
    """

    DEADLINE = 50.0  # seconds: under the minute Telegram waits for an answer

    def __init__(
        self,
        *args: Any,
        admission: Admission,
        first_seen: Callable[[Update], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.admission = admission
        self.first_seen = first_seen  # told of each update as it arrives (FloodControl)
        self.running: dict[int, asyncio.Task[TelegramMethod[Any] | None]] = {}

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            raw = await request.json(loads=bot.session.json_loads)
            update = Update.model_validate(raw, context={"bot": bot})
        except (ValueError, ValidationError):  # JSON and UTF-8 errors are ValueErrors
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        # Telegram's redelivery of an update still being handled here waits for the same
        # handling, with no slot of its own: a stuck update and its redeliveries must not
        # fill the process's slots and turn every other customer away.
        handling = self.running.get(update.update_id)
        if handling is None and self.first_seen is not None:
            await self.first_seen(update)
        if handling is None:
            slot = contextlib.ExitStack()
            if not slot.enter_context(self.admission.slot("telegram")):
                slot.close()
                return web.json_response({"ok": False, "error": "busy"}, status=503)
            handling = asyncio.create_task(self._handle_update(bot, update, slot))
            self.running[update.update_id] = handling
            handling.add_done_callback(lambda _: self.running.pop(update.update_id, None))
        # Not cancelled with this request: asyncio.wait leaves what it waits for running.
        try:
            done, _ = await asyncio.wait({handling}, timeout=self.DEADLINE)
        except asyncio.CancelledError:  # the request (at shutdown): it ends on its own
            handling.add_done_callback(_late_outcome)
            raise
        if not done:
            log.warning("telegram update still being handled; answered 503 to be sent again")
            handling.add_done_callback(_late_outcome)
            return web.json_response({"ok": False, "error": "still handling"}, status=503)
        result = handling.result()  # a failure: 500, and Telegram delivers it again
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    async def _handle_update(
        self, bot: Bot, update: Update, slot: contextlib.ExitStack
    ) -> TelegramMethod[Any] | None:
        with slot:  # the admission slot is held until the update is handled
            result = await self.dispatcher.feed_update(bot, update, **self.data)
        return result if isinstance(result, TelegramMethod) else None


def _late_outcome(handling: asyncio.Task[Any]) -> None:
    """An update answered 503 while it was still being handled: how it ended (Telegram
    delivers it again either way; a failure is taken over then)."""
    if not handling.cancelled() and (exc := handling.exception()) is not None:
        log.warning("telegram update failed after its answer", extra={"cause": type(exc).__name__})


def get_routers(staff_chat_id: int | None) -> list[Router]:
    """In this order: commands first, then the staff group, then the private dialogue."""
    routers = [commands.build_router()]
    if staff_chat_id is not None:
        routers.append(staff_router(staff_chat_id))
    routers.append(dialogue.build_router())
    return routers


class TelegramChannel:
    def __init__(
        self,
        settings: Settings,
        repos: Repositories,
        dialogue_service: DialogueService,
        tickets: TicketService,
        delivery: DeliveryService,
        i18n: I18n,
        *,
        admission: Admission,
        rate_limits: Storage | None = None,
    ) -> None:
        assert settings.telegram_token is not None  # noqa: S101 - built only when configured
        self.settings = settings
        self.admission = admission
        response_models()  # built once per process, and kept (see the module)
        self.i18n = i18n
        api = settings.telegram_api_base
        session = AiohttpSession(api=TelegramAPIServer.from_base(api)) if api else AiohttpSession()
        self.bot = Bot(settings.telegram_token.get_secret_value(), session=session)
        self.limiter = RateLimiter(per_second=settings.telegram_messages_per_second)
        self.dispatcher = Dispatcher()
        self.dispatcher["dialogue"] = dialogue_service
        self.dispatcher["tickets"] = tickets
        self.staff_topics: StaffTopics | None = None
        if settings.telegram_staff_chat_id is not None:
            self.staff_topics = StaffTopics(
                self.bot,
                settings.telegram_staff_chat_id,
                tickets,
                i18n,
                self.limiter,
                settings.telegram_note_prefix,
                owner=f"{socket.gethostname()}:{os.getpid()}",
            )
            tickets.listeners.append(self.staff_topics)
        self._staff_posting: asyncio.Task[None] | None = None
        self.dispatcher["staff_topics"] = self.staff_topics
        self.repos = repos
        self.dialogue = dialogue_service
        # Registered once, here (start() may be retried); the bot id comes from the token.
        # InOrderPerUser first: it must see each update before anything waits.
        self.dispatcher.update.outer_middleware(InOrderPerUser())
        self.dispatcher.update.outer_middleware(
            OncePerUpdate(
                self.repos.inbound,
                self.bot.id,
                claim_ttl=timedelta(seconds=settings.telegram_update_claim_seconds),
            )
        )
        self.flood = FloodControl(
            settings.telegram_flood_messages,
            settings.telegram_flood_seconds,
            self._slow_down,
            rate_limits or MemoryStorage(),
        )
        self.dispatcher.message.outer_middleware(self.flood)
        self.dispatcher.include_routers(*get_routers(settings.telegram_staff_chat_id))
        delivery.register(Channel.TELEGRAM, TelegramSender(self.bot, self.limiter))
        self._polling: asyncio.Task[None] | None = None
        # Only one process polls a bot (Telegram answers a second getUpdates with 409):
        # the holder of this lease. Named after the bot; the owner names the process.
        self.lease = Lease(
            repos.locks,
            f"telegram-polling:{self.bot.id}",
            timedelta(seconds=settings.telegram_polling_lease_seconds),
            owner=f"{socket.gethostname()}:{os.getpid()}",
        )

    async def _slow_down(self, user: User) -> None:
        reply = await self.dialogue.say(
            Channel.TELEGRAM, str(user.id), Text(SLOW_DOWN), user.language_code
        )
        await show(self.bot, user.id, [reply])

    def register_webhook(self, app: web.Application) -> None:
        """Mount the webhook route (before the app starts) when a public URL is configured."""
        secret = self.settings.telegram_webhook_secret
        if self.settings.telegram_webhook_url and secret is not None:
            WebhookHandler(
                self.dispatcher,
                self.bot,
                # Answer Telegram only after the update was handled and stored, so a
                # failure makes Telegram deliver it again instead of losing it.
                handle_in_background=False,
                secret_token=secret.get_secret_value(),
                admission=self.admission,
                first_seen=self.flood.first_seen,
            ).register(app, path=WEBHOOK_PATH)

    async def start(self) -> None:
        await self.bot.get_me()  # fails early on a wrong token or an unreachable API
        await set_menu(self.bot, self.i18n)
        if self.staff_topics is not None and self._staff_posting is None:
            # In every process, polling or not: each posts what the topics are owed.
            self.staff_topics.resume()
            self._staff_posting = asyncio.create_task(self.staff_topics.run())
        allowed = self.dispatcher.resolve_used_update_types()
        url = self.settings.telegram_webhook_url
        secret = self.settings.telegram_webhook_secret
        if url and secret is not None:
            await self.bot.set_webhook(
                url.rstrip("/") + WEBHOOK_PATH,
                secret_token=secret.get_secret_value(),
                allowed_updates=allowed,
            )
            log.info("telegram webhook set")
            return
        # Webhook mode needs no lease: Telegram sends each update to one request, and any
        # process may answer it.
        self._polling = asyncio.create_task(self._poll_while_leased(allowed))

    async def _poll_while_leased(self, allowed: list[str]) -> None:
        """Wait for the polling lease, poll while it is held, wait again when it is lost."""
        while True:
            try:
                await self.lease.acquire()
            except Exception:  # an unexpected database error: the lease loop must go on
                log.exception("telegram polling lease unavailable; retrying")
                await asyncio.sleep(self.lease.step)
                continue
            log.info("telegram polling lease taken", extra={"owner": self.lease.owner})
            polling: asyncio.Task[None] | None = None
            keeping = asyncio.create_task(self.lease.keep())
            try:
                await self.bot.delete_webhook()
                poller = ConfirmingPoller(
                    self.dispatcher,
                    self.bot,
                    # As many at once as configured, each user's in order
                    # (InOrderPerUser); 1: one at a time.
                    concurrency=self.settings.telegram_polling_concurrency,
                    timeout=self.settings.telegram_polling_timeout,
                    allowed_updates=allowed,
                    first_seen=self.flood.first_seen,
                )
                polling = asyncio.create_task(poller.run())
                log.info("telegram polling started")
                await asyncio.wait({polling, keeping}, return_when=asyncio.FIRST_COMPLETED)
                if keeping.done():
                    log.warning("telegram polling lease lost; polling stopped")
                    keeping.result()  # raise what broke the renewals, if anything did
                else:
                    polling.result()  # polling ended by itself: raise what ended it
            except Exception:  # the API is down at this moment: give the lease up, try again
                log.exception("telegram polling failed; retrying")
            finally:
                keeping.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keeping  # its error, if any, was logged above
                try:
                    await self._stop_polling(polling)
                finally:  # stopped meanwhile too: still hand the lease over
                    with contextlib.suppress(Exception):  # unreleased, it expires by itself
                        await self.lease.release()
            await asyncio.sleep(self.lease.step)  # let another process have a go

    @staticmethod
    async def _stop_polling(polling: asyncio.Task[None] | None) -> None:
        """Stop asking for updates; those in hand get a moment to finish (ConfirmingPoller)."""
        if polling is None or polling.done():
            return
        polling.cancel()
        try:
            await polling
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped too (stop() while the lease was being given up)

    async def stop_receiving(self) -> None:
        """Stop taking updates (polling; the lease is handed over). Sending goes on."""
        if self._polling is not None:
            self._polling.cancel()  # stops polling and releases the lease on its way out
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None

    async def stop(self) -> None:
        await self.stop_receiving()
        if self.staff_topics is not None and self._staff_posting is not None:
            self.staff_topics.stop()  # after the post in hand; what is left stays owed
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._staff_posting, STAFF_POSTS_STOP_SECONDS)
            self._staff_posting = None
        await self.bot.session.close()
