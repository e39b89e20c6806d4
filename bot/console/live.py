"""Live updates for the console: socket.io namespace /staff on the widget's AsyncServer.

What is pushed is only which ticket changed and how (its id and reference), never
what anyone wrote: the page then fetches what it shows over HTTP, where access is
checked and views of personal data are audited (C3.1.4). One AsyncServer per process
(the widget's), so with a Redis manager an emit reaches staff connected elsewhere.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio

from bot.console.auth import staff_for_socket
from bot.domain.models import Customer, Message, Ticket
from bot.storage import DatabaseUnavailable

log = logging.getLogger(__name__)

NAMESPACE = "/staff"
ROOM = "staff"  # every signed-in staff member: the queue is shared
EVENT = "ticket"


class StaffLive:
    """A ticket listener (bot.services.tickets) that tells open console pages what changed."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def _emit(self, ticket: Ticket, what: str) -> None:
        payload = {"what": what, "ticket_id": ticket.id, "reference": ticket.reference}
        await self.sio.emit(EVENT, payload, room=ROOM, namespace=NAMESPACE)

    async def ticket_filed(self, ticket: Ticket, customer: Customer) -> None:
        await self._emit(ticket, "filed")

    async def customer_message(self, ticket: Ticket, message: Message) -> None:
        await self._emit(ticket, "customer_message")

    async def staff_message(self, ticket: Ticket, message: Message) -> None:
        await self._emit(ticket, "staff_message")

    async def ticket_changed(self, ticket: Ticket, change: str) -> None:
        await self._emit(ticket, change)


class StaffNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Only a signed-in, active staff member may listen (the session cookie decides)."""

    def __init__(self) -> None:
        super().__init__(NAMESPACE)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            staff = await staff_for_socket(environ)
        except DatabaseUnavailable:
            staff = None
        if staff is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        await self.enter_room(sid, ROOM)
        log.info("staff live connected", extra={"staff_id": staff.id})
