"""The feedback dialogue as data, and the engine that runs it.

`FLOW` is the whole dialogue: an ordered tuple of `Step`s, each saying what it
asks (a msgid), what input it takes, how that input is parsed and validated,
whether it is a consent, and how it appears in the summary. Adding a question
or a category is a change to this data; the engine (`handle`) does not change.

Pure: no I/O. The engine takes the stored `Conversation` and one `Input` and
returns a `Transition`: the new conversation, the effects for the service to
carry out (record a consent, file the ticket, ...), and what to show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.domain.models import Attachment, Category, ConsentPurpose, Conversation, new_id
from bot.domain.text import N_, NP_, Param, Text, Verbatim

# ---------------------------------------------------------------- inputs and outputs


class InputKind(StrEnum):
    CHOICE = "choice"  # one of the step's options (buttons)
    TEXT = "text"  # free text
    ATTACHMENTS = "attachments"  # files, plus toggles and Done
    SUMMARY = "summary"  # submit or edit


class Command(StrEnum):
    START = "start"
    BACK = "back"
    CANCEL = "cancel"
    HELP = "help"
    PRIVACY = "privacy"  # the privacy menu (bot/domain/privacy_menu.py), beside the flow


@dataclass(frozen=True)
class Input:
    kind: str  # "choice" | "text" | "file" | "command"
    value: str = ""
    attachment: Attachment | None = None
    # The step the input answers, when the channel knows it (a button's question, the
    # question a widget showed). An answer to an earlier question (a double tap, an old
    # message, a resend after another device moved on) must not answer the current one:
    # "yes" to the privacy notice is not "yes" to the optional consent that follows it.
    step: str | None = None

    @classmethod
    def choice(cls, value: str, step: str | None = None) -> Input:
        return cls("choice", value, step=step)

    @classmethod
    def text(cls, value: str, step: str | None = None) -> Input:
        return cls("text", value, step=step)

    @classmethod
    def file(cls, attachment: Attachment, caption: str = "", step: str | None = None) -> Input:
        """A photo or file; a caption sent with it is kept where words are (on the ticket)."""
        return cls("file", caption, attachment=attachment, step=step)

    @classmethod
    def command(cls, command: Command) -> Input:
        return cls("command", command.value)


@dataclass(frozen=True)
class Option:
    value: str
    label: Text


@dataclass(frozen=True)
class Prompt:
    """Ask the question of `step` (again, with `error` when the last answer was refused)."""

    step: Step
    text: Text
    options: tuple[Option, ...]
    error: Text | None = None
    can_go_back: bool = True


@dataclass(frozen=True)
class Say:
    text: Text


Reply = Prompt | Say


@dataclass(frozen=True)
class RecordConsent:
    purpose: ConsentPurpose
    granted: bool
    shown: Text  # the exact text the customer answered, for the ledger's hash


@dataclass(frozen=True)
class RefuseProcessing:
    """Processing consent declined: keep nothing but an anonymous count."""


@dataclass(frozen=True)
class FileTicket:
    flow_id: str
    answers: Mapping[str, Any]


Effect = RecordConsent | RefuseProcessing | FileTicket


@dataclass(frozen=True)
class Transition:
    conversation: Conversation
    effects: tuple[Effect, ...] = ()
    replies: tuple[Reply, ...] = ()
    ended: bool = False  # the flow is over (filed, cancelled or declined)


@dataclass(frozen=True)
class FlowConfig:
    notice_version: str
    licence_required: bool = True
    text_min: int = 5
    text_max: int = 4000
    max_attachments: int = 5
    retention_days: int = 730


@dataclass(frozen=True)
class Facts:
    """What the service knows about this customer that the engine needs."""

    decided: frozenset[ConsentPurpose] = frozenset()  # consents already answered, this version


class Invalid(Exception):
    def __init__(self, message: Text) -> None:
        super().__init__(message.msgid)
        self.message = message


# ---------------------------------------------------------------- parsing helpers

YES, NO, SKIP, DONE, SUBMIT = "yes", "no", "skip", "done", "submit"
EDIT_PREFIX = "edit:"
OWN_PREFIX = "own:"

EMAIL_RE = re.compile(r"^[^@\s<>\"'`]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,24}$")
PHONE_CHARS_RE = re.compile(r"^\+?[0-9 ()\-]{6,24}$")
# Control characters, and lone surrogates (not text: they cannot be stored as UTF-8).
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

ERR_CHOOSE = N_("Please choose one of the options.")


def choose(inp: Input, options: tuple[Option, ...]) -> str:
    """The chosen value; typed text counts when it is an option's value or number."""
    values = [o.value for o in options]
    raw = inp.value.strip()
    if inp.kind == "text" and raw.isdigit() and 1 <= int(raw) <= len(values):
        return values[int(raw) - 1]
    if inp.kind in ("choice", "text") and raw in values:
        return raw
    raise Invalid(Text(ERR_CHOOSE))


def clean_text(value: str) -> str:
    """Free text as inert data: control characters out, line breaks as LF (a browser
    sends a textarea's as CR LF, which would count twice against a length), surrounding
    space trimmed."""
    return CONTROL_RE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def parse_contact(raw: str) -> dict[str, str]:
    value = clean_text(raw)
    if "@" in value:
        if len(value) <= 254 and EMAIL_RE.match(value):
            return {"email": value}
    elif PHONE_CHARS_RE.match(value):
        digits = re.sub(r"\D", "", value)
        if 7 <= len(digits) <= 15:
            return {"phone": ("+" if value.startswith("+") else "") + digits}
    raise Invalid(
        Text(
            N_(
                "That does not look like an e-mail address or a phone number. "
                "Please try again, or choose Skip."
            )
        )
    )


# ---------------------------------------------------------------- the steps


OptionsFn = Callable[[Mapping[str, Any], FlowConfig], tuple[Option, ...]]
ParseFn = Callable[[Input, Mapping[str, Any], FlowConfig, tuple[Option, ...]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    id: str
    kind: InputKind
    prompt: str  # msgid; its {params} come from `params`
    options: OptionsFn
    parse: ParseFn
    help: str = N_(
        "Answer the question above. Back returns to the previous question, Cancel stops "
        "without sending anything, Status shows your feedback so far."
    )
    params: Callable[[Mapping[str, Any], FlowConfig], Mapping[str, Param]] = field(
        default=lambda answers, config: {}
    )
    consent: ConsentPurpose | None = None
    gate: Callable[[FlowConfig], bool] | None = None  # declining ends the flow when true
    declined: str | None = None  # msgid said when a gate is declined
    summary_label: str | None = None  # shown and editable in the summary


def _fixed(*pairs: tuple[str, str]) -> OptionsFn:
    options = tuple(Option(value, Text(label)) for value, label in pairs)
    return lambda answers, config: options


def _parse_choice(key: str) -> ParseFn:
    def parse(
        inp: Input, answers: Mapping[str, Any], config: FlowConfig, options: tuple[Option, ...]
    ) -> dict[str, Any]:
        return {key: choose(inp, options)}

    return parse


def _parse_rating(
    inp: Input, answers: Mapping[str, Any], config: FlowConfig, options: tuple[Option, ...]
) -> dict[str, Any]:
    try:
        return {"rating": int(choose(inp, options))}
    except Invalid:
        raise Invalid(Text(N_("Please choose a rating from 1 to 5."))) from None


def _parse_text(
    inp: Input, answers: Mapping[str, Any], config: FlowConfig, options: tuple[Option, ...]
) -> dict[str, Any]:
    if inp.kind != "text":
        raise Invalid(Text(N_("Please write your feedback as a text message.")))
    value = clean_text(inp.value)
    if len(value) < config.text_min:
        raise Invalid(
            Text(
                N_("That is too short: please write at least {min} characters."),
                {"min": config.text_min},
            )
        )
    if len(value) > config.text_max:
        raise Invalid(
            Text(
                N_("That is too long: please keep it to {max} characters (this one has {count})."),
                {"max": config.text_max, "count": len(value)},
            )
        )
    return {"text": value}


def _attachment_options(answers: Mapping[str, Any], config: FlowConfig) -> tuple[Option, ...]:
    options = [Option(DONE, Text(N_("Done")))]
    mark = N_("Mark as my own work: {item}")
    unmark = N_("Unmark as my own work: {item}")
    options.append(
        Option(
            OWN_PREFIX + "text",
            Text(unmark if answers.get("text_own_work") else mark, {"item": Text(N_("my text"))}),
        )
    )
    for index, item in enumerate(answers.get("attachments", []), start=1):
        label = unmark if item.get("own_work") else mark
        options.append(
            Option(
                f"{OWN_PREFIX}{index}",
                Text(label, {"item": Text(N_("file {number}"), {"number": index})}),
            )
        )
    return tuple(options)


def _parse_attachments(
    inp: Input, answers: Mapping[str, Any], config: FlowConfig, options: tuple[Option, ...]
) -> dict[str, Any]:
    files = [dict(item) for item in answers.get("attachments", [])]
    if inp.kind == "file" and inp.attachment is not None:
        if len(files) >= config.max_attachments:
            raise Invalid(
                Text(N_("You can attach at most {max} files."), {"max": config.max_attachments})
            )
        files.append(inp.attachment.model_dump(mode="json"))
        return {"attachments": files, "_stay": True}
    try:
        choice = choose(inp, options)
    except Invalid:
        raise Invalid(Text(N_("Please send a photo or a file, or choose Done."))) from None
    if choice in (DONE, SKIP):
        return {"attachments": files}
    if choice == OWN_PREFIX + "text":
        return {"text_own_work": not answers.get("text_own_work", False), "_stay": True}
    if choice.startswith(OWN_PREFIX):
        index = int(choice.removeprefix(OWN_PREFIX)) - 1
        files[index]["own_work"] = not files[index].get("own_work", False)
        return {"attachments": files, "_stay": True}
    raise Invalid(Text(ERR_CHOOSE))


def _parse_contact(
    inp: Input, answers: Mapping[str, Any], config: FlowConfig, options: tuple[Option, ...]
) -> dict[str, Any]:
    if inp.kind == "choice" or (inp.kind == "text" and inp.value.strip() in (SKIP, "1")):
        choose(inp, options)
        return {"contact": {}}
    if inp.kind != "text":
        raise Invalid(Text(ERR_CHOOSE))
    return {"contact": parse_contact(inp.value)}


CATEGORY_LABELS: dict[Category, str] = {
    Category.PRODUCT_QUALITY: N_("Product quality"),
    Category.SERVICE_QUALITY: N_("Service quality"),
    Category.PRICE: N_("Price"),
    Category.LOGISTICS: N_("Delivery and logistics"),
    Category.AFTER_SALES: N_("After-sales service"),
    Category.USER_INTERFACE: N_("App or website interface"),
    Category.FEATURE_SUGGESTION: N_("Feature suggestion"),
    Category.OVERALL_SATISFACTION: N_("Overall satisfaction"),
    Category.OTHER: N_("Something else"),
}

NOT_GIVEN = N_("not given")


def _summary_params(answers: Mapping[str, Any], config: FlowConfig) -> Mapping[str, Param]:
    contact = answers.get("contact") or {}
    files = answers.get("attachments", [])
    own = sum(1 for f in files if f.get("own_work"))
    return {
        "category": Text(CATEGORY_LABELS[Category(answers["category"])]),
        "rating": answers["rating"],
        "text": Verbatim(answers["text"]),
        "attachments": Text(
            NP_(
                "{count} file, {own} marked as your own work",
                "{count} files, {own} marked as your own work",
            ),
            {"count": len(files), "own": own},
        ),
        "own_text": Text(N_("yes") if answers.get("text_own_work") else N_("no")),
        "contact": Verbatim(contact.get("email") or contact["phone"])
        if contact
        else Text(NOT_GIVEN),
    }


FLOW: tuple[Step, ...] = (
    Step(
        id="notice",
        kind=InputKind.CHOICE,
        consent=ConsentPurpose.PROCESSING,
        gate=lambda config: True,
        declined=N_(
            "Understood. Without your agreement we cannot take feedback here, and we have "
            "kept nothing about you. You can start again at any time with /start."
        ),
        prompt=N_(
            "Before we start, here is how we handle your information "
            "(privacy notice, version {version}).\n\n"
            "What we collect: your feedback, the category and rating you choose, any files "
            "you send, the ID this chat app gives you so that we can reply, and contact details "
            "only if you choose to give them.\n"
            "Why: only to handle your feedback and tell you what we did about it.\n"
            "Who sees it: only our customer-service staff. We do not give it to anyone else "
            "without your consent.\n"
            "How long: while we handle your feedback and {days} days after it is closed; "
            "then it is deleted.\n"
            "Your rights: you can see, export, correct or delete your data, or withdraw a "
            "consent, at any time with /privacy.\n\n"
            "Do you agree to us processing your information for this purpose?"
        ),
        params=lambda answers, config: {
            "version": config.notice_version,
            "days": config.retention_days,
        },
        options=_fixed((YES, N_("I agree")), (NO, N_("I do not agree"))),
        parse=_parse_choice("consent_processing"),
    ),
    Step(
        id="expanded_use",
        kind=InputKind.CHOICE,
        consent=ConsentPurpose.EXPANDED_USE,
        prompt=N_(
            "Optional: may we also use your feedback for market analysis and to improve our "
            "products? This is entirely up to you. Your feedback is handled the same way "
            "either way, and you can withdraw this consent at any time with /privacy."
        ),
        options=_fixed((NO, N_("No, thank you")), (YES, N_("Yes, you may"))),
        parse=_parse_choice("consent_expanded_use"),
    ),
    Step(
        id="licence",
        kind=InputKind.CHOICE,
        consent=ConsentPurpose.LICENCE,
        gate=lambda config: config.licence_required,
        declined=N_(
            "Understood. We can only accept feedback under this licence, so nothing has been "
            "sent. You can start again at any time with /start."
        ),
        prompt=N_(
            "The licence for your feedback: you give us a worldwide, perpetual, free, "
            "irrevocable and non-exclusive licence, which we may pass on, to use what your "
            "feedback says to analyse and improve our products and services, for training, "
            "research and reports, and in promotion, always without your personal "
            "information. You keep the copyright in anything you mark as your own work.\n\n"
            "Do you accept this licence?"
        ),
        options=_fixed((YES, N_("I accept")), (NO, N_("I do not accept"))),
        parse=_parse_choice("consent_licence"),
    ),
    Step(
        id="category",
        kind=InputKind.CHOICE,
        prompt=N_("What is your feedback about?"),
        options=lambda answers, config: tuple(
            Option(category.value, Text(label)) for category, label in CATEGORY_LABELS.items()
        ),
        parse=_parse_choice("category"),
        summary_label=N_("Change the category"),
    ),
    Step(
        id="rating",
        kind=InputKind.CHOICE,
        prompt=N_("How would you rate your experience, from 1 (very poor) to 5 (excellent)?"),
        options=lambda answers, config: tuple(
            Option(str(n), Text(N_("{stars} {number}"), {"stars": "★" * n, "number": n}))
            for n in range(1, 6)
        ),
        parse=_parse_rating,
        summary_label=N_("Change the rating"),
    ),
    Step(
        id="text",
        kind=InputKind.TEXT,
        prompt=N_("Please tell us what happened, in your own words ({min} to {max} characters)."),
        params=lambda answers, config: {"min": config.text_min, "max": config.text_max},
        options=lambda answers, config: (),
        parse=_parse_text,
        summary_label=N_("Change the text"),
    ),
    Step(
        id="attachments",
        kind=InputKind.ATTACHMENTS,
        prompt=N_(
            "You may attach up to {max} photos or files (optional); {count} attached so far. "
            "You can also mark your text or any file as your own work, so that you keep its "
            "copyright. Choose Done when you are ready."
        ),
        params=lambda answers, config: {
            "max": config.max_attachments,
            "count": len(answers.get("attachments", [])),
        },
        options=_attachment_options,
        parse=_parse_attachments,
        summary_label=N_("Change the attachments"),
    ),
    Step(
        id="contact",
        kind=InputKind.TEXT,
        prompt=N_(
            "Optional: an e-mail address or phone number if you would like us to contact you "
            "there as well. Choose Skip to leave it out; we can always answer you here."
        ),
        options=_fixed((SKIP, N_("Skip"))),
        parse=_parse_contact,
        summary_label=N_("Change the contact details"),
    ),
    Step(
        id="summary",
        kind=InputKind.SUMMARY,
        prompt=N_(
            "Please check your feedback before you send it.\n\n"
            "Category: {category}\nRating: {rating} of 5\nYour words: {text}\n"
            "Your text is your own work: {own_text}\nAttachments: {attachments}\n"
            "Contact details: {contact}"
        ),
        params=_summary_params,
        options=lambda answers, config: (
            Option(SUBMIT, Text(N_("Send it"))),
            *(
                Option(EDIT_PREFIX + step.id, Text(step.summary_label))
                for step in FLOW
                if step.summary_label
            ),
        ),
        parse=_parse_choice("submit"),
    ),
)

STEPS: dict[str, Step] = {step.id: step for step in FLOW}
FIRST_STEP = FLOW[0].id

# ---------------------------------------------------------------- the engine

NOTHING_BEFORE = N_("This is the first question; there is nothing to go back to.")
CANCELLED = N_("Cancelled. Nothing was sent. Send /start whenever you want to begin again.")


def prompt_for(
    step: Step, conversation: Conversation, config: FlowConfig, error: Text | None = None
) -> Prompt:
    answers = conversation.answers
    return Prompt(
        step=step,
        text=Text(step.prompt, step.params(answers, config)),
        options=step.options(answers, config),
        error=error,
        can_go_back=bool(conversation.history),
    )


def _next_step(after: str | None, facts: Facts) -> Step:
    index = 0 if after is None else FLOW.index(STEPS[after]) + 1
    for step in FLOW[index:]:
        # A consent the customer already answered under this notice version is not asked again.
        if step.consent is not None and step.consent in facts.decided:
            continue
        return step
    return STEPS["summary"]


def needs_facts(conversation: Conversation, inp: Input) -> bool:
    """Whether `handle` may consult the Facts for this input: only when a consent step
    could come next. Past the consents, the caller need not look them up (a read or two
    of the database at every step)."""
    if conversation.step is None or (inp.kind == "command" and inp.value == Command.START):
        return True
    index = FLOW.index(STEPS[conversation.step]) + 1
    return any(step.consent is not None for step in FLOW[index:])


def start(conversation: Conversation, config: FlowConfig, facts: Facts) -> Transition:
    step = _next_step(None, facts)
    fresh = conversation.model_copy(
        update={"step": step.id, "answers": {"flow_id": new_id()}, "history": [], "editing": False}
    )
    return Transition(fresh, replies=(prompt_for(step, fresh, config),))


def _end(conversation: Conversation) -> Conversation:
    return conversation.model_copy(
        update={"step": None, "answers": {}, "history": [], "editing": False}
    )


def handle(conversation: Conversation, inp: Input, config: FlowConfig, facts: Facts) -> Transition:
    """Apply one input to a running flow (`conversation.step` is set)."""
    if conversation.step is None or (inp.kind == "command" and inp.value == Command.START):
        return start(conversation, config, facts)
    step = STEPS[conversation.step]

    if inp.kind == "command":
        command = Command(inp.value)
        if command is Command.CANCEL:
            return Transition(_end(conversation), replies=(Say(Text(CANCELLED)),), ended=True)
        if command is Command.HELP:
            return Transition(
                conversation, replies=(Say(Text(step.help)), prompt_for(step, conversation, config))
            )
        # BACK
        if not conversation.history:
            return Transition(
                conversation,
                replies=(prompt_for(step, conversation, config, Text(NOTHING_BEFORE)),),
            )
        history = list(conversation.history)
        previous = STEPS[history.pop()]
        moved = conversation.model_copy(
            update={"step": previous.id, "history": history, "editing": False}
        )
        return Transition(moved, replies=(prompt_for(previous, moved, config),))

    options = step.options(conversation.answers, config)
    try:
        parsed = step.parse(inp, conversation.answers, config, options)
    except Invalid as invalid:
        return Transition(
            conversation, replies=(prompt_for(step, conversation, config, invalid.message),)
        )

    stay = parsed.pop("_stay", False)
    answers = {**conversation.answers, **parsed}
    effects: list[Effect] = []

    if step.consent is not None:
        granted = next(iter(parsed.values())) == YES
        shown = Text(step.prompt, step.params(conversation.answers, config))
        effects.append(RecordConsent(step.consent, granted, shown))
        if not granted and step.gate is not None and step.gate(config):
            if step.consent is ConsentPurpose.PROCESSING:
                effects = [RefuseProcessing()]  # nothing about the person is kept
            assert step.declined is not None  # noqa: S101 - every gate step has its message
            return Transition(
                _end(conversation),
                effects=tuple(effects),
                replies=(Say(Text(step.declined)),),
                ended=True,
            )

    if step.id == "summary":
        choice = parsed["submit"]
        if choice == SUBMIT:
            ticket = FileTicket(flow_id=answers["flow_id"], answers=answers)
            return Transition(_end(conversation), effects=(ticket,), ended=True)
        target = STEPS[choice.removeprefix(EDIT_PREFIX)]
        editing = conversation.model_copy(
            update={"step": target.id, "editing": True, "history": [*conversation.history, step.id]}
        )
        return Transition(editing, replies=(prompt_for(target, editing, config),))

    updated = conversation.model_copy(update={"answers": answers})
    if stay:
        return Transition(
            updated, effects=tuple(effects), replies=(prompt_for(step, updated, config),)
        )
    following = STEPS["summary"] if conversation.editing else _next_step(step.id, facts)
    moved = updated.model_copy(
        update={
            "step": following.id,
            "history": [*conversation.history, step.id],
            "editing": False,
        }
    )
    return Transition(
        moved, effects=tuple(effects), replies=(prompt_for(following, moved, config),)
    )
