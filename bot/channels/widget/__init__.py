"""The in-app chat widget: Socket.IO namespace /widget on the service's aiohttp app.

The protocol is written down in docs/widget-protocol.md. In short: a visitor is
anonymous (a random id the widget keeps) or a user the host app signed with
HMAC-SHA256; every input carries a client id and is acknowledged after it is
stored; python-socketio has no connection state recovery, so the widget passes
the last message `seq` it showed and the server replays the rest from MongoDB.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import socketio
from aiohttp import ClientPayloadError, web
from engineio.async_drivers.aiohttp import WebSocket as EngineIOWebSocket
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import ValidationError

from bot.channels.widget.schemas import (
    Empty,
    LanguageChoice,
    Missed,
    Typing,
    WidgetAuth,
    WidgetInput,
)
from bot.channels.widget.strings import HELP as WIDGET_HELP
from bot.channels.widget.strings import error, ui_strings
from bot.channels.widget.uploads import UploadRejected, receive
from bot.admission import Admission
from bot.assets import built_file
from bot.config import ROOT, Settings
from bot.domain.flow import Command, Input, clean_text
from bot.domain.models import Attachment, Channel, Customer, Message, utcnow
from bot.domain.privacy import conversation_key
from bot.domain.text import Text
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.services.delivery import DeliveryService, RetryLater, SendResult, Sent
from bot.sharing import PublishFailed, checked_publish
from bot.services.dialogue import DialogueService, Rendered
from bot.storage import DatabaseUnavailable, Repositories
from bot.storage.conversations import ConcurrentUpdate
from bot.storage.locks import Busy


def failure(exc: BaseException) -> dict[str, str]:
    """What a log line may say of an error: its type and where, never its message (the
    message of a validation or database error can quote what the customer sent)."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "?"
    return {"cause": type(exc).__name__, "where": where}

log = logging.getLogger(__name__)

NAMESPACE = "/widget"
HISTORY_PAGE = 100
REPLAY_NEW = 200  # messages a new page gets; older ones stay in the database
UPLOADS_PER_DAY = 30
# A number missing below a message this old was never stored (a resend drew it), not
# one still being stored by another process: `through` may pass it. Far longer than a
# write can take (the database's own timeouts are 30 s).
SETTLED_AFTER = timedelta(minutes=2)
IDENTITY_MAX_SECONDS = 7 * 24 * 3600  # how far ahead a host app may date a signature  # per customer: uploads are stored in the database
UPLOAD_PATH = "/widget/upload"
WIDGET_DIR = ROOT / "widget"
CACHED = "public, max-age=300"
COMMANDS = {
    c.value: c
    for c in (Command.START, Command.BACK, Command.CANCEL, Command.HELP, Command.PRIVACY)
}


def settled_through(after: int, page: list[Message]) -> int:
    """How far a widget that has `after` and this page (the next messages, in order) has
    every message: up to a missing number that may still be being stored (another
    process drew it, and its write is slower than the next one's)."""
    through = after
    settled = utcnow() - SETTLED_AFTER
    for message in page:
        if message.seq != through + 1 and message.created_at > settled:
            break  # a number below it is missing, and may yet come
        through = message.seq
    return through


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "id": message.id,
        "author": message.author.value,
        "kind": message.kind,
        "text": message.text,
        "at": message.created_at.isoformat(),
        "attachments": [{"name": a.name, "kind": a.kind} for a in message.attachments],
    }


def prompt_payload(reply: Rendered) -> dict[str, Any]:
    return {
        "text": reply.text,
        "step": reply.step,
        "input": reply.input_kind,
        "options": [{"value": o.value, "label": o.label} for o in reply.options],
        "controls": [{"value": c.value, "label": c.label} for c in reply.controls],
        "error": reply.error,
        "hint": reply.hint,
        "file": None
        if reply.file is None
        else {
            "name": reply.file.name,
            "mime_type": reply.file.mime_type,
            "data": base64.b64encode(reply.file.content).decode("ascii"),
        },
        "erased": reply.erased,
    }


@dataclass(frozen=True)
class Visitor:
    """Who is behind one connection (kept in the socket session)."""

    external_id: str  # "visitor:<id>" or "user:<host app user id>"
    room: str  # the hashed conversation key: no personal data in room names
    ip: str
    locale: str


class Refused(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """The client gets `connect_error` with `err.data = {"code", "message"}`."""

    def __init__(self, payload: dict[str, str]) -> None:
        super().__init__(payload["message"], payload)


class UncompressedWebSocket(EngineIOWebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket, refusing the permessage-deflate extension.

    aiohttp's `WebSocketResponse` accepts permessage-deflate by default, and browsers and
    Node offer it, so every connection kept a zlib deflate and inflate state: measured with
    bench/idle_memory.py, 122 KiB of resident memory per idle connection on a bare
    python-socketio server, 28 KiB without it. Widget frames are small JSON, so the bytes
    saved on the wire were few. Same code as the parent's `__call__`, plus `compress=False`.
    """

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


class WidgetSender:
    """Delivery to the widget: push to every open widget of the customer.

    A customer with no widget open gets the message from the history replay on
    their next visit, so pushing is all there is to do.
    """

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def send(self, message: Message, customer: Customer) -> SendResult:
        room = conversation_key(Channel.WIDGET.value, customer.external_id)
        try:
            with checked_publish():  # through Redis, with several processes
                await self.sio.emit(
                    "message", message_payload(message), room=room, namespace=NAMESPACE
                )
        except PublishFailed:
            # Not pushed anywhere (the other processes' widgets, and ours, are reached
            # through Redis): counted as sent, an open widget would never show it.
            return RetryLater("widget: redis did not take the push", transient=True)
        return Sent()


class WidgetChannel:
    def __init__(
        self,
        settings: Settings,
        repos: Repositories,
        dialogue: DialogueService,
        delivery: DeliveryService,
        i18n: I18n,
        metrics: Metrics,
        *,
        rate_limits: Storage | None = None,
        client_manager: socketio.AsyncManager | None = None,
        admission: Admission,
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.repos = repos
        self.dialogue = dialogue
        self.i18n = i18n
        self.metrics = metrics
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=self.origin_allowed,
            max_http_buffer_size=settings.widget_max_payload_bytes,
            logger=False,
            engineio_logger=False,
            # In memory when None; with several processes a Redis manager (bot.sharing).
            client_manager=client_manager,
        )
        # Websockets without permessage-deflate (see UncompressedWebSocket): ~94 KiB less
        # per idle connection. Only this server's driver table changes, nothing global.
        self.sio.eio._async = {**self.sio.eio._async, "websocket": UncompressedWebSocket}
        self.sio.register_namespace(WidgetNamespace(self))
        self.limiter = SlidingWindowCounterRateLimiter(rate_limits or MemoryStorage())
        self.per_connection: RateLimitItem = parse(settings.widget_rate_per_connection)
        self.per_ip: RateLimitItem = parse(settings.widget_rate_per_ip)
        self.connects: RateLimitItem = parse(settings.widget_connects_per_ip)
        delivery.register(Channel.WIDGET, WidgetSender(self.sio))

    # ---------------------------------------------------------------- HTTP side

    def origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser, or a same-origin request that sent none
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin.rstrip("/") in (own, *self.settings.widget_origins)

    def _cors(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.host}"
        if origin and origin != own and origin in self.settings.widget_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Vary"] = "Origin"
        return response

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app)
        app.router.add_get("/widget/strings.json", self.strings)
        app.router.add_get("/widget/widget.js", self.bundle)
        app.router.add_get("/widget/widget.js.map", self.bundle_map)
        app.router.add_get("/demo", self.demo)
        app.router.add_route("OPTIONS", UPLOAD_PATH, self.preflight)
        app.router.add_post(UPLOAD_PATH, self.upload)

    async def strings(self, request: web.Request) -> web.StreamResponse:
        locale = self.i18n.negotiate(
            request.query.get("locale") or request.headers.get("Accept-Language")
        )
        body = {"locale": locale, "strings": ui_strings(self.i18n, locale)}
        return self._cors(request, web.json_response(body))

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        return built_file(WIDGET_DIR / "dist" / "widget.js", "text/javascript", CACHED)

    async def bundle_map(self, request: web.Request) -> web.StreamResponse:
        return built_file(WIDGET_DIR / "dist" / "widget.js.map", "application/json", CACHED)

    async def demo(self, request: web.Request) -> web.StreamResponse:
        return built_file(WIDGET_DIR / "demo" / "index.html", "text/html", CACHED)

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        return self._cors(request, web.Response(status=204))

    async def upload(self, request: web.Request) -> web.StreamResponse:
        locale = self.i18n.negotiate(
            request.query.get("locale") or request.headers.get("Accept-Language")
        )
        try:
            stored = await receive(
                request,
                self.repos,
                max_bytes=self.settings.widget_upload_max_bytes,
                types=self.settings.upload_types,
            )
        except DatabaseUnavailable:
            body = {"error": error(self.i18n, locale, "unavailable")}
            return self._cors(request, web.json_response(body, status=503))
        except (ClientPayloadError, ConnectionError, TimeoutError):
            body = {"error": error(self.i18n, locale, "invalid")}  # the body broke off
            return self._cors(request, web.json_response(body, status=400))
        except UploadRejected as exc:
            self.metrics.widget_events.labels("upload", exc.code).inc()
            body = {"error": error(self.i18n, locale, exc.code, **exc.params)}
            return self._cors(request, web.json_response(body, status=exc.status))
        self.metrics.widget_events.labels("upload", "ok").inc()
        created = {
            "upload_id": stored.id,
            "name": stored.name,
            "size": stored.size,
            "mime_type": stored.mime_type,
        }
        return self._cors(request, web.json_response(created, status=201))

    # ---------------------------------------------------------------- socket side

    async def allowed(self, visitor: Visitor, sid: str) -> bool:
        return await self.limiter.hit(self.per_connection, "event", sid) and (
            await self.limiter.hit(self.per_ip, "event-ip", visitor.ip)
        )

    async def visitor(self, sid: str) -> Visitor:
        session = await self.sio.get_session(sid, namespace=NAMESPACE)
        visitor: Visitor = session["visitor"]
        return visitor

    async def welcome(self, sid: str, visitor: Visitor, last_seq: int) -> None:
        """After the handshake: what was missed, then where the dialogue stands."""
        for _ in range(200):  # the CONNECT packet goes out right after the connect handler
            if self.sio.manager.is_connected(sid, NAMESPACE):
                break
            await asyncio.sleep(0.005)
        try:
            customer = await self.dialogue.customer(Channel.WIDGET, visitor.external_id)
            if last_seq > 0 and (
                customer is None or not await self.repos.messages.reaches(customer.id, last_seq)
            ):
                # The widget remembers messages this server no longer has: the customer's
                # data was erased while this device was away (or the erase's answer was
                # lost). It must forget them too, and start again from 0.
                await self.sio.emit("erased", {}, to=sid, namespace=NAMESPACE)
                return
            if customer is not None:
                await self._replay(sid, customer, last_seq)
            await self.emit_state(visitor, to=sid)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the widget must not hang
            # Without history and state the widget has nothing to show: drop the
            # connection, so that it reconnects and tries again.
            log.warning("widget welcome failed", extra=failure(exc))
            await self.sio.disconnect(sid, namespace=NAMESPACE)

    async def _replay(self, sid: str, customer: Customer, last_seq: int) -> None:
        """Everything after `last_seq`; a new page (0) gets the latest REPLAY_NEW only."""
        after = last_seq
        if last_seq == 0:
            latest = await self.repos.messages.latest_seq(customer.id)
            after = max(0, latest - REPLAY_NEW)
        first, through = True, after
        while page := await self.repos.messages.after_seq(customer.id, after, limit=HISTORY_PAGE):
            if not self.sio.manager.is_connected(sid, NAMESPACE):
                return  # gone: stop reading for nobody
            if through == after:  # no number missing, or missing for good, so far
                through = settled_through(after, page)
            # `through`: every message numbered up to it is in this replay (or sent before
            # it); a number missing below it was never stored (a resend drew it).
            payload: dict[str, Any] = {
                "messages": [message_payload(m) for m in page],
                "through": through,
            }
            if first:
                payload["after"] = after  # where this replay starts (older ones not sent)
                first = False
            await self.sio.emit("history", payload, to=sid, namespace=NAMESPACE)
            after = page[-1].seq

    async def state(self, visitor: Visitor) -> dict[str, Any]:
        """The language, and the question the dialogue is at (None: no flow running)."""
        locale, prompt = await self.dialogue.current(
            Channel.WIDGET, visitor.external_id, visitor.locale
        )
        return {"locale": locale, "prompt": prompt_payload(prompt) if prompt else None}

    async def emit_state(
        self,
        visitor: Visitor,
        *,
        to: str | None = None,
        skip: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        state = state or await self.state(visitor)
        target = to or visitor.room
        await self.sio.emit("state", state, to=target, skip_sid=skip, namespace=NAMESPACE)

    async def slash(self, data: WidgetInput, visitor: Visitor) -> list[Rendered] | None:
        """Replies to a typed "/word" that is not a dialogue command; None: not one of those.

        The widget is driven by buttons, but people who know the Telegram bot type its
        commands: /status works, and any other "/word" gets the help, never the ticket.
        """
        words = data.value.strip().split()
        if data.kind != "text" or not words or not words[0].startswith("/"):
            return None
        word = words[0][1:].lower()
        if word in COMMANDS and word != Command.HELP:
            return None
        if word == "status":
            return await self.dialogue.status(Channel.WIDGET, visitor.external_id, visitor.locale)
        _, prompt = await self.dialogue.current(Channel.WIDGET, visitor.external_id)
        if prompt is not None and word == Command.HELP:
            return None  # help with the question being asked: the dialogue's own
        reply = await self.dialogue.say(
            Channel.WIDGET, visitor.external_id, Text(WIDGET_HELP), visitor.locale
        )
        return [reply, *([prompt] if prompt else [])]

    def identity_valid(self, user: str, expires: int | None, signature: str | None) -> bool:
        """The host app signed `<user>:<expires>` (unix seconds) and it has not expired.

        The signature sits in the host page, so it must not be good forever: at most
        IDENTITY_MAX_SECONDS ahead. The comparison takes the same time however much of
        the signature is right.
        """
        secret = self.settings.widget_identity_secret
        if secret is None or signature is None or expires is None:
            return False
        now = int(time.time())
        if not now < expires <= now + IDENTITY_MAX_SECONDS:
            return False
        expected = hmac.new(
            secret.get_secret_value().encode(), f"{user}:{expires}".encode(), hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def upload_refusal(self, visitor: Visitor) -> str | None:
        """Why this visitor may not upload now (None: they may).

        Files are personal data: only after consent (C6.2), only where the dialogue takes
        them (the attachments question, or an open ticket outside a flow), and only so many
        a day, since they are stored in the database.
        """
        customer = await self.dialogue.customer(Channel.WIDGET, visitor.external_id)
        if customer is None:
            return "not_now"
        _, prompt = await self.dialogue.current(Channel.WIDGET, visitor.external_id)
        if prompt is not None and prompt.input_kind != "attachments":
            return "not_now"
        open_ticket = await self.repos.tickets.latest_open(customer.id, customer.last_ticket_id)
        if prompt is None and open_ticket is None:
            return "not_now"
        since = utcnow() - timedelta(days=1)
        if await self.repos.uploads.count_since(visitor.room, since) >= UPLOADS_PER_DAY:
            return "too_many_files"
        return None

    async def to_input(self, data: WidgetInput, visitor: Visitor) -> Input | None:
        if data.kind == "text":
            words = data.value.strip().split()
            if len(words) == 1 and words[0].startswith("/") and words[0][1:].lower() in COMMANDS:
                return Input.command(COMMANDS[words[0][1:].lower()])
            return Input.text(data.value, step=data.step)
        if data.kind == "choice":
            return Input.choice(data.value, step=data.step)
        if data.kind == "command":
            command = COMMANDS.get(data.value)
            return None if command is None else Input.command(command)
        upload = await self.repos.uploads.owned(data.value, visitor.room)
        if upload is None:
            return None
        kind = "photo" if upload.mime_type.startswith("image/") else "document"
        return Input.file(
            Attachment(
                kind=kind,
                file_ref=f"upload:{upload.id}",
                name=upload.name,
                mime_type=upload.mime_type,
                size=upload.size,
            ),
            step=data.step,
        )


def _one(args: tuple[Any, ...]) -> Any:
    """An event's one argument; none or several is a malformed event (it fails validation)."""
    return args[0] if len(args) == 1 else _MALFORMED


_MALFORMED = object()
BUSY_RETRY_MS = 500  # the first retry after a busy answer (widget.js applies +-25 %)


class WidgetNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Event handlers: validate, rate-limit, call the services, answer. Nothing else."""

    def __init__(self, channel: WidgetChannel) -> None:
        super().__init__(NAMESPACE)
        self.channel = channel

    def _fail(self, visitor: Visitor, event: str, code: str, **params: int | str) -> dict[str, Any]:
        self.channel.metrics.widget_events.labels(event, code).inc()
        return {"ok": False, "error": error(self.channel.i18n, visitor.locale, code, **params)}

    def _busy(self, visitor: Visitor, event: str) -> dict[str, Any]:
        """Nothing was done: the process is at its bound of inputs at once (bot.admission).

        The code is `unavailable`, which every widget (and docs/widget-protocol.md) has
        always retried with the same client_id: a widget loaded before `busy` existed
        would drop an input answered with an unknown code. The hint says how soon.
        """
        self.channel.metrics.widget_events.labels(event, "busy").inc()
        body = error(self.channel.i18n, visitor.locale, "busy")
        return {
            "ok": False,
            "error": {**body, "code": "unavailable", "retry_after_ms": BUSY_RETRY_MS},
        }

    def _ok(self, event: str, **body: Any) -> dict[str, Any]:
        self.channel.metrics.widget_events.labels(event, "ok").inc()
        return {"ok": True, **body}

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        channel = self.channel
        request: web.Request = environ["aiohttp.request"]
        ip = request.remote or "unknown"
        hint = auth.get("locale") if isinstance(auth, dict) else None
        locale = channel.i18n.negotiate(
            hint if isinstance(hint, str) else request.headers.get("Accept-Language")
        )

        def refuse(code: str) -> Refused:
            channel.metrics.widget_events.labels("connect", code).inc()
            return Refused(error(channel.i18n, locale, code))

        if not await channel.limiter.hit(channel.connects, "connect", ip):
            raise refuse("rate_limited")
        try:
            login = WidgetAuth.model_validate(auth if auth is not None else {})
        except ValidationError:
            raise refuse("bad_auth") from None
        if login.user is not None:
            if not channel.identity_valid(login.user, login.expires, login.signature):
                raise refuse("bad_signature")
            external_id = f"user:{login.user}"
        elif login.signature is not None or login.expires is not None:
            raise refuse("bad_auth")
        else:
            external_id = f"visitor:{login.visitor}"
        room = conversation_key(Channel.WIDGET.value, external_id)
        visitor = Visitor(external_id=external_id, room=room, ip=ip, locale=locale)
        await self.save_session(sid, {"visitor": visitor})
        await self.enter_room(sid, room)
        channel.metrics.widget_connections.inc()
        channel.metrics.widget_events.labels("connect", "ok").inc()
        channel.sio.start_background_task(channel.welcome, sid, visitor, login.last_seq)

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self.channel.metrics.widget_connections.dec()

    async def on_input(self, sid: str, *args: Any) -> dict[str, Any]:
        data = _one(args)
        channel = self.channel
        visitor = await channel.visitor(sid)
        # Past capacity: the widget sends it again in a moment. Checked before the rate
        # limits, so that the service's own overload does not use up a customer's
        # allowance; the slot is taken after them (holding slots while the limits are
        # counted cut the saturation rate from 350 to 288 inputs/s, docs/performance.md).
        if channel.admission.full("widget"):
            return self._busy(visitor, "input")
        if not await channel.allowed(visitor, sid):
            return self._fail(visitor, "input", "rate_limited")
        try:
            payload = WidgetInput.model_validate(data)
        except ValidationError:
            return self._fail(visitor, "input", "invalid")
        limit = channel.settings.text_max_chars
        if payload.kind == "text" and len(payload.value) > limit:
            return self._fail(visitor, "input", "too_large", limit=limit)
        if payload.kind == "text" and not clean_text(payload.value):
            # Nothing left once control characters and spaces go (the widget sends no
            # blank text; another client might): no empty message on a ticket.
            return self._fail(visitor, "input", "invalid")
        with channel.admission.slot("widget") as admitted:
            if not admitted:  # filled up meanwhile: rare, and then counted
                return self._busy(visitor, "input")
            return await self._input(sid, visitor, payload)

    async def _input(self, sid: str, visitor: Visitor, payload: WidgetInput) -> dict[str, Any]:
        channel = self.channel
        key = f"widget:{visitor.room}:{payload.client_id}"
        try:
            answered = await channel.slash(payload, visitor)
            if answered is not None:
                state = await channel.state(visitor)
                replies = [prompt_payload(r) for r in answered]
                return self._ok("input", seq=None, replies=replies, prompt=state["prompt"])
            inp = await channel.to_input(payload, visitor)
            if inp is None:
                code = "not_found" if payload.kind == "file" else "invalid"
                return self._fail(visitor, "input", code)
            handled = await channel.dialogue.handle_input(
                Channel.WIDGET,
                visitor.external_id,
                inp,
                locale_hint=visitor.locale,
                idempotency_key=key,
            )
            stored = handled.stored
            if stored is not None and not stored.created:  # a resend: answer again, once
                again = (await channel.state(visitor))["prompt"]
                return self._ok(
                    "input",
                    seq=stored.item.seq,
                    replies=[again] if again else [],
                    prompt=again,
                    duplicate=True,
                )
            replies = [prompt_payload(r) for r in handled.replies]
        except (DatabaseUnavailable, ConcurrentUpdate, Busy):
            # Passing (a lock held elsewhere included): the widget sends it again.
            return self._fail(visitor, "input", "unavailable")
        except Exception as exc:  # noqa: BLE001 - a bug costs this input, not the connection
            log.error("widget input failed", extra=failure(exc))
            return self._fail(visitor, "input", "error")
        # Applied and stored: from here on the answer is "ok" whatever else fails, or the
        # widget would drop an input that was kept (and the customer would type it again).
        ack: dict[str, Any] = {"seq": None, "replies": replies}
        if any(reply["erased"] for reply in replies):
            # Their other devices forget the conversation too (history, unsent inputs).
            await channel.sio.emit("erased", {}, room=visitor.room, skip_sid=sid, namespace=NAMESPACE)
        try:
            if stored is not None:  # the customer's other devices show it too
                ack["seq"] = stored.item.seq
                await channel.sio.emit(
                    "message",
                    message_payload(stored.item),
                    room=visitor.room,
                    skip_sid=sid,
                    namespace=NAMESPACE,
                )
            if handled.where is not None:  # known already: no need to read it again
                locale, prompt = handled.where
                state = {"locale": locale, "prompt": prompt_payload(prompt) if prompt else None}
            else:
                state = await channel.state(visitor)
            ack["prompt"] = state["prompt"]
            await channel.emit_state(visitor, skip=sid, state=state)
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning("widget input: follow-up failed", extra=failure(exc))
        return self._ok("input", **ack)

    async def _small_event(
        self,
        event: str,
        sid: str,
        data: Any,
        work: Callable[[Visitor, Any], Awaitable[dict[str, Any]]],
        *,
        unavailable: tuple[type[Exception], ...] = (DatabaseUnavailable,),
    ) -> dict[str, Any]:
        """What an event other than `input` does around its `work`: the rate limits, then
        its answer; always an answer (a payload of the wrong shape is `invalid`, the
        database down is `unavailable`, anything else `error`)."""
        visitor = await self.channel.visitor(sid)
        if not await self.channel.allowed(visitor, sid):
            return self._fail(visitor, event, "rate_limited")
        try:
            return await work(visitor, data)
        except ValidationError:
            return self._fail(visitor, event, "invalid")
        except unavailable:
            return self._fail(visitor, event, "unavailable")
        except Exception as exc:  # noqa: BLE001 - answer, always
            log.error("widget event failed", extra={"event": event, **failure(exc)})
            return self._fail(visitor, event, "error")

    async def on_language(self, sid: str, *args: Any) -> dict[str, Any]:
        channel = self.channel

        async def work(visitor: Visitor, data: Any) -> dict[str, Any]:
            choice = LanguageChoice.model_validate(data)
            replies = await channel.dialogue.set_language(
                Channel.WIDGET, visitor.external_id, choice.locale
            )
            changed = Visitor(visitor.external_id, visitor.room, visitor.ip, choice.locale)
            await self.save_session(sid, {"visitor": changed})
            return self._ok(
                "language",
                replies=[prompt_payload(r) for r in replies],
                strings=ui_strings(channel.i18n, choice.locale),
            )

        return await self._small_event(
            "language",
            sid,
            _one(args),
            work,
            unavailable=(DatabaseUnavailable, ConcurrentUpdate),
        )

    async def on_upload(self, sid: str, *args: Any) -> dict[str, Any]:
        channel = self.channel

        async def work(visitor: Visitor, data: Any) -> dict[str, Any]:
            Empty.model_validate(data)
            refusal = await channel.upload_refusal(visitor)
            if refusal is not None:
                return self._fail(visitor, "upload", refusal)
            seconds = channel.settings.widget_upload_token_seconds
            token = await channel.repos.upload_tokens.issue(
                visitor.room, timedelta(seconds=seconds)
            )
            return self._ok(
                "upload",
                # The locale rides along: the upload's errors speak the widget's language.
                url=f"{UPLOAD_PATH}?{urlencode({'locale': visitor.locale})}",
                token=token,
                expires_in=seconds,
                max_bytes=channel.settings.widget_upload_max_bytes,
                types=sorted(channel.settings.upload_types),
            )

        return await self._small_event("upload", sid, _one(args) if args else {}, work)

    async def on_missed(self, sid: str, *args: Any) -> dict[str, Any]:
        """A widget saw a message number skipped (a push lost on its way): the messages
        after `after`, one page, and `through`, how far the answer is complete."""
        channel = self.channel

        async def work(visitor: Visitor, data: Any) -> dict[str, Any]:
            asked = Missed.model_validate(data)
            customer = await channel.dialogue.customer(Channel.WIDGET, visitor.external_id)
            page = []
            if customer is not None:
                page = await channel.repos.messages.after_seq(
                    customer.id, asked.after, limit=HISTORY_PAGE
                )
            return self._ok(
                "missed",
                messages=[message_payload(m) for m in page],
                through=settled_through(asked.after, page),
            )

        return await self._small_event("missed", sid, _one(args), work)

    async def on_typing(self, sid: str, *args: Any) -> dict[str, Any]:
        async def work(visitor: Visitor, data: Any) -> dict[str, Any]:
            Typing.model_validate(data)
            # Shown to staff once the console listens (the staff console issue).
            return self._ok("typing")

        return await self._small_event("typing", sid, _one(args), work)
