"""The privacy menu through the dialogue service, as every channel drives it (C3.2.6)."""

from __future__ import annotations

import json

from bot.app import Container
from bot.domain.flow import Command, Input
from bot.domain.models import Channel, ConsentPurpose, PrivacyRequestKind
from tests.services.chat import Chat
from tests.support import FixedClock


async def _filed(container: Container, user: str = "menu-user") -> Chat:
    chat = Chat(container, user, locale="en")
    await chat.happy_path("The lid cracked on the first day.")
    return chat


async def test_c3_2_6_nothing_held_before_any_consent(container: Container) -> None:
    chat = Chat(container, "stranger", locale="en")
    (reply,) = await chat.command(Command.PRIVACY)
    assert "We hold no personal data about you" in reply.text
    assert await container.repos.privacy_requests.recent() == []


async def test_c3_2_6_see_my_data(container: Container) -> None:
    chat = await _filed(container)
    (menu,) = await chat.command(Command.PRIVACY)
    assert menu.step == "privacy"
    assert [o.value for o in menu.options] == [
        "see",
        "export",
        "privacy_contact",
        "correct",
        "privacy_withdraw",
        "privacy_erase",
    ]
    replies = await chat.choose("see")
    assert "What we hold about you" in replies[0].text
    assert "ID menu-user" in replies[0].text
    assert "FB-2026-000001: Delivery and logistics" in replies[0].text
    assert "use for market analysis and product improvement: given" in replies[0].text
    (request,) = await container.repos.privacy_requests.recent()
    assert request.kind is PrivacyRequestKind.ACCESS


async def test_c3_2_6_export_comes_as_a_json_file(container: Container) -> None:
    chat = await _filed(container)
    await chat.command(Command.PRIVACY)
    (reply,) = await chat.choose("export")
    assert reply.file is not None
    assert reply.file.name.endswith(".json")
    document = json.loads(reply.file.content)
    assert document["tickets"][0]["text"] == "The lid cracked on the first day."


async def test_c3_2_6_correct_contact_and_feedback(container: Container) -> None:
    chat = await _filed(container)
    await chat.command(Command.PRIVACY)
    (prompt,) = await chat.choose("privacy_contact")
    assert "none" in prompt.text
    await chat.text("not an address")
    assert chat.error is not None
    replies = await chat.text("me@example.org")
    assert "me@example.org" in replies[0].text
    customer = await container.repos.customers.find(Channel.TELEGRAM, chat.user)
    assert customer is not None
    assert customer.email == "me@example.org"

    await chat.command(Command.PRIVACY)
    (prompt,) = await chat.choose("correct")  # one ticket: straight to the text
    assert prompt.step == "privacy_correction"
    await chat.text("It was the jar, not the lid.")
    (ticket,) = await container.repos.tickets.all_for_customer(customer.id)
    assert ticket.text == "The lid cracked on the first day."
    assert [c.text for c in ticket.corrections] == ["It was the jar, not the lid."]


async def test_c3_1_7_withdraw_expanded_use(container: Container) -> None:
    chat = await _filed(container)
    await chat.command(Command.PRIVACY)
    (prompt,) = await chat.choose("privacy_withdraw")
    assert [o.value for o in prompt.options] == ["expanded_use", "processing"]
    await chat.choose("expanded_use")
    customer = await container.repos.customers.find(Channel.TELEGRAM, chat.user)
    assert customer is not None
    current = await container.repos.consents.current(customer.id)
    assert current[ConsentPurpose.EXPANDED_USE].granted is False
    await chat.command(Command.PRIVACY)
    assert "privacy_withdraw" not in [o.value for o in chat.last[0].options]


async def test_c3_2_6_delete_needs_a_confirmation(container: Container) -> None:
    chat = await _filed(container)
    await chat.command(Command.PRIVACY)
    await chat.choose("privacy_erase")
    await chat.choose("erase_no")
    assert "Nothing was deleted" in chat.last[0].text
    assert await container.repos.customers.find(Channel.TELEGRAM, chat.user) is not None

    await chat.command(Command.PRIVACY)
    await chat.choose("privacy_erase")
    replies = await chat.choose("erase_yes")
    assert replies[0].erased
    assert "Your data has been deleted" in replies[0].text
    assert await container.repos.customers.find(Channel.TELEGRAM, chat.user) is None
    (reply,) = await chat.command(Command.PRIVACY)
    assert "We hold no personal data about you" in reply.text


async def test_the_menu_beside_a_running_flow(container: Container, clock: FixedClock) -> None:
    chat = Chat(container, "mid-flow", locale="en")
    await chat.command(Command.START)
    for value in ("yes", "yes", "yes"):
        await chat.choose(value)
    assert chat.step == "category"
    await chat.command(Command.PRIVACY)
    assert chat.step == "privacy"
    # A button of the question before the menu opened does not answer the menu.
    await chat.send(Input.choice("logistics", step="category"))
    assert chat.step == "privacy"
    replies = await chat.command(Command.CANCEL)
    assert "Privacy menu closed" in replies[0].text
    assert chat.step == "category"  # back where they were, nothing lost
    await chat.choose("logistics")
    assert chat.step == "rating"


async def test_c3_2_6_the_menu_speaks_chinese(container: Container) -> None:
    chat = Chat(container, "zh-user", locale="zh-CN")
    await chat.happy_path("快递晚到了两天，包装也破了。")
    (menu,) = await chat.command(Command.PRIVACY)
    assert "您的数据与您的权利" in menu.text
    assert [o.label for o in menu.options][:2] == ["查看我的数据", "下载副本（JSON 文件）"]
    (summary,) = await chat.choose("see")
    assert "我们保存的您的信息" in summary.text
    assert "2026年3月2日" in summary.text
