"""Telegram's sending limits, kept by the rate limiter (slots, not durations, are checked)."""

from __future__ import annotations

from aiogram import Bot

from bot.channels.telegram.sender import RateLimiter, TelegramSender
from bot.domain.models import Author, Channel, Customer, Direction, Message
from bot.services.delivery import RetryLater


def test_one_chat_gets_one_slot_a_second_and_others_are_not_held_up() -> None:
    limiter = RateLimiter(per_second=30, per_chat_seconds=1.0)
    first = limiter._reserve(42, now=100.0)
    second = limiter._reserve(42, now=100.0)
    other = limiter._reserve(43, now=100.0)
    assert second - first == 1.0
    assert other < second  # another chat does not wait behind chat 42


def test_overall_sends_are_spread_to_thirty_a_second() -> None:
    limiter = RateLimiter(per_second=30)
    slots = [limiter._reserve(chat, now=0.0) for chat in range(1, 61)]
    assert max(slots) >= 59 / 30 - 1e-9
    assert sum(1 for s in slots if s < 1.0 - 1e-9) == 30  # (slot 31 is at 1.0)


def test_a_group_gets_twenty_slots_a_minute() -> None:
    limiter = RateLimiter(per_second=30, per_chat_seconds=0.0, per_group_minute=20)
    slots = [limiter._reserve(-100, now=0.0) for _ in range(21)]
    assert slots[19] < 60.0
    assert slots[20] >= slots[0] + 60.0


async def test_a_paced_chat_is_left_for_later_instead_of_holding_up_the_outbox() -> None:
    """The outbox sends one message at a time: waiting out a chat's 1-second pacing inside
    a send would hold up every other customer's message (a widget reply behind it)."""
    limiter = RateLimiter()
    await limiter.wait(4242)  # a message just went to this chat
    sender = TelegramSender(Bot("123456:" + "A" * 35), limiter)
    customer = Customer(channel=Channel.TELEGRAM, external_id="4242", locale="en")
    message = Message(
        customer_id=customer.id,
        channel=Channel.TELEGRAM,
        direction=Direction.OUTBOUND,
        author=Author.STAFF,
        text="a second reply",
    )
    result = await sender.send(message, customer)  # no call is made: the chat is busy
    assert isinstance(result, RetryLater)
    assert result.throttled  # pacing is not the message's fault: no attempt is used
    assert result.after_seconds is not None
    assert 0.5 < result.after_seconds <= 1.0
    assert limiter.busy_for(4343) == 0  # another chat is free
