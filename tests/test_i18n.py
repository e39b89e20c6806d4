"""Every user-facing string is in both catalogs, translated, with the same placeholders."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.config import ROOT
from bot.domain.text import NP_, Param, Text, Verbatim
from bot.i18n import SUPPORTED, I18n
from bot.services.tickets import ACK

LOCALES = ROOT / "locales"


# A msgid is a string, or a (singular, plural) pair (NP_); a msgstr a string, or one form
# per plural form of the locale (English two, Chinese one).
MsgId = str | tuple[str, ...]


def catalog(locale: str) -> dict[MsgId, MsgId]:
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {_key(m.id): _key(m.string) for m in read_po(f) if m.id}


def _key(value: object) -> MsgId:
    return tuple(value) if isinstance(value, (list, tuple)) else str(value)


def forms(value: MsgId) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def source_msgids() -> set[MsgId]:
    found = extract_from_dir(
        str(ROOT / "bot"),
        method_map=[("**.py", "python")],
        keywords={"N_": None, "NP_": (1, 2), "_": None},
    )
    return {_key(msgid) for _, _, msgid, _, _ in found}


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_msgid_is_translated_with_the_same_placeholders(locale: str) -> None:
    entries = catalog(locale)
    missing = [msgid for msgid, msgstr in entries.items() if not all(forms(msgstr))]
    assert missing == []
    mismatched = [
        msgid
        for msgid, msgstr in entries.items()
        for form in forms(msgstr)
        if placeholders(form) != set().union(*map(placeholders, forms(msgid)))
    ]
    assert mismatched == []
    plural_forms = 1 if locale == "zh_CN" else 2
    assert [
        msgid
        for msgid, msgstr in entries.items()
        if isinstance(msgid, tuple) and len(forms(msgstr)) != plural_forms
    ] == []


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_string_in_the_code_is_in_the_catalog(locale: str) -> None:
    # A new N_() string without a catalog entry would be shown untranslated.
    assert source_msgids() - set(catalog(locale)) == set()


def test_the_template_is_up_to_date() -> None:
    with (LOCALES / "messages.pot").open("rb") as f:
        template = {_key(m.id) for m in read_po(f) if m.id}
    assert template == source_msgids(), "run `make catalogs`"


def test_chinese_is_really_chinese() -> None:
    zh = catalog("zh_CN")

    def words(text: str) -> str:  # what is left when the placeholders are taken out
        return "".join(literal for literal, *_ in string.Formatter().parse(text))

    untranslated = [
        msgid
        for msgid, msgstr in zh.items()
        for form in forms(msgstr)
        if form in forms(msgid) and any(c.isalpha() for c in words(form))
    ]
    assert untranslated == []


def test_negotiation_and_rendering() -> None:
    i18n = I18n(LOCALES, "zh_CN")
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("zh-Hant-TW") == "zh_CN"
    assert i18n.negotiate("fr-FR") == "zh_CN"
    assert i18n.negotiate(None) == "zh_CN"
    assert i18n.negotiate("$where") == "zh_CN"
    # Customer text inside a message is never interpreted as a template.
    rendered = i18n.render(
        "en",
        Text(
            "Reply from our team about {reference}:\n\n{message}",
            {
                "reference": "FB-2026-000001",
                "message": Verbatim("{reference} <script>"),
            },
        ),
    )
    assert rendered.endswith("{reference} <script>")
    # Plural forms by the locale's own rule: English one/other, Chinese one form.
    tickets = NP_("{count} ticket", "{count} tickets")
    assert [i18n.render("en", Text(tickets, {"count": n})) for n in (0, 1, 2)] == [
        "0 tickets",
        "1 ticket",
        "2 tickets",
    ]
    assert i18n.render("zh_CN", Text(tickets, {"count": 1})) == "共 1 个工单"
    with pytest.raises(TypeError, match="integer count"):
        i18n.render("en", Text(tickets, {"count": "1"}))
    # Chosen by another parameter: the acknowledgement's working days.
    ack: dict[str, Param] = {"reference": "FB-2026-000001", "due": "March 3, 2026", "days": 1}
    assert i18n.render("en", Text(ACK, ack)).endswith("by March 3, 2026 (1 working day).")
    assert i18n.render("en", Text(ACK, {**ack, "days": 3})).endswith("(3 working days).")
    assert "（1 个工作日内）" in i18n.render("zh_CN", Text(ACK, ack))


def test_catalog_files_exist_for_every_supported_locale() -> None:
    for locale in SUPPORTED:
        assert Path(LOCALES / locale / "LC_MESSAGES" / "messages.po").is_file()
