"""Babel catalogs and locale negotiation, shared by every channel.

Catalogs live in locales/<locale>/LC_MESSAGES/messages.po (the source, committed)
and are compiled to .mo by the set-up script. A msgid with no translation would
show through untranslated; tests/test_i18n.py fails the build when one exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.support import Translations

from bot.domain.text import Plural, Text, Verbatim

SUPPORTED = ("zh_CN", "en")
DOMAIN = "messages"


class I18n:
    def __init__(self, locales_dir: Path, default: str = "zh_CN") -> None:
        if default not in SUPPORTED:
            raise ValueError(f"unsupported default locale {default!r}")
        self.locales_dir = locales_dir
        self.default = default

    @cached_property
    def _catalogs(self) -> dict[str, Translations]:
        catalogs: dict[str, Translations] = {}
        for locale in SUPPORTED:
            mo = self.locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
            if not mo.is_file():
                raise FileNotFoundError(
                    f"{mo} is missing: compile the catalogs (scripts/setup.sh does it)"
                )
            loaded = Translations.load(str(self.locales_dir), [locale], DOMAIN)
            if not isinstance(loaded, Translations):  # load() falls back silently
                raise FileNotFoundError(f"{mo} could not be read")
            catalogs[locale] = loaded
        return catalogs

    def check(self) -> None:
        """Load every catalog now; raises FileNotFoundError naming the missing one."""
        if not self._catalogs:
            raise FileNotFoundError(f"no catalogs in {self.locales_dir}")

    def normalize(self, locale: str | None) -> str:
        return locale if locale in SUPPORTED else self.negotiate(locale)

    def negotiate(self, preferred: str | Iterable[str] | None) -> str:
        """Pick a supported locale from a channel's hint: 'zh-hans', 'en-US', Accept-Language."""
        if preferred is None:
            return self.default
        if isinstance(preferred, str):
            preferred = [part.split(";")[0].strip() for part in preferred.split(",")]
        for raw in preferred:
            if not raw:
                continue
            try:
                parsed = Locale.parse(raw.replace("-", "_"))
            except (ValueError, UnknownLocaleError):
                continue
            if parsed.language == "zh":
                return "zh_CN"
            if parsed.language == "en":
                return "en"
        return self.default

    def gettext(self, locale: str, msgid: str) -> str:
        return self._catalogs[self.normalize(locale)].ugettext(msgid)

    def ngettext(self, locale: str, singular: str, plural: str, n: int) -> str:
        return self._catalogs[self.normalize(locale)].ungettext(singular, plural, n)

    def render(self, locale: str, text: Text | Verbatim | str | int) -> str:
        """Translate a Text and its parameters; Verbatim and plain values pass unchanged."""
        if isinstance(text, Verbatim):
            return text.value
        if not isinstance(text, Text):
            return str(text)
        params: dict[str, str] = {
            key: self.render(locale, value) for key, value in text.params.items()
        }
        if isinstance(text.msgid, Plural):
            count = text.params.get(text.msgid.by)
            if not isinstance(count, int):
                raise TypeError(f"{text.msgid.plural!r} needs an integer {text.msgid.by}")
            template = self.ngettext(locale, text.msgid.singular, text.msgid.plural, count)
        else:
            template = self.gettext(locale, text.msgid)
        return template.format_map(params) if params else template

    def format_date(self, locale: str, value: date) -> str:
        return format_date(value, format="long", locale=self.normalize(locale))

    def format_datetime(self, locale: str, value: datetime, tz: str) -> str:
        return format_datetime(
            value, format="medium", tzinfo=ZoneInfo(tz), locale=self.normalize(locale)
        )
