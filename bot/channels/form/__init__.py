"""The online form (contract C2.2 (1)) and the public channels page (C2.3).

`register_form_routes(app, container, secret=...)` adds:
- GET/POST /feedback: the whole dialogue on one plain HTML page (no JavaScript);
- GET /feedback/done?ref=&k=: the confirmation, reachable only with the HMAC `k`;
- GET /feedback/declined: the polite page after declining the privacy notice;
- GET /channels: every way to reach us, localized;
- GET /privacy: the published privacy policy, with its version (C6.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.channels.form.intake import FormIntake
from bot.channels.form.pages import MAX_BODY_BYTES, FormPages
from bot.domain.models import Customer, Message
from bot.services.delivery import SendResult, Sent, Undeliverable

if TYPE_CHECKING:
    from bot.app import Container

FORM_PAGES = web.AppKey("form_pages", FormPages)
NO_WAY_BACK = "the online form has no way to reach the customer: use their contact details"


class FormSender:
    """Delivery for customers who came through the form.

    The acknowledgement is what the confirmation page shows the moment the form is sent,
    so it counts as delivered. A form is not a conversation: a later reply or status change
    cannot reach the customer here, so it is marked undeliverable at once, and staff see
    that they must use the contact details the customer gave (if any) instead.
    """

    async def send(self, message: Message, customer: Customer) -> SendResult:
        if message.kind == "ack":
            return Sent()
        return Undeliverable(NO_WAY_BACK)


def register_form_routes(
    app: web.Application,
    container: Container,
    *,
    secret: bytes | str,
    telegram_username: str | None = None,
    public_url: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    posts_per_ip: str = "20 per hour",
) -> FormPages:
    """Add the form and channels pages to `app` (its sender is registered in bot.app).

    `secret` keys the HMAC in the confirmation address: every process of one deployment
    needs the same one. `telegram_username` (without "@") and `public_url` (the service's
    public base URL; unset: taken from each request) appear on the channels page.
    """
    tickets = container.tickets
    intake = FormIntake(
        container.repos,
        tickets,
        container.i18n,
        container.metrics,
        tickets.clock,
        container.dialogue.config,
        container.dialogue.consents,
    )
    pages = FormPages(
        intake,
        container.i18n,
        secret=secret.encode("utf-8") if isinstance(secret, str) else secret,
        telegram_username=telegram_username,
        public_url=public_url,
        max_body_bytes=max_body_bytes,
        posts_per_ip=posts_per_ip,
        request_days=container.settings.privacy_request_days,
        rate_limits=container.rate_limits,
    )
    pages.register(app)
    return pages


__all__ = ["FORM_PAGES", "FormIntake", "FormPages", "FormSender", "register_form_routes"]
