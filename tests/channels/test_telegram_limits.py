"""Telegram's sending limits, kept by the rate limiter (slots, not durations, are checked)."""

from __future__ import annotations

from bot.channels.telegram.sender import RateLimiter


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
