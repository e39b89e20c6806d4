"""The customer's privacy menu as data (C3.2.6, C3.1.7): see, export, correct, delete,
withdraw a consent, from any channel.

It runs beside the feedback flow, not inside it: a customer in the middle of giving
feedback can open it with /privacy and come back to the question they were at. The
menu's state is `Conversation.aside`; the service (bot/services/dialogue.py) carries out
what the customer chose through bot/services/privacy.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.domain.flow import (
    ERR_CHOOSE,
    Input,
    InputKind,
    Invalid,
    Option,
    Prompt,
    Step,
    clean_text,
    parse_contact,
)
from bot.domain.models import Channel, ConsentPurpose
from bot.domain.text import N_, Param, Text

MENU, CONTACT, TICKET, CORRECTION, WITHDRAW, ERASE = (
    "privacy",
    "privacy_contact",
    "privacy_ticket",
    "privacy_correction",
    "privacy_withdraw",
    "privacy_erase",
)
SEE, EXPORT, CORRECT = "see", "export", "correct"
REMOVE, ERASE_YES, ERASE_NO = "remove", "erase_yes", "erase_no"
PROCESSING_VIA_ERASE = "processing"

NOTHING_HELD = N_(
    "We hold no personal data about you on this channel: you have not agreed to our "
    "privacy notice here, so nothing about you was kept."
)
MENU_HELP = N_(
    "Choose what you would like to do with your data. Cancel closes this menu; if you were "
    "giving feedback, you go back to that question."
)
CLOSED = N_("Privacy menu closed.")


def _unused_parse(*args: object) -> dict[str, object]:  # the service parses menu answers
    return {}


def _step(step_id: str, kind: InputKind, prompt: str) -> Step:
    return Step(
        id=step_id,
        kind=kind,
        prompt=prompt,
        options=lambda answers, config: (),
        parse=_unused_parse,
        help=MENU_HELP,
    )


STEPS: dict[str, Step] = {
    MENU: _step(
        MENU,
        InputKind.CHOICE,
        N_(
            "Your data and your rights. You can see what we hold about you, download a copy, "
            "correct it, withdraw a consent or have it deleted. Each request is recorded, and "
            "we answer it at once. What would you like to do?"
        ),
    ),
    CONTACT: _step(
        CONTACT,
        InputKind.TEXT,
        N_(
            "Your contact details with us: {contact}.\n"
            "Send a new e-mail address or phone number to replace them, or choose “Remove them”."
        ),
    ),
    TICKET: _step(TICKET, InputKind.CHOICE, N_("Which feedback would you like to correct?")),
    CORRECTION: _step(
        CORRECTION,
        InputKind.TEXT,
        N_(
            "Write your correction to {reference} ({min} to {max} characters). Your original "
            "words stay on record, shown to our staff as corrected by you."
        ),
    ),
    WITHDRAW: _step(WITHDRAW, InputKind.CHOICE, N_("Which consent would you like to withdraw?")),
    ERASE: _step(
        ERASE,
        InputKind.CHOICE,
        N_(
            "This deletes your data: who you are on this channel, your contact details, your "
            "feedback texts and files, our messages to each other and your consent records. "
            "We keep only anonymous figures (category, rating, dates and status) for "
            "statistics. Feedback still open will not be answered. This cannot be undone.\n\n"
            "Delete your data?"
        ),
    ),
}

MENU_LABELS = {
    SEE: N_("See my data"),
    EXPORT: N_("Download a copy (JSON file)"),
    CONTACT: N_("Correct my contact details"),
    CORRECT: N_("Add a correction to my feedback"),
    WITHDRAW: N_("Withdraw a consent"),
    ERASE: N_("Delete my data"),
}
CHANNEL_LABELS = {
    Channel.TELEGRAM: N_("Telegram"),
    Channel.WIDGET: N_("the chat in our app or website"),
    Channel.FORM: N_("the online form"),
    Channel.PHONE: N_("phone"),
    Channel.EMAIL: N_("e-mail"),
    Channel.TERMINAL: N_("the terminal"),
}
PURPOSE_LABELS = {
    ConsentPurpose.PROCESSING: N_("Processing of my data (this deletes it)"),
    ConsentPurpose.EXPANDED_USE: N_("Use of my feedback for market analysis and improvement"),
    ConsentPurpose.LICENCE: N_("The licence for my feedback"),
}


@dataclass(frozen=True)
class MenuFacts:
    """What the menu offers depends on what the customer has."""

    can_correct: bool  # a ticket that still holds their words
    withdrawable: Sequence[ConsentPurpose]  # consents in force they may withdraw


def menu_options(facts: MenuFacts) -> tuple[Option, ...]:
    keys = [SEE, EXPORT, CONTACT]
    if facts.can_correct:
        keys.append(CORRECT)
    if facts.withdrawable:
        keys.append(WITHDRAW)
    keys.append(ERASE)
    return tuple(Option(key, Text(MENU_LABELS[key])) for key in keys)


def prompt(
    step_id: str,
    options: tuple[Option, ...] = (),
    params: Mapping[str, Param] | None = None,
    error: Text | None = None,
) -> Prompt:
    step = STEPS[step_id]
    return Prompt(
        step=step,
        text=Text(step.prompt, params or {}),
        options=options,
        error=error,
        can_go_back=step_id != MENU,
    )


def contact(inp: Input) -> dict[str, str] | None:
    """New contact details, or None for "remove them"."""
    if inp.kind == "choice" and inp.value == REMOVE:
        return None
    if inp.kind != "text":
        raise Invalid(Text(ERR_CHOOSE))
    return parse_contact(inp.value)


def correction(inp: Input, minimum: int, maximum: int) -> str:
    value = clean_text(inp.value) if inp.kind == "text" else ""
    if not minimum <= len(value) <= maximum:
        raise Invalid(
            Text(
                N_("Please write between {min} and {max} characters."),
                {"min": minimum, "max": maximum},
            )
        )
    return value
