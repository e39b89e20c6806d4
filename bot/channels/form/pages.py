"""The online form (C2.2 (1)) and the public channels page (C2.3): plain HTML, no JavaScript.

GET /feedback shows every step of the dialogue on one page; POST /feedback checks every
field with the dialogue's rules and either shows the page again with the errors next to
the fields (nothing stored) or files the ticket and redirects (303) to a confirmation
page whose address carries an HMAC of the reference, so it cannot be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from babel import Locale
from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from markupsafe import Markup

from bot.channels.form import strings
from bot.channels.form.intake import (
    ACTION,
    CATEGORY,
    CONSENT_FIELDS,
    CONTACT,
    DECLINE,
    FIELDS,
    FORM_ID,
    FORM_ID_RE,
    GENERAL,
    LANG,
    NOTICE_VERSION_FIELD,
    OWN_WORK,
    RATING,
    SEND,
    TEXT,
    TICKED,
    FormIntake,
    new_form_id,
)
from bot.domain import flow
from bot.domain.models import ConsentPurpose, Ticket
from bot.domain.text import Param, Plural, Text
from bot.i18n import SUPPORTED, I18n
from bot.storage import CustomerErased, DatabaseUnavailable
from bot.storage.locks import Busy
from bot.templating import environment

log = logging.getLogger(__name__)

FORM_PATH = "/feedback"
DONE_PATH = "/feedback/done"
DECLINED_PATH = "/feedback/declined"
CHANNELS_PATH = "/channels"
POLICY_PATH = "/privacy"  # the published privacy policy (C6.1)
WIDGET_SCRIPT_PATH = "/widget/widget.js"

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 40  # the form has 13; a flood of fields is refused before it is looked at
LOCALE_HINT_CHARS = 64  # a language tag longer than this is not one

TEMPLATES = Path(__file__).parent / "templates"
CSS = (TEMPLATES / "style.css").read_text(encoding="utf-8").strip()
# The only style on the pages, allowed by its hash: no inline script or style can run.
_CSS_HASH = b64encode(hashlib.sha256(CSS.encode("utf-8")).digest()).decode("ascii")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the confirmation address carries its key
    # The form carries a fresh form id: a cached copy shared by two people would make
    # their submissions one ticket. Nothing here may be stored by a cache.
    "Cache-Control": "no-store",
    "Vary": "Accept-Language",
}
REFERENCE_RE = re.compile(r"^[A-Z]{1,6}-\d{4}-\d{6,}$")
TELEGRAM_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")

# Where a field's error links to: its input, or the first radio button of a group.
ANCHORS = {
    GENERAL: None,
    CONSENT_FIELDS[ConsentPurpose.PROCESSING]: "#consent_processing",
    CONSENT_FIELDS[ConsentPurpose.LICENCE]: "#consent_licence",
    CATEGORY: "#category-{first_category}",
    RATING: "#rating-1",
    TEXT: "#text",
    CONTACT: "#contact",
}


class BadForm(Exception):
    """The body cannot be taken as this form: the page is shown again with `message`."""

    def __init__(self, status: int, reason: str, message: Text) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason  # for the log: a code, never what was sent
        self.message = message


@dataclass(frozen=True)
class Parsed:
    fields: dict[str, str]
    structural_error: bool  # unknown or repeated field names


def parse_body(body: bytes) -> Parsed:
    """application/x-www-form-urlencoded as strict UTF-8: broken bytes and lone surrogates
    (which strict UTF-8 cannot encode) are refused here, so no such string reaches storage."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is one; so is "too many fields"
        raise BadForm(400, "unreadable", Text(strings.ERR_UNREADABLE)) from None
    fields: dict[str, str] = {}
    structural_error = False
    for name, value in pairs:
        if name not in FIELDS or name in fields:
            structural_error = True  # e.g. "$where", "category[$ne]": refused, never ignored
            continue
        fields[name] = value
    return Parsed(fields, structural_error)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused once it passes `limit` bytes (declared or not)."""
    too_large = BadForm(413, "too_large", Text(strings.ERR_TOO_LARGE, {"size": limit // 1024}))
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(16 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class FormPages:
    """The aiohttp handlers of the form, its confirmation pages and the channels page."""

    def __init__(
        self,
        intake: FormIntake,
        i18n: I18n,
        *,
        secret: bytes,
        telegram_username: str | None = None,
        public_url: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        posts_per_ip: str = "20 per hour",
        request_days: int = 15,
        rate_limits: Storage | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the form's link secret must be at least 16 bytes")
        if telegram_username is not None:
            telegram_username = telegram_username.removeprefix("@")
            if not TELEGRAM_USERNAME_RE.match(telegram_username):
                raise ValueError(f"not a Telegram username: {telegram_username!r}")
        if public_url is not None and not re.match(r"^https?://[^\s/]+", public_url):
            raise ValueError(f"the public URL must be http(s)://host[...]: {public_url!r}")
        self.intake = intake
        self.i18n = i18n
        self.secret = secret
        self.telegram_username = telegram_username
        self.public_url = public_url.rstrip("/") if public_url else None
        self.max_body_bytes = max_body_bytes
        self.request_days = request_days  # privacy requests, stated in the policy
        # Each accepted form stores a customer and a ticket: a few tries with typos are
        # normal, a stream of them from one address is not.
        self.posts = parse(posts_per_ip)
        # Shared by every process when several run (bot.sharing).
        self.limiter = SlidingWindowCounterRateLimiter(rate_limits or MemoryStorage())
        self.env = environment(TEMPLATES)

    def register(self, app: web.Application) -> None:
        app.router.add_get(FORM_PATH, self.form)
        app.router.add_post(FORM_PATH, self.submit)
        app.router.add_get(DONE_PATH, self.done)
        app.router.add_get(DECLINED_PATH, self.declined)
        app.router.add_get(CHANNELS_PATH, self.channels)
        app.router.add_get(POLICY_PATH, self.policy)

    # ------------------------------------------------------------ helpers

    def locale(self, request: web.Request, hint: str | None = None) -> str:
        """?lang= (or the form's own field) first, then Accept-Language, then the default."""
        preferred = [(hint or request.query.get(LANG, ""))[:LOCALE_HINT_CHARS]]
        header = request.headers.get("Accept-Language", "")[:512]
        preferred += [part.split(";")[0].strip() for part in header.split(",")]
        return self.i18n.negotiate(preferred)

    def t(self, locale: str, msgid: str | Plural, **params: Param) -> str:
        return self.i18n.render(locale, Text(msgid, params))

    def sign(self, reference: str) -> str:
        message = f"feedback-done\x00{reference}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def base_url(self, request: web.Request) -> str:
        return self.public_url or f"{request.scheme}://{request.host}"

    def page(
        self,
        request: web.Request,
        locale: str,
        title: str,
        *,
        error: bool = False,
        keep: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """What base.html needs; the language links carry `keep` and nothing else."""
        languages = []
        for code in SUPPORTED:
            query = {**(keep or {}), LANG: code}
            languages.append(
                {
                    "code": code,
                    "lang": code.replace("_", "-"),
                    "label": Locale.parse(code).get_language_name(code),
                    "href": f"{request.path}?{urlencode(query)}",
                    "current": code == locale,
                }
            )
        return {
            "html_lang": locale.replace("_", "-"),
            "title": self.t(locale, strings.ERROR_TITLE, title=title) if error else title,
            "css": Markup(CSS),  # noqa: S704 - our own constant file, hashed into the CSP
            "languages": languages,
            "language_label": self.t(locale, strings.LANGUAGE),
            "channels_href": f"{CHANNELS_PATH}?{urlencode({LANG: locale})}",
            "channels_label": self.t(locale, strings.CHANNELS_LINK),
            "policy_href": f"{POLICY_PATH}?{urlencode({LANG: locale})}",
            "policy_label": self.t(locale, strings.POLICY_LINK),
        }

    def html(
        self, template: str, status: int, content_language: str, **context: Any
    ) -> web.Response:
        body = self.env.get_template(template).render(**context)
        response = web.Response(text=body, status=status, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Language"] = content_language.replace("_", "-")
        return response

    def message(
        self,
        request: web.Request,
        locale: str,
        *,
        status: int,
        title: str,
        paragraphs: list[str],
        link: dict[str, str] | None = None,
    ) -> web.Response:
        return self.html(
            "message.html",
            status,
            locale,
            page=self.page(request, locale, title, error=status >= 400),
            heading=title,
            paragraphs=paragraphs,
            link=link,
        )

    def unavailable(self, request: web.Request, locale: str) -> web.Response:
        log.warning("form page unavailable", extra={"cause": "DatabaseUnavailable"})
        return self.message(
            request,
            locale,
            status=503,
            title=self.t(locale, strings.FORM_TITLE),
            paragraphs=[self.t(locale, strings.ERR_PAGE_UNAVAILABLE)],
        )

    def form_link(self, locale: str) -> dict[str, str]:
        return {
            "href": f"{FORM_PATH}?{urlencode({LANG: locale})}",
            "id": "back-to-form",
            "label": self.t(locale, strings.BACK_TO_FORM),
        }

    # ------------------------------------------------------------ the form

    def render_form(
        self,
        request: web.Request,
        locale: str,
        *,
        form_id: str,
        values: Mapping[str, Any] | None = None,
        errors: Mapping[str, Text] | None = None,
        status: int = 200,
    ) -> web.Response:
        intake = self.intake
        t = self.t
        values = dict(values or {})
        errors = dict(errors or {})
        categories = [
            {"value": o.value, "label": self.i18n.render(locale, o.label)}
            for o in intake.options(CATEGORY)
        ]
        ratings = [
            {"value": o.value, "label": self.i18n.render(locale, o.label)}
            for o in intake.options(RATING)
        ]
        rendered_errors = {name: self.i18n.render(locale, text) for name, text in errors.items()}
        error_list = []
        for name, anchor in ANCHORS.items():  # in the order of the page
            if name in rendered_errors:
                href = anchor.format(first_category=categories[0]["value"]) if anchor else None
                error_list.append({"href": href, "message": rendered_errors[name]})
        title = t(locale, strings.FORM_TITLE)
        s = {
            "title": title,
            "intro": t(locale, strings.FORM_INTRO),
            "required": t(locale, strings.REQUIRED),
            "optional": t(locale, strings.OPTIONAL),
            "errors_summary": t(locale, strings.ERRORS_SUMMARY),
            "notice_legend": t(locale, strings.NOTICE_LEGEND),
            "notice_agree": t(locale, strings.NOTICE_AGREE),
            "notice_decline_hint": t(locale, strings.NOTICE_DECLINE_HINT),
            "expanded_legend": t(locale, strings.EXPANDED_LEGEND),
            "expanded_agree": t(locale, strings.EXPANDED_AGREE),
            "licence_legend": t(locale, strings.LICENCE_LEGEND),
            "licence_agree": t(locale, strings.LICENCE_AGREE),
            "category_prompt": t(locale, flow.STEPS[CATEGORY].prompt),
            "rating_prompt": t(locale, flow.STEPS[RATING].prompt),
            "text_label": t(locale, strings.TEXT_LABEL),
            "own_work": t(locale, strings.OWN_WORK),
            "contact_label": t(locale, strings.CONTACT_LABEL),
            "contact_hint": t(locale, strings.CONTACT_HINT),
            "submit": t(locale, strings.SUBMIT),
            "decline": t(locale, strings.DECLINE),
        }
        return self.html(
            "form.html",
            status,
            locale,
            page=self.page(request, locale, title, error=bool(errors)),
            s=s,
            # The language in the address too: a body too broken to read still gets its
            # error in the language of the page it came from.
            action=f"{FORM_PATH}?{urlencode({LANG: locale})}",
            form_id=form_id,
            locale=locale,
            notice_version=intake.notice_version,
            notice_text=self.i18n.render(locale, intake.consent_text(ConsentPurpose.PROCESSING)),
            expanded_text=self.i18n.render(
                locale, intake.consent_text(ConsentPurpose.EXPANDED_USE)
            ),
            licence_text=self.i18n.render(locale, intake.consent_text(ConsentPurpose.LICENCE)),
            licence_required=intake.licence_required,
            categories=categories,
            ratings=ratings,
            text_prompt=self.i18n.render(locale, intake.text_prompt()),
            values={
                "consent_processing": False,
                "consent_expanded_use": False,
                "consent_licence": False,
                CATEGORY: "",
                RATING: "",
                TEXT: "",
                OWN_WORK: False,
                CONTACT: "",
                **values,
            },
            errors=rendered_errors,
            error_list=error_list,
        )

    async def form(self, request: web.Request) -> web.Response:
        return self.render_form(request, self.locale(request), form_id=new_form_id())

    async def submit(self, request: web.Request) -> web.Response:
        locale = self.locale(request)
        if not await self.limiter.hit(self.posts, "form", request.remote or "unknown"):
            log.info("form refused", extra={"reason": "rate_limited", "status": 429})
            return self.message(
                request,
                locale,
                status=429,
                title=self.t(locale, strings.FORM_TITLE),
                paragraphs=[self.t(locale, strings.ERR_TOO_MANY)],
                link=self.form_link(locale),
            )
        content_type = request.content_type
        charset = request.charset
        if content_type != "application/x-www-form-urlencoded" or (
            charset is not None and charset.lower() not in ("utf-8", "utf8")
        ):
            return self.message(
                request,
                locale,
                status=415,
                title=self.t(locale, strings.FORM_TITLE),
                paragraphs=[self.t(locale, strings.ERR_MEDIA_TYPE)],
                link=self.form_link(locale),
            )
        try:
            parsed = parse_body(await read_body(request, self.max_body_bytes))
        except BadForm as bad:
            log.info("form refused", extra={"reason": bad.reason, "status": bad.status})
            return self.render_form(
                request,
                locale,
                form_id=new_form_id(),
                errors={GENERAL: bad.message},
                status=bad.status,
            )
        fields = parsed.fields
        locale = self.locale(request, fields.get(LANG))

        action = fields.get(ACTION, SEND)
        if action == DECLINE:
            try:
                await self.intake.decline()
            except DatabaseUnavailable:
                return self.unavailable(request, locale)
            raise web.HTTPSeeOther(f"{DECLINED_PATH}?{urlencode({LANG: locale})}")

        checked = self.intake.check(
            fields, locale, structural_error=parsed.structural_error or action != SEND
        )
        if checked.submission is None:
            log.info("form invalid", extra={"fields": sorted(checked.errors)})
            return self.render_form(
                request,
                locale,
                form_id=fields[FORM_ID]
                if FORM_ID_RE.match(fields.get(FORM_ID, ""))
                else new_form_id(),
                values=self._kept_values(
                    fields, stale=fields.get(NOTICE_VERSION_FIELD) != self.intake.notice_version
                ),
                errors=checked.errors,
                status=400,
            )
        try:
            ticket = await self.intake.submit(checked.submission)
        except (Busy, DatabaseUnavailable, CustomerErased) as exc:
            log.warning("form not saved", extra={"cause": type(exc).__name__})
            message = strings.ERR_BUSY if isinstance(exc, Busy) else strings.ERR_UNAVAILABLE
            return self.render_form(
                request,
                locale,
                # Erased as it was sent (by staff): sent again, it is a new customer's.
                form_id=new_form_id()
                if isinstance(exc, CustomerErased)
                else checked.submission.form_id,
                values=self._kept_values(fields, stale=False),
                errors={GENERAL: Text(message)},
                status=503,
            )
        query = {"ref": ticket.reference, "k": self.sign(ticket.reference), LANG: locale}
        raise web.HTTPSeeOther(f"{DONE_PATH}?{urlencode(query)}")

    @staticmethod
    def _kept_values(fields: Mapping[str, str], *, stale: bool) -> dict[str, Any]:
        """What the visitor entered, to show again; a consent to a changed text is not kept."""
        values: dict[str, Any] = {
            name: fields.get(name, "") for name in (CATEGORY, RATING, TEXT, CONTACT)
        }
        values[OWN_WORK] = fields.get(OWN_WORK) == TICKED
        for name in CONSENT_FIELDS.values():
            values[name] = fields.get(name) == TICKED and not stale
        return values

    # ------------------------------------------------------------ after sending

    async def _signed_ticket(self, request: web.Request) -> Ticket | None:
        reference = request.query.get("ref", "")
        key = request.query.get("k", "")
        if not REFERENCE_RE.match(reference) or not re.match(r"^[0-9a-f]{64}$", key):
            return None
        if not hmac.compare_digest(self.sign(reference), key):
            return None
        return await self.intake.repos.tickets.by_reference(reference)

    async def done(self, request: web.Request) -> web.Response:
        locale = self.locale(request)
        try:
            ticket = await self._signed_ticket(request)
        except DatabaseUnavailable:
            return self.unavailable(request, locale)
        if ticket is None:
            return self.message(
                request,
                locale,
                status=404,
                title=self.t(locale, strings.NOT_FOUND_TITLE),
                paragraphs=[self.t(locale, strings.NOT_FOUND)],
                link=self.form_link(locale),
            )
        tickets = self.intake.tickets
        due = self.i18n.format_date(locale, tickets.calendar.local_date(ticket.response_due))
        days = (
            tickets.deadlines.complex_days
            if ticket.complex
            else tickets.deadlines.first_response_days
        )
        title = self.t(locale, strings.DONE_TITLE)
        # Only the reference and the due date: nothing the customer wrote or gave (C3.1.4).
        return self.html(
            "done.html",
            200,
            locale,
            page=self.page(
                request, locale, title, keep={"ref": ticket.reference, "k": request.query["k"]}
            ),
            s={
                "title": title,
                "next_title": self.t(locale, strings.DONE_NEXT_TITLE),
                "next": self.t(locale, strings.DONE_NEXT),
                "again": self.t(locale, strings.DONE_AGAIN),
            },
            reference=ticket.reference,
            reference_text=self.t(locale, strings.DONE_REFERENCE, reference=ticket.reference),
            due_text=self.t(locale, strings.DONE_DUE, due=due, days=days),
            again_href=f"{FORM_PATH}?{urlencode({LANG: locale})}",
        )

    async def declined(self, request: web.Request) -> web.Response:
        locale = self.locale(request)
        return self.message(
            request,
            locale,
            status=200,
            title=self.t(locale, strings.DECLINED_TITLE),
            paragraphs=[self.t(locale, strings.DECLINED)],
            link=self.form_link(locale),
        )

    # ------------------------------------------------------------ the privacy policy (C6.1)

    async def policy(self, request: web.Request) -> web.Response:
        """The published policy: the very texts every channel asks agreement to, with their
        version, and how to use one's rights."""
        locale = self.locale(request)
        intake = self.intake
        paragraphs = [self.t(locale, strings.POLICY_INTRO)]
        for purpose in (
            ConsentPurpose.PROCESSING,
            ConsentPurpose.EXPANDED_USE,
            ConsentPurpose.LICENCE,
        ):
            text = self.i18n.render(locale, intake.consent_text(purpose))
            paragraphs += [line for line in text.split("\n") if line.strip()]
        paragraphs.append(self.t(locale, strings.POLICY_RIGHTS, days=self.request_days))
        title = self.t(locale, strings.POLICY_TITLE, version=intake.config.notice_version)
        return self.message(request, locale, status=200, title=title, paragraphs=paragraphs)

    # ------------------------------------------------------------ the channels page (C2.3)

    async def channels(self, request: web.Request) -> web.Response:
        locale = self.locale(request)
        t = self.t
        base = self.base_url(request)
        snippet = (
            f'<script src="{base}{WIDGET_SCRIPT_PATH}"></script>\n'
            f'<script>FeedbackWidget.init({{ server: "{base}" }});</script>'
        )
        title = t(locale, strings.CHANNELS_TITLE)
        username = self.telegram_username
        return self.html(
            "channels.html",
            200,
            locale,
            page=self.page(request, locale, title),
            s={
                "title": title,
                "intro": t(locale, strings.CHANNELS_INTRO),
                "widget_title": t(locale, strings.WIDGET_TITLE),
                "widget_text": t(locale, strings.WIDGET_TEXT),
                "widget_embed": t(locale, strings.WIDGET_EMBED),
                "telegram_title": t(locale, strings.TELEGRAM_TITLE),
                "telegram_text": t(locale, strings.TELEGRAM_TEXT),
                "telegram_unavailable": t(locale, strings.TELEGRAM_UNAVAILABLE),
                "form_title": t(locale, strings.FORM_CHANNEL_TITLE),
                "form_text": t(locale, strings.FORM_CHANNEL_TEXT),
            },
            widget_snippet=snippet,
            telegram_url=f"https://t.me/{username}" if username else None,
            telegram_username=username,
            form_url=f"{base}{FORM_PATH}",
            form_href=f"{base}{FORM_PATH}?{urlencode({LANG: locale})}",
        )
