"""The /staff socket.io namespace: signed-in staff hear which ticket changed, nobody else."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from bot.app import Container
from bot.domain.models import Channel
from tests.console.support import Client, sign_in
from tests.console.tickets import file_ticket
from tests.support import eventually


async def listen(console: Client, cookie: str | None) -> tuple[socketio.AsyncClient, list[Any]]:
    heard: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)

    async def on_ticket(data: Any) -> None:
        heard.append(data)

    client.on("ticket", on_ticket, namespace="/staff")
    headers = {"Cookie": cookie} if cookie else {}
    await client.connect(
        str(console.make_url("/")),
        namespaces=["/staff"],
        headers=headers,
        transports=["websocket"],
        wait_timeout=10,
    )
    return client, heard


async def close(client: socketio.AsyncClient) -> None:
    await client.shutdown()
    eio = client.eio
    if eio.http is not None and not eio.http.closed:
        await eio.http.close()


async def test_c3_1_4_an_anonymous_listener_is_refused(console: Client) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await listen(console, None)


async def test_staff_hear_new_tickets_and_customer_messages_live(
    console: Client, container: Container
) -> None:
    await sign_in(console, container.repos)
    cookie = "; ".join(f"{c.key}={c.value}" for c in console.session.cookie_jar)
    client, heard = await listen(console, cookie)
    try:
        ticket = await file_ticket(container, "201")

        async def filed() -> Any:
            return next((h for h in heard if h["what"] == "filed"), None)

        event = await eventually(filed, "the new ticket's event")
        assert event == {"what": "filed", "ticket_id": ticket.id, "reference": ticket.reference}
        customer = await container.repos.customers.find(Channel.TELEGRAM, "201")
        assert customer is not None
        await container.tickets.add_customer_message(customer, ticket, "Any news?")

        async def message() -> Any:
            return next((h for h in heard if h["what"] == "customer_message"), None)

        assert "Any news?" not in str(await eventually(message, "the customer message event"))
    finally:
        await close(client)
