"""Translatable text as data: the domain says *what* to show, i18n says it in a language.

`N_` marks a literal for extraction into the Babel catalogs without translating
it here (`NP_` a singular and a plural form, chosen by a `count`); `Text` carries a
msgid and its parameters (which may be Text again) until a channel renders it in the
customer's locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union


def N_(msgid: str) -> str:  # noqa: N802 - the gettext convention the extractor looks for
    return msgid


@dataclass(frozen=True)
class Plural:
    """A message in a singular and a plural form. The form shown is chosen by its Text's
    parameter named `by` (an int), by the locale's own rule (English has two forms,
    Chinese one)."""

    singular: str
    plural: str
    by: str = "count"


def NP_(singular: str, plural: str, by: str = "count") -> Plural:  # noqa: N802 - NP_:1,2
    return Plural(singular, plural, by)


Param = Union[str, int, "Text", "Verbatim"]


@dataclass(frozen=True)
class Text:
    msgid: str | Plural
    params: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True)
class Verbatim:
    """The customer's own words or other data: shown as is, never translated."""

    value: str
