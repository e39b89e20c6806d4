"""Tickets for console tests, filed the way customers file them (the dialogue service)."""

from __future__ import annotations

from bot.app import Container
from bot.domain.models import Channel, Ticket
from tests.services.chat import Chat


async def file_ticket(
    container: Container,
    user: str,
    text: str = "The parcel arrived two days late.",
    *,
    channel: Channel = Channel.TELEGRAM,
    locale: str = "en",
) -> Ticket:
    await Chat(container, user, locale=locale, channel=channel).happy_path(text)
    await container.delivery.drain()
    customer = await container.repos.customers.find(channel, user)
    assert customer is not None
    ticket = await container.repos.tickets.latest_open(customer.id)
    assert ticket is not None
    return ticket
