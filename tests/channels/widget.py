"""A widget visitor played by python-socketio's real AsyncClient."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Any

import socketio

from bot.domain.models import Channel, Customer
from bot.storage import Repositories
from tests.support import eventually

NAMESPACE = "/widget"


def sign(secret: str, user: str, expires: int) -> str:
    """What the host app's server does: HMAC-SHA256 of "<user>:<expires>"."""
    message = f"{user}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WidgetVisitor:
    """One browser tab with the widget: connects, sends inputs, collects what arrives."""

    def __init__(
        self,
        url: str,
        *,
        visitor: str | None = None,
        user: str | None = None,
        signature: str | None = None,
        expires: int | None = None,
        locale: str = "en",
        origin: str | None = None,
    ) -> None:
        self.url = url
        self.visitor = visitor or secrets.token_urlsafe(16)
        self.user = user
        self.signature = signature
        self.expires = expires
        self.locale = locale
        self.origin = origin
        self.client = socketio.AsyncClient(reconnection=False)
        self.history: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.errors: list[Any] = []
        self.refused: dict[str, Any] | None = None
        self.last_seq = 0
        self._changed = asyncio.Event()
        client = self.client
        client.on("history", self._on_history, namespace=NAMESPACE)
        client.on("message", self._on_message, namespace=NAMESPACE)
        client.on("state", self._on_state, namespace=NAMESPACE)
        client.on("error", self._on_error, namespace=NAMESPACE)
        client.on("connect_error", self._on_refused, namespace=NAMESPACE)

    def _seen(self, message: dict[str, Any]) -> None:
        self.last_seq = max(self.last_seq, int(message["seq"]))
        self._changed.set()

    async def _on_history(self, data: dict[str, Any]) -> None:
        self.history.extend(data["messages"])
        for message in data["messages"]:
            self._seen(message)

    async def _on_message(self, data: dict[str, Any]) -> None:
        self.messages.append(data)
        self._seen(data)

    async def _on_state(self, data: dict[str, Any]) -> None:
        self.states.append(data)
        self._changed.set()

    async def _on_error(self, data: Any) -> None:
        self.errors.append(data)

    async def _on_refused(self, data: Any) -> None:
        self.refused = data

    def auth(self, last_seq: int | None = None) -> dict[str, Any]:
        auth: dict[str, Any] = {"visitor": self.visitor, "locale": self.locale}
        if self.user is not None:
            auth["user"] = self.user
        if self.signature is not None:
            auth["signature"] = self.signature
        if self.expires is not None:
            auth["expires"] = self.expires
        auth["last_seq"] = self.last_seq if last_seq is None else last_seq
        return auth

    async def connect(self, auth: Any = None, *, wait_state: bool = True) -> None:
        headers = {"Origin": self.origin} if self.origin else {}
        await self.client.connect(
            self.url,
            namespaces=[NAMESPACE],
            auth=self.auth() if auth is None else auth,
            headers=headers,
            transports=["websocket"],
            wait_timeout=10,
        )
        if wait_state:
            before = len(self.states)
            await self.until(lambda: len(self.states) > before, "the state after connecting")

    async def disconnect(self) -> None:
        """Disconnect, and release the client's HTTP session (also after a refused connect)."""
        await self.client.shutdown()
        eio = self.client.eio
        await eio.disconnect()
        if eio.http is not None and not eio.http.closed:
            await eio.http.close()

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        result = await self.client.call(event, data, namespace=NAMESPACE, timeout=15)
        assert isinstance(result, dict)
        return result

    async def send(
        self, kind: str, value: str, client_id: str | None = None, step: str | None = None
    ) -> dict[str, Any]:
        data = {"client_id": client_id or secrets.token_urlsafe(12), "kind": kind, "value": value}
        if step is not None:
            data["step"] = step
        return await self.call("input", data)

    async def to_attachments(self) -> None:
        """Consent given, category and rating chosen, text written: files are asked for."""
        await self.send("command", "start")
        for value in ("yes", "no", "yes", "product_quality", "2"):
            await self.send("choice", value)
        ack = await self.send("text", "The lid is cracked, see the photo.")
        assert ack["prompt"]["step"] == "attachments", ack

    async def until(self, check: Any, what: str, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        async def done() -> bool | None:
            return True if check() else None

        await eventually(done, what, timeout=timeout)

    async def message_containing(self, needle: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages if needle in m["text"]), None)

        await self.until(lambda: found() is not None, f"a message containing {needle!r}")
        result = found()
        assert result is not None
        return result

    async def give_feedback(self, text: str = "The checkout page froze twice.") -> dict[str, Any]:
        """The whole flow by choices and text; returns the acknowledgement message."""
        ack = await self.send("command", "start")
        assert ack["ok"], ack
        for value in ("yes", "yes", "yes", "user_interface", "3"):
            ack = await self.send("choice", value)
            assert ack["ok"], ack
        ack = await self.send("text", text)
        assert ack["replies"][-1]["step"] == "attachments", ack
        for value in ("done", "skip", "submit"):
            ack = await self.send("choice", value)
            assert ack["ok"], ack
        await self.until(
            lambda: any(m["kind"] == "ack" for m in self.messages), "the acknowledgement"
        )
        return next(m for m in self.messages if m["kind"] == "ack")


async def customer_of(repos: Repositories, visitor: WidgetVisitor) -> Customer:
    """The customer the service keeps for this widget visitor (they must be kept)."""
    customer = await repos.customers.find(Channel.WIDGET, f"visitor:{visitor.visitor}")
    assert customer is not None, "no customer kept for this visitor"
    return customer
