"""The shapes of what a widget may send: strict, closed, bounded.

Unknown fields (`$where` and friends), wrong types and lone surrogates (text that
cannot be stored as UTF-8) are refused before anything is looked up or stored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _storable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 text") from None
    return value


Clean = Annotated[str, AfterValidator(_storable)]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]
Seq = Annotated[int, Field(ge=0, le=2**53)]  # a message number (a JavaScript safe integer)


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class WidgetAuth(Strict):
    visitor: Annotated[Token, StringConstraints(min_length=22, max_length=64)]
    user: Annotated[Clean, StringConstraints(min_length=1, max_length=128)] | None = None
    expires: Annotated[int, Field(ge=0, le=2**40)] | None = None  # unix seconds, signed
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    locale: Annotated[Clean, StringConstraints(max_length=35)] | None = None
    last_seq: Seq = 0


class WidgetInput(Strict):
    client_id: Annotated[Token, StringConstraints(min_length=8, max_length=64)]
    kind: Literal["text", "choice", "command", "file"]
    # The configured text limit is checked after this (with a clear "too long" answer);
    # this bound only keeps absurd payloads out of the dialogue.
    value: Annotated[Clean, StringConstraints(max_length=20000)]
    # With a choice: the step of the question whose button was clicked (see Input.step).
    step: Annotated[Token, StringConstraints(max_length=32)] | None = None


class LanguageChoice(Strict):
    locale: Literal["zh_CN", "en"]


class Missed(Strict):
    """A widget that saw a message number skipped asks for what came after `after`."""

    after: Seq


class Typing(Strict):
    typing: bool


class Empty(Strict):
    pass
