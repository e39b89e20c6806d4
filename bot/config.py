"""Settings: the only place that reads the environment.

Every setting is an environment variable (or a line in `.env`); the README has
the table. `Settings()` is built once in the CLI and passed down.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import limits
from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


def _user_cache_dir() -> Path:
    # The XDG convention, as scripts/setup.sh uses it: both must agree on the cache.
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Storage
    mongodb_uri: str | None = Field(
        default=None,
        validation_alias="MONGODB_URI",
        description="MongoDB connection string. Unset: start the embedded FerretDB.",
    )
    mongodb_database: str = Field(default="feedback", description="Database name.")
    mongodb_timeout_ms: int = Field(
        default=5000, ge=100, description="Server selection and connect timeout (ms)."
    )
    mongodb_writes_at_once: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Writes one process sends the database at once; the rest wait their "
        "turn in the process (0: no bound). Unset: 3 when the server is FerretDB (SQLite "
        "under it lets one writer in at a time, and waiting writers back off for up to "
        "100 ms), no bound on MongoDB.",
    )
    data_dir: Path = Field(
        default=ROOT / "data", description="Where the embedded database keeps its files."
    )
    cache_dir: Path = Field(
        default_factory=lambda: _user_cache_dir() / "feedback-bot",
        description="Where built tools (the FerretDB binary) are cached.",
    )

    # HTTP
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP server.")

    inputs_in_flight: int = Field(
        default=64,
        ge=1,
        le=10000,
        description="Customer inputs one process works on at once, per channel (widget "
        "inputs; Telegram webhook updates). One more is answered busy at once and retried "
        "by its client, instead of queueing behind the rest past the process's capacity.",
    )

    # Logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one object a line; text: for a terminal."
    )

    # The company and its deadlines (contract C3.1.3)
    timezone: str = Field(
        default="Asia/Shanghai", description="The company's time zone; due dates are in it."
    )
    first_response_working_days: int = Field(
        default=3, ge=1, le=60, description="X: working days to the initial handling opinion."
    )
    complex_working_days: int = Field(
        default=10, ge=1, le=120, description="XX: working days for tickets marked complex."
    )
    reference_prefix: str = Field(
        default="FB", pattern=r"^[A-Z]{1,6}$", description="Ticket reference prefix."
    )

    # The dialogue
    default_locale: Literal["zh_CN", "en"] = "zh_CN"
    licence_required: bool = Field(
        default=True, description="The feedback licence (C3.2.3) must be accepted to go on."
    )
    text_min_chars: int = Field(default=5, ge=1, description="Shortest feedback text accepted.")
    text_max_chars: int = Field(
        default=4000, ge=10, le=20000, description="Longest feedback text accepted."
    )
    max_attachments: int = Field(default=5, ge=0, le=20, description="Attachments per ticket.")
    retention_closed_ticket_days: int = Field(
        default=730, ge=1, description="Days a closed ticket's personal data is kept (C4.3)."
    )
    privacy_request_days: int = Field(
        default=15, ge=1, le=60, description="Days to answer a customer's request about their data."
    )
    retention_draft_days: int = Field(
        default=30, ge=1, description="Days an abandoned dialogue draft is kept (C4.3)."
    )
    retention_refusal_days: int = Field(
        default=365, ge=1, description="Days an anonymous refused-consent count is kept (C4.3)."
    )
    retention_audit_days: int = Field(
        default=1095,
        ge=1,
        description="Days audit entries and answered privacy requests are kept (C4.3).",
    )
    retention_interval_minutes: float = Field(
        default=60, gt=0, description="How often the retention job runs (minutes)."
    )

    # Several processes (README: "Several processes")
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by every process (socket.io emits, rate limits). "
        "Unset: one process, everything in memory.",
    )

    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of the proxies in front of the "
        "service, whose X-Forwarded-For is believed. Empty: the peer address is the client.",
    )

    # Delivery (outbox dispatcher)
    delivery_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often an idle dispatcher looks for due messages."
    )
    delivery_lease_seconds: float = Field(
        default=30, gt=0, description="How long a claimed message is reserved for one sender."
    )
    delivery_give_up_hours: float = Field(
        default=72, gt=0, description="While a channel is unreachable, how long to keep trying."
    )
    delivery_max_attempts: int = Field(
        default=12, ge=1, description="Attempts before a message is marked undeliverable."
    )

    # Telegram (issue: Telegram channel). No token: the channel is off.
    telegram_token: SecretStr | None = Field(
        default=None, description="Bot token from @BotFather. Unset: no Telegram channel."
    )
    telegram_api_base: str | None = Field(
        default=None,
        description="Bot API server base URL (a local Bot API server, or the tests' fake).",
    )
    telegram_webhook_url: str | None = Field(
        default=None,
        description="Public HTTPS base URL: webhook mode at /telegram/webhook. Unset: polling.",
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="Secret token Telegram sends with each webhook call."
    )
    telegram_staff_chat_id: int | None = Field(
        default=None, description="Staff supergroup with forum topics: one topic per ticket."
    )
    telegram_note_prefix: str = Field(
        default="//",
        min_length=1,
        description="Staff messages in a topic starting with it stay notes.",
    )
    telegram_polling_timeout: int = Field(
        default=10, ge=1, le=50, description="Long-polling timeout (seconds)."
    )
    telegram_polling_lease_seconds: float = Field(
        default=30,
        ge=1,
        description="How long the polling process's lease lasts unrenewed: how soon "
        "another process takes over polling when it dies.",
    )
    telegram_polling_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Updates handled at once in long polling (different users'; each "
        "user's stay in order).",
    )
    telegram_update_claim_seconds: float = Field(
        default=60,
        ge=1,
        description="How long an update stays reserved for the process handling it: far "
        "longer than handling takes; after a crash, how soon another process handles the "
        "updates it had in hand.",
    )
    telegram_messages_per_second: int = Field(
        default=30,
        ge=1,
        description="Messages the bot sends per second in all (Telegram's limit for a bot; "
        "raise it only as far as Telegram has raised yours, e.g. with paid broadcasts).",
    )
    telegram_flood_messages: int = Field(
        default=20, ge=1, description="Messages a user may send per flood window before a pause."
    )
    telegram_flood_seconds: float = Field(
        default=10.0, gt=0, description="The flood window (seconds)."
    )

    # Public pages: the online form (/feedback) and the list of channels (/channels)
    public_url: str | None = Field(
        default=None, description="Public base URL shown on /channels. Unset: from the request."
    )
    form_link_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="HMAC key of the form's confirmation link. Set it when several processes run.",
    )
    form_posts_per_ip: str = Field(
        default="20 per hour", description="Form submissions one address may make."
    )
    telegram_bot_username: str | None = Field(
        default=None, description="The bot's @username, for the link on /channels."
    )

    # The staff console (/console)
    console_session_key: SecretStr = Field(
        default_factory=lambda: SecretStr(Fernet.generate_key().decode()),
        description="Fernet key of the console's session cookies. Set it when several "
        "processes run, or sessions end at every restart.",
    )
    console_session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="How long a console sign-in lasts."
    )
    console_secure_cookies: bool = Field(
        default=False, description="Send the console cookie over HTTPS only (set behind TLS)."
    )
    console_login_failures: str = Field(
        default="5 per 15 minutes",
        description="Sign-in attempts allowed per user name (a success starts again).",
    )
    console_login_failures_per_address: str = Field(
        default="30 per 15 minutes", description="Sign-in attempts allowed per address."
    )

    # The in-app widget (Socket.IO namespace /widget) and its uploads
    widget_allowed_origins: str = Field(
        default="",
        description="Comma-separated origins of host pages that may embed the widget. "
        "The service's own origin is always allowed.",
    )
    widget_identity_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key the host app signs user ids with. Unset: anonymous only.",
    )
    widget_max_payload_bytes: int = Field(
        default=16384, ge=1024, le=1048576, description="Largest Socket.IO message accepted."
    )
    widget_rate_per_connection: str = Field(
        default="20 per 10 seconds", description="Events one widget connection may send."
    )
    widget_rate_per_ip: str = Field(
        default="120 per minute", description="Events all widget connections from one IP may send."
    )
    widget_connects_per_ip: str = Field(
        default="30 per minute", description="Widget connections one IP may open."
    )
    widget_upload_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, le=10 * 1024 * 1024, description="Largest upload."
    )
    widget_upload_types: str = Field(
        default="image/jpeg,image/png,image/webp,image/gif,application/pdf",
        description="Comma-separated file types customers may upload.",
    )
    widget_upload_token_seconds: int = Field(
        default=300, ge=10, le=3600, description="How long an upload token is good for."
    )

    @field_validator(
        "widget_rate_per_connection",
        "widget_rate_per_ip",
        "widget_connects_per_ip",
        "console_login_failures",
        "console_login_failures_per_address",
        "form_posts_per_ip",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        limits.parse(value)  # "20 per 10 seconds"; raises on anything else
        return value

    @field_validator("console_session_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr) -> SecretStr:
        Fernet(value.get_secret_value())  # 32 url-safe base64 bytes; raises otherwise
        return value

    @property
    def widget_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.widget_allowed_origins.split(",") if o.strip()]

    @property
    def upload_types(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.widget_upload_types.split(",") if t.strip())

    @field_validator("mongodb_uri")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone: fail at start, not at the first ticket
        return value

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> Settings:
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise ValueError("BOT_TELEGRAM_WEBHOOK_URL needs BOT_TELEGRAM_WEBHOOK_SECRET")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        # Both python-socketio and limits take these two; limits reads unix:// as Valkey.
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("BOT_REDIS_URL must start with redis:// or rediss://")
        return value

    @model_validator(mode="after")
    def _shared_secrets_with_redis(self) -> Settings:
        # The defaults are random per start: with several processes a form link made by
        # one, or a console sign-in on one, would fail on the next. Refuse to start.
        if self.redis_url is not None:
            missing = [
                f"BOT_{name.upper()}"
                for name in ("form_link_secret", "console_session_key")
                if name not in self.model_fields_set
            ]
            if missing:
                raise ValueError(
                    f"BOT_REDIS_URL is set (several processes), so {' and '.join(missing)} "
                    "must be set too, to the same value in every process"
                )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)  # raises on a typo
        return value

    @property
    def proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in self.trusted_proxies.split(",")
            if item.strip()
        ]

    @property
    def locales_dir(self) -> Path:
        return ROOT / "locales"
