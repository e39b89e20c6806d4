"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 that a real ``aiogram.Bot`` talks to.

Telegram is out of reach from tests, so the bot is pointed at this server instead::

    async with FakeTelegram() as fake:
        api = TelegramAPIServer.from_base(fake.base_url)
        bot = Bot(fake.token, session=AiohttpSession(api=api))
        fake.user_text(42, "hello")            # queue an update for getUpdates
        await fake.wait_for("sendMessage")     # the bot answered
        assert fake.sent_texts(42) == ["Hi!"]

It holds one bot, records every call (``calls``), answers the methods a feedback bot uses with
realistic results, queues updates for long polling, serves files for download and can be told to
fail the next calls of a method (``fail_next``). Everything is per instance.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self, TypedDict, Unpack

import aiogram.methods
from aiogram.client.default import Default
from aiogram.methods.base import TelegramMethod
from aiogram.types import InputFile
from aiohttp import BodyPartReader, hdrs, web

DEFAULT_TOKEN = "123456:TEST"
DEFAULT_ICON_COLOR = 7322096  # 0x6FB9F0, Telegram's first forum topic colour
MAX_TEXT = 4096
MAX_CAPTION = 1024

# Which methods' results carry user-visible text, and in which parameter (see ``sent_texts``).
_TEXT_PARAMS = {
    "sendmessage": "text",
    "editmessagetext": "text",
    "sendphoto": "caption",
    "senddocument": "caption",
}


@dataclass
class Upload:
    """A file the bot uploaded in a multipart request."""

    field: str  # the multipart field that carried it (aiogram: a random key)
    filename: str
    content_type: str
    content: bytes


@dataclass
class Call:
    """One Bot API request as the fake saw it."""

    method: str  # as sent, e.g. "sendMessage"
    params: dict[str, Any]  # JSON-decoded where the value is JSON (ints, bools, dicts, lists)
    at: float  # time.monotonic() when the request arrived
    failed: bool = False
    error_code: int | None = None
    description: str | None = None
    result: Any = None  # the "result" returned on success (a copy)
    uploads: dict[str, Upload] = field(default_factory=dict)  # keyed by parameter ("photo")

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")

    def describe(self) -> str:
        status = f" FAILED {self.error_code} {self.description!r}" if self.failed else ""
        params = json.dumps(self.params, ensure_ascii=False, default=str)
        if len(params) > 200:
            params = params[:197] + "..."
        return f"{self.method}{status} {params}"


class MessageOptions(TypedDict, total=False):
    """Who sends an injected message and where (keyword arguments of the ``user_*`` builders)."""

    language_code: str  # "en" unless given
    chat_id: int | None  # the user's private chat (= user_id) unless given
    message_thread_id: int | None
    is_topic_message: bool
    chat_type: str  # "private" unless given; "group"/"supergroup" need chat_id
    from_user: dict[str, Any] | None  # replaces the generated User dict entirely
    push: bool  # False: build and return the update without queueing it (webhook tests)


@dataclass
class _Fault:
    method: str  # lower-case
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | str | None


@dataclass
class _Hold:
    method: str  # lower-case
    chat_id: int | str
    remaining: int
    release: asyncio.Event


@dataclass
class _Queued:
    update_id: int
    update: dict[str, Any]
    forced: bool  # pushed behind the confirmed offset: delivered once anyway (a re-delivery)


class _ApiError(Exception):
    def __init__(self, error_code: int, description: str) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description


CallMatch = str | Callable[[Call], bool]


class FakeTelegram:
    """A fake Bot API server for one bot; see the module docstring."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_id: int | None = None,
        bot_username: str = "test_bot",
        bot_first_name: str = "Test Bot",
        long_poll_cap: float = 1.0,
    ) -> None:
        head = token.split(":", 1)[0]
        self.token = token
        self.bot_id = bot_id if bot_id is not None else (int(head) if head.isdigit() else 123456)
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.long_poll_cap = long_poll_cap  # getUpdates never waits longer, so stop() is quick

        self.calls: list[Call] = []
        # Called with each call the fake answered successfully, right after it was answered
        # (a load generator waits on these instead of searching `calls` over and over).
        self.answered: list[Callable[[Call], None]] = []
        self.files: dict[str, bytes] = {}  # file_id -> content
        self.file_paths: dict[str, str] = {}  # file_id -> file_path
        self.downloads: list[str] = []  # file paths fetched from /file/bot<token>/...
        self.webhook: dict[str, Any] | None = None  # setWebhook parameters while one is set
        self.topics: dict[int, dict[int, dict[str, Any]]] = {}  # chat_id -> thread id -> topic

        self._faults: list[_Fault] = []
        self._stubs: dict[str, Any] = {}
        self._holds: list[_Hold] = []
        self._queue: list[_Queued] = []
        self._history: dict[int, dict[str, Any]] = {}  # update_id -> update, for repush
        self._last_update_id = 0
        self._confirmed = 0  # highest offset a getUpdates call confirmed
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._handlers = self._builtin_handlers()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already running")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._closing = False
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._closing = True  # wakes pending long polls, which then answer []
        self._notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``TelegramAPIServer.from_base``."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
        }

    # -- inspecting calls --------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """Calls of one method (case-insensitive), failed ones included, in arrival order."""
        wanted = method.lower()
        return [c for c in self.calls if c.method.lower() == wanted]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts of successful sendMessage/editMessageText calls and captions of successful
        sendPhoto/sendDocument calls, in order (captionless media are skipped)."""
        texts: list[str] = []
        for call in self.calls:
            param = _TEXT_PARAMS.get(call.method.lower())
            if param is None or call.failed or call.result is None:
                continue
            if chat_id is not None and call.chat_id != chat_id:
                continue
            value = call.params.get(param)
            if isinstance(value, str):
                texts.append(value)
        return texts

    async def wait_for(
        self,
        what: CallMatch,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - the one knob a test needs, with a clear error
    ) -> list[Call]:
        """Wait until ``count`` recorded calls match; return all matching calls so far.

        ``what`` is a method name (case-insensitive; failed calls count too) or a predicate.
        """
        match: Callable[[Call], bool]
        if isinstance(what, str):
            wanted = what.lower()
            description = repr(what)
            match = lambda call: call.method.lower() == wanted  # noqa: E731
        else:
            match = what
            description = getattr(what, "__name__", repr(what))
        found: list[Call] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [c for c in self.calls if match(c)]
                    if len(found) >= count:
                        return found
                    await self._changed.wait()
        except TimeoutError:
            recent = [c for c in self.calls if c.method.lower() != "getupdates"][-15:]
            listing = "\n".join(f"  {c.describe()}" for c in recent) or "  (none)"
            raise TimeoutError(
                f"waited {timeout}s for {count} call(s) matching {description}, "
                f"got {len(found)}; last calls (getUpdates omitted):\n{listing}"
            ) from None

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The fake's current view of a message (sent by the bot or injected), if known."""
        stored = self._messages.get((chat_id, message_id))
        return copy.deepcopy(stored) if stored is not None else None

    def commands(
        self, language_code: str = "", scope: dict[str, Any] | None = None
    ) -> list[dict[str, Any]] | None:
        """The commands last set by setMyCommands for this language and scope (default scope)."""
        return self._commands.get((_scope_key(scope), language_code))

    @property
    def my_commands(self) -> dict[str, list[dict[str, Any]]]:
        """Default-scope commands by language_code ("" = no language)."""
        default = _scope_key(None)
        return {lang: cmds for (scope, lang), cmds in self._commands.items() if scope == default}

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return [copy.deepcopy(q.update) for q in self._queue]

    # -- scripting the server -----------------------------------------------------------------

    def add_file(self, file_id: str, content: bytes, path: str | None = None) -> str:
        """Make a file known to getFile and downloadable; returns its file_path."""
        file_path = path if path is not None else f"documents/{file_id}"
        self.files[file_id] = content
        self.file_paths[file_id] = file_path
        return file_path

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (for ``chat_id`` only, if given) fail."""
        if description is None:
            description = _default_description(error_code, retry_after)
        self._faults.append(
            _Fault(method.lower(), error_code, description, retry_after, times, chat_id)
        )

    def hold(self, method: str, *, chat_id: int | str, times: int = 1) -> asyncio.Event:
        """Leave the next ``times`` calls of ``method`` for ``chat_id`` unanswered until the
        returned event is set: a Bot API that hangs, or a bot killed in the middle of a call."""
        release = asyncio.Event()
        self._holds.append(_Hold(method.lower(), chat_id, times, release))
        return release

    def stub(self, method: str, result: Any) -> None:
        """Answer ``method`` with ``result`` (or ``result(call)`` if callable), overriding the
        built-in answer or the 404 of an unknown method."""
        self._stubs[method.lower()] = result

    # -- updates -----------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id.

        Without "update_id" the next one is assigned. With an explicit id below an offset the bot
        already confirmed (a duplicate of an earlier update), it is still delivered once, as a
        re-delivery after a crash would be.
        """
        update = copy.deepcopy(update)
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            update_id = self._next_update_id()
            update["update_id"] = update_id
        else:
            self._last_update_id = max(self._last_update_id, update_id)
        self._history.setdefault(update_id, copy.deepcopy(update))
        self._queue.append(_Queued(update_id, update, forced=update_id < self._confirmed))
        self._queue.sort(key=lambda q: q.update_id)
        self._notify()
        return update_id

    def repush(self, update_id: int) -> int:
        """Queue the exact same earlier update again (a duplicate delivery)."""
        try:
            update = self._history[update_id]
        except KeyError:
            raise KeyError(f"no update with update_id {update_id} was built") from None
        return self.push_update(update)

    def update(self, update_id: int) -> dict[str, Any]:
        """An update built earlier (pushed or not)."""
        return copy.deepcopy(self._history[update_id])

    def make_update(self, payload: dict[str, Any], *, push: bool = True) -> dict[str, Any]:
        """Wrap ``payload`` (``{"message": {...}}``) with the next update_id; push it or not."""
        update = {"update_id": self._next_update_id(), **copy.deepcopy(payload)}
        if push:
            self.push_update(update)
        else:
            self._history.setdefault(update["update_id"], copy.deepcopy(update))
        return update

    def user_text(
        self, user_id: int, text: str, **options: Unpack[MessageOptions]
    ) -> dict[str, Any]:
        return self._user_message(user_id, {"text": text}, options)

    def user_command(
        self, user_id: int, command: str, args: str | None = None, **options: Unpack[MessageOptions]
    ) -> dict[str, Any]:
        """``/command args`` with a bot_command entity (``command`` with or without the slash)."""
        head = command if command.startswith("/") else f"/{command}"
        text = f"{head} {args}" if args else head
        entity = {"type": "bot_command", "offset": 0, "length": len(head)}
        return self._user_message(user_id, {"text": text, "entities": [entity]}, options)

    def user_photo(
        self,
        user_id: int,
        file_id: str,
        *,
        caption: str | None = None,
        width: int = 1280,
        height: int = 960,
        **options: Unpack[MessageOptions],
    ) -> dict[str, Any]:
        size = {**self._file_ref(file_id), "width": width, "height": height}
        content: dict[str, Any] = {"photo": [size]}
        if caption is not None:
            content["caption"] = caption
        return self._user_message(user_id, content, options)

    def user_document(
        self,
        user_id: int,
        file_id: str,
        file_name: str,
        mime_type: str,
        *,
        caption: str | None = None,
        **options: Unpack[MessageOptions],
    ) -> dict[str, Any]:
        document = {**self._file_ref(file_id), "file_name": file_name, "mime_type": mime_type}
        content: dict[str, Any] = {"document": document}
        if caption is not None:
            content["caption"] = caption
        return self._user_message(user_id, content, options)

    def user_sticker(
        self,
        user_id: int,
        file_id: str | None = None,
        *,
        emoji: str = "👍",
        **options: Unpack[MessageOptions],
    ) -> dict[str, Any]:
        sticker = {
            **self._file_ref(file_id or f"sticker-{next(self._counter)}"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._user_message(user_id, {"sticker": sticker}, options)

    def user_voice(
        self,
        user_id: int,
        file_id: str | None = None,
        *,
        duration: int = 3,
        **options: Unpack[MessageOptions],
    ) -> dict[str, Any]:
        voice = {
            **self._file_ref(file_id or f"voice-{next(self._counter)}"),
            "duration": duration,
            "mime_type": "audio/ogg",
        }
        return self._user_message(user_id, {"voice": voice}, options)

    def user_location(
        self,
        user_id: int,
        latitude: float = 31.2304,
        longitude: float = 121.4737,
        **options: Unpack[MessageOptions],
    ) -> dict[str, Any]:
        location = {"latitude": latitude, "longitude": longitude}
        return self._user_message(user_id, {"location": location}, options)

    def user_callback(
        self,
        user_id: int,
        data: str,
        *,
        message_id: int,
        language_code: str = "en",
        chat_id: int | None = None,
        from_user: dict[str, Any] | None = None,
        push: bool = True,
    ) -> dict[str, Any]:
        """A button press on ``message_id`` (in the user's private chat unless ``chat_id``)."""
        user = from_user or self._user(user_id, language_code)
        cid = chat_id if chat_id is not None else user_id
        message = self._messages.get((cid, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "date": _now(),
                "chat": self._chat(cid),
                "from": self.bot_user,
            }
        query = {
            "id": str(4_000_000_000_000_000 + next(self._counter)),
            "from": user,
            "chat_instance": f"{cid}-instance",
            "message": copy.deepcopy(message),
            "data": data,
        }
        return self.make_update({"callback_query": query}, push=push)

    def group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        message_thread_id: int,
        reply_to_message_id: int | None = None,
        language_code: str = "en",
        from_user: dict[str, Any] | None = None,
        push: bool = True,
    ) -> dict[str, Any]:
        """A text in a topic of a forum supergroup (a staff group).

        As Telegram does, a message that replies to nothing in particular carries the topic's
        creation service message as ``reply_to_message``.
        """
        chat = self._chat(chat_id)
        chat.update({"type": "supergroup", "is_forum": True})
        chat.setdefault("title", f"Group {chat_id}")
        if reply_to_message_id is None:
            self._topic_created(chat_id, message_thread_id)
        reply_to = reply_to_message_id if reply_to_message_id is not None else message_thread_id
        return self._user_message(
            user_id,
            {"text": text, "reply_to_message": self._reply_stub(chat_id, reply_to)},
            {
                "language_code": language_code,
                "chat_id": chat_id,
                "message_thread_id": message_thread_id,
                "is_topic_message": True,
                "chat_type": "supergroup",
                "from_user": from_user,
                "push": push,
            },
        )

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw, parts = await _read_params(request)
        call = Call(method=method, params=_decode_params(method, raw), at=time.monotonic())
        referenced: set[str] = set()
        for name, value in raw.items():
            key = value.removeprefix("attach://")
            if key != value and key in parts:
                call.uploads[name] = parts[key]
                referenced.add(key)
        for key, part in parts.items():
            if key not in referenced:  # a client that uploads under the parameter name itself
                call.uploads.setdefault(key, part)
        self.calls.append(call)
        self._notify()
        if request.match_info["token"] != self.token:
            return self._failure(call, 401, "Unauthorized", None)
        try:
            fault = self._take_fault(call)
            if fault is not None:
                return self._failure(call, fault.error_code, fault.description, fault.retry_after)
            result = await self._answer(call)
        except _ApiError as error:
            return self._failure(call, error.error_code, error.description, None)
        call.result = copy.deepcopy(result)
        self._notify()
        for listener in self.answered:
            listener(call)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized", None)
        path = request.match_info["path"]
        for file_id, file_path in self.file_paths.items():
            if file_path == path and file_id in self.files:
                self.downloads.append(path)
                return web.Response(
                    body=self.files[file_id], content_type="application/octet-stream"
                )
        return _error_response(404, "Not Found", None)

    def _failure(
        self, call: Call, error_code: int, description: str, retry_after: int | None
    ) -> web.Response:
        call.failed = True
        call.error_code = error_code
        call.description = description
        self._notify()
        return _error_response(error_code, description, retry_after)

    def _take_fault(self, call: Call) -> _Fault | None:
        for fault in self._faults:
            if fault.method != call.method.lower() or fault.remaining <= 0:
                continue
            if fault.chat_id is not None and fault.chat_id != call.chat_id:
                continue
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.remove(fault)
            return fault
        return None

    async def _answer(self, call: Call) -> Any:
        name = call.method.lower()
        for hold in self._holds:
            if hold.method == name and hold.chat_id == call.chat_id and hold.remaining > 0:
                hold.remaining -= 1
                await hold.release.wait()
                break
        if name in self._stubs:
            stub = self._stubs[name]
            return stub(call) if callable(stub) else copy.deepcopy(stub)
        if name == "getupdates":
            return await self._get_updates(call.params)
        handler = self._handlers.get(name)
        if handler is None:
            raise _ApiError(404, "Not Found: method not found")
        return handler(call)

    def _builtin_handlers(self) -> dict[str, Callable[[Call], Any]]:
        def true(_: Call) -> bool:
            return True

        return {
            "getme": lambda _: self.bot_user,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": true,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "copymessage": self._copy_message,
            "getfile": self._get_file,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "createforumtopic": self._create_forum_topic,
            "editforumtopic": self._edit_forum_topic,
            "closeforumtopic": lambda c: self._set_topic_closed(c, closed=True),
            "reopenforumtopic": lambda c: self._set_topic_closed(c, closed=False),
            "deleteforumtopic": self._delete_forum_topic,
            "sendchataction": true,
            "deletemessage": self._delete_message,
        }

    # -- method implementations ------------------------------------------------------------

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset"), 0)
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        wait = min(max(float(_as_int(params.get("timeout"), 0)), 0.0), self.long_poll_cap)
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        batch = self._queue[:limit]
        while not batch and not self._closing and (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                break
            batch = self._queue[:limit]
        for queued in batch:
            queued.forced = False  # delivered: from now on an offset confirms it
        return [copy.deepcopy(q.update) for q in batch]

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._queue = [q for q in self._queue if q.update_id >= offset or q.forced]
            self._confirmed = max(self._confirmed, offset)
        elif offset < 0:
            self._queue = self._queue[offset:]

    def _send_message(self, call: Call) -> dict[str, Any]:
        text = call.params.get("text")
        if not isinstance(text, str) or not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        content = {"text": text, "entities": call.params.get("entities")}
        return self._bot_message(call.params, content)

    def _send_photo(self, call: Call) -> dict[str, Any]:
        file_id = self._incoming_file(call, "photo", "photos", "photo.jpg")
        size = {**self._file_ref(file_id), "width": 1280, "height": 960}
        return self._bot_message(call.params, {"photo": [size], **self._caption(call)})

    def _send_document(self, call: Call) -> dict[str, Any]:
        file_id = self._incoming_file(call, "document", "documents", "document")
        document = {**self._file_ref(file_id)}
        upload = call.uploads.get("document")
        if upload is not None:
            document["file_name"] = upload.filename
            document["mime_type"] = upload.content_type
        return self._bot_message(call.params, {"document": document, **self._caption(call)})

    def _caption(self, call: Call) -> dict[str, Any]:
        caption = call.params.get("caption")
        if isinstance(caption, str) and len(caption) > MAX_CAPTION:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return {"caption": caption, "caption_entities": call.params.get("caption_entities")}

    def _incoming_file(self, call: Call, param: str, folder: str, default_name: str) -> str:
        upload = call.uploads.get(param)
        if upload is not None:
            file_id = f"{param}-{next(self._counter)}"
            self.add_file(file_id, upload.content, f"{folder}/{upload.filename or default_name}")
            return file_id
        value = call.params.get(param)
        if not isinstance(value, str) or not value:
            raise _ApiError(400, f"Bad Request: there is no {param} in the request")
        if value.startswith(("http://", "https://")):
            return f"{param}-{next(self._counter)}"  # Telegram fetches URLs itself
        return value

    def _edited(self, call: Call) -> dict[str, Any] | None:
        """The stored message an edit targets (created if unknown); None for inline messages."""
        params = call.params
        if params.get("inline_message_id"):
            return None
        chat = self._chat(params.get("chat_id"))
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        key = (chat["id"], message_id)
        message = self._messages.get(key)
        if message is None:
            message = {"message_id": message_id, "date": _now(), "chat": chat}
            message["from"] = self.bot_user
            self._messages[key] = message
        message["edit_date"] = _now()
        _set_markup(message, params.get("reply_markup"))
        return message

    def _edit_message_text(self, call: Call) -> Any:
        text = call.params.get("text")
        if not isinstance(text, str) or not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        message = self._edited(call)
        if message is None:
            return True
        message["text"] = text
        _set_optional(message, "entities", call.params.get("entities"))
        return message

    def _edit_message_caption(self, call: Call) -> Any:
        message = self._edited(call)
        if message is None:
            return True
        for key, value in self._caption(call).items():
            _set_optional(message, key, value)
        return message

    def _edit_message_reply_markup(self, call: Call) -> Any:
        message = self._edited(call)
        return True if message is None else message

    def _delete_message(self, call: Call) -> bool:
        chat_id = call.params.get("chat_id")
        message_id = call.params.get("message_id")
        if isinstance(chat_id, int) and isinstance(message_id, int):
            self._messages.pop((chat_id, message_id), None)
        return True

    def _copy_message(self, call: Call) -> dict[str, int]:
        source_chat = call.params.get("from_chat_id")
        source_id = call.params.get("message_id")
        source = (
            self._messages.get((source_chat, source_id))
            if isinstance(source_chat, int) and isinstance(source_id, int)
            else None
        )
        content: dict[str, Any] = {}
        if source is not None:
            kept = ("text", "entities", "photo", "document", "sticker", "voice", "location")
            content = {k: copy.deepcopy(v) for k, v in source.items() if k in kept}
            if "caption" in source or "caption" in call.params:
                content["caption"] = call.params.get("caption", source.get("caption"))
        message = self._bot_message(call.params, content)
        return {"message_id": message["message_id"]}

    def _get_file(self, call: Call) -> dict[str, Any]:
        file_id = call.params.get("file_id")
        if not isinstance(file_id, str) or file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": _unique_id(file_id),
            "file_size": len(self.files[file_id]),
            "file_path": self.file_paths.get(file_id, f"documents/{file_id}"),
        }

    def _set_my_commands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, 'Bad Request: parameter "commands" is required')
        self._commands[self._commands_key(call)] = commands
        return True

    def _get_my_commands(self, call: Call) -> list[dict[str, Any]]:
        return self._commands.get(self._commands_key(call), [])

    def _delete_my_commands(self, call: Call) -> bool:
        self._commands.pop(self._commands_key(call), None)
        return True

    def _commands_key(self, call: Call) -> tuple[str, str]:
        scope = call.params.get("scope")
        language = call.params.get("language_code")
        return (
            _scope_key(scope if isinstance(scope, dict) else None),
            language if isinstance(language, str) else "",
        )

    def _set_webhook(self, call: Call) -> bool:
        if not isinstance(call.params.get("url"), str) or not call.params["url"]:
            raise _ApiError(400, "Bad Request: bad webhook: URL must be provided")
        self.webhook = dict(call.params)
        if call.params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _delete_webhook(self, call: Call) -> bool:
        self.webhook = None
        if call.params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _get_webhook_info(self, _: Call) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self.webhook and isinstance(self.webhook.get("allowed_updates"), list):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def _create_forum_topic(self, call: Call) -> dict[str, Any]:
        chat = self._chat(call.params.get("chat_id"))
        name = call.params.get("name")
        if not isinstance(name, str) or not name:
            raise _ApiError(400, "Bad Request: TOPIC_TITLE_EMPTY")
        icon_color = _as_int(call.params.get("icon_color"), DEFAULT_ICON_COLOR)
        thread_id = self._next_message_id(chat["id"])
        topic: dict[str, Any] = {"message_thread_id": thread_id, "name": name}
        topic["icon_color"] = icon_color
        _set_optional(topic, "icon_custom_emoji_id", call.params.get("icon_custom_emoji_id"))
        self.topics.setdefault(chat["id"], {})[thread_id] = {**topic, "is_closed": False}
        self._topic_created(chat["id"], thread_id, name, icon_color)
        return topic

    def _topic(self, call: Call) -> dict[str, Any]:
        chat = self._chat(call.params.get("chat_id"))
        thread_id = call.params.get("message_thread_id")
        topic = (
            self.topics.get(chat["id"], {}).get(thread_id) if isinstance(thread_id, int) else None
        )
        if topic is None:
            raise _ApiError(400, "Bad Request: message thread not found")
        return topic

    def _edit_forum_topic(self, call: Call) -> bool:
        topic = self._topic(call)
        for key in ("name", "icon_custom_emoji_id"):
            if key in call.params:
                topic[key] = call.params[key]
        return True

    def _set_topic_closed(self, call: Call, *, closed: bool) -> bool:
        self._topic(call)["is_closed"] = closed
        return True

    def _delete_forum_topic(self, call: Call) -> bool:
        topic = self._topic(call)
        del self.topics[self._chat(call.params.get("chat_id"))["id"]][topic["message_thread_id"]]
        return True

    # -- building objects ------------------------------------------------------------------

    def _bot_message(self, params: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params.get("chat_id"))
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": _now(),
            "chat": copy.deepcopy(chat),
            "from": self.bot_user,
        }
        thread_id = params.get("message_thread_id")
        if isinstance(thread_id, int) and chat.get("is_forum"):
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        reply_parameters = params.get("reply_parameters")
        reply_to = params.get("reply_to_message_id")
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id")
        if isinstance(reply_to, int):
            message["reply_to_message"] = self._reply_stub(chat["id"], reply_to)
        elif isinstance(thread_id, int) and chat.get("is_forum"):
            self._topic_created(chat["id"], thread_id)
            message["reply_to_message"] = self._reply_stub(chat["id"], thread_id)
        for key, value in content.items():
            _set_optional(message, key, value)
        _set_markup(message, params.get("reply_markup"))
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    def _user_message(
        self, user_id: int, content: dict[str, Any], options: MessageOptions
    ) -> dict[str, Any]:
        user = options.get("from_user") or self._user(user_id, options.get("language_code", "en"))
        chat_type = options.get("chat_type", "private")
        chat_id = options.get("chat_id")
        if chat_type == "private":
            cid = chat_id if chat_id is not None else user_id
            chat = self._chat(cid)
            chat.update({"type": "private", "first_name": user.get("first_name", "User")})
            if "username" in user:
                chat["username"] = user["username"]
        else:
            if chat_id is None:
                raise ValueError(f"chat_id is required for a {chat_type} chat")
            cid = chat_id
            chat = self._chat(cid)
            chat["type"] = chat_type
            chat.setdefault("title", f"Group {cid}")
        thread_id = options.get("message_thread_id")
        message: dict[str, Any] = {
            "message_id": self._next_message_id(cid),
            "date": _now(),
            "chat": copy.deepcopy(chat),
            "from": user,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        if options.get("is_topic_message"):
            message["is_topic_message"] = True
        message.update(content)
        self._messages[(cid, message["message_id"])] = message
        return self.make_update({"message": message}, push=options.get("push", True))

    def _user(self, user_id: int, language_code: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": f"User {user_id}",
            "username": f"user{user_id}",
            "language_code": language_code,
        }

    def _chat(self, chat_id: object) -> dict[str, Any]:
        """The stored chat object (created on first use), or 400 "chat not found"."""
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
            else:
                chat = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
                chat["is_forum"] = True
            self._chats[chat_id] = chat
        return chat

    def _reply_stub(self, chat_id: int, message_id: int) -> dict[str, Any]:
        stored = self._messages.get((chat_id, message_id))
        if stored is not None:
            reply = copy.deepcopy(stored)
            reply.pop("reply_to_message", None)  # Telegram nests only one level
            return reply
        return {
            "message_id": message_id,
            "date": _now(),
            "chat": copy.deepcopy(self._chat(chat_id)),
        }

    def _topic_created(
        self,
        chat_id: int,
        thread_id: int,
        name: str | None = None,
        icon_color: int = DEFAULT_ICON_COLOR,
    ) -> None:
        """Store the "forum_topic_created" service message a topic starts with (if missing).

        Its message_id is the topic's message_thread_id, as in Telegram.
        """
        if (chat_id, thread_id) in self._messages:
            return
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), thread_id)
        self._messages[(chat_id, thread_id)] = {
            "message_id": thread_id,
            "date": _now(),
            "chat": copy.deepcopy(self._chat(chat_id)),
            "from": self.bot_user,
            "message_thread_id": thread_id,
            "forum_topic_created": {"name": name or f"Topic {thread_id}", "icon_color": icon_color},
        }

    def _file_ref(self, file_id: str) -> dict[str, Any]:
        ref: dict[str, Any] = {"file_id": file_id, "file_unique_id": _unique_id(file_id)}
        if file_id in self.files:
            ref["file_size"] = len(self.files[file_id])
        return ref

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _next_update_id(self) -> int:
        self._last_update_id += 1
        return self._last_update_id

    def _notify(self) -> None:
        """Wake everyone waiting for a change (new call, new update, shutdown)."""
        self._changed.set()
        self._changed = asyncio.Event()


# -- request parsing ---------------------------------------------------------------------------


async def _read_params(request: web.Request) -> tuple[dict[str, str], dict[str, Upload]]:
    """Form fields as strings, plus uploaded files by multipart field name."""
    raw: dict[str, str] = {}
    parts: dict[str, Upload] = {}
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                content_type = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
                content = bytes(await part.read(decode=True))
                parts[part.name] = Upload(part.name, part.filename, content_type, content)
            else:
                raw[part.name] = await part.text()
    elif request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            for key, value in body.items():
                raw[str(key)] = value if isinstance(value, str) else json.dumps(value)
    elif request.can_read_body:
        form = await request.post()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key, value in request.query.items():
        raw.setdefault(key, value)
    return raw, parts


def _decode_params(method: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """JSON-decode values, except parameters aiogram declares as plain strings (texts, ids)."""
    keep = _string_params().get(method.lower(), frozenset())
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in keep or value.startswith("attach://"):
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@cache
def _string_params() -> dict[str, frozenset[str]]:
    """Per API method (lower-case), the parameters whose type is only str (or a file/default).

    aiogram sends a str as is and json.dumps everything else, so a text "42" must not be decoded.
    """
    found: dict[str, frozenset[str]] = {}
    for obj in vars(aiogram.methods).values():
        if not (isinstance(obj, type) and issubclass(obj, TelegramMethod)):
            continue
        api_method = obj.__dict__.get("__api_method__")
        if isinstance(api_method, str):
            found[api_method.lower()] = frozenset(
                name for name, info in obj.model_fields.items() if _is_stringish(info.annotation)
            )
    return found


def _is_stringish(annotation: object) -> bool:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
    else:
        members = [annotation]
    return bool(members) and all(
        m is str or (isinstance(m, type) and issubclass(m, InputFile | Default)) for m in members
    )


# -- small helpers -----------------------------------------------------------------------------


def _error_response(error_code: int, description: str, retry_after: int | None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": error_code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=error_code)


def _default_description(error_code: int, retry_after: int | None) -> str:
    if error_code == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    return {
        400: "Bad Request: chat not found",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request",
    }.get(error_code, "Internal Server Error")


def _set_optional(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = copy.deepcopy(value)


def _set_markup(message: dict[str, Any], markup: Any) -> None:
    """Messages carry only inline keyboards; an edit without one removes it, as in Telegram."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = copy.deepcopy(markup)
    else:
        message.pop("reply_markup", None)


def _scope_key(scope: dict[str, Any] | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _unique_id(file_id: str) -> str:
    return f"u{file_id}"[:32]


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _now() -> int:
    return int(time.time())
