"""Composition root: builds the clients, the services and the aiohttp application.

Nothing else constructs long-lived objects; everything is passed down from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from limits.aio.storage import MemoryStorage, Storage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.admission import Admission
from bot.channels.form import FORM_PAGES, FormSender, register_form_routes
from bot.channels.manual import StaffAnswerThem
from bot.channels.telegram import TelegramChannel
from bot.channels.widget import WidgetChannel
from bot.config import Settings
from bot.console import register_console
from bot.domain.calendar import WorkingCalendar
from bot.domain.flow import FlowConfig
from bot.domain.models import Channel, utcnow
from bot.domain.privacy import NOTICE_VERSION
from bot.i18n import I18n
from bot.metrics import CommandTimer, GcTimer, Metrics
from bot.services.analytics import AnalyticsService
from bot.services.consents import ConsentService
from bot.services.delivery import Clock, DeliveryService
from bot.services.dialogue import DialogueService
from bot.services.privacy import PrivacyService
from bot.services.retention import RetentionPolicy, RetentionService
from bot.services.tickets import Deadlines, TicketService
from bot.sharing import (
    close_rate_limits,
    close_socketio_manager,
    rate_limit_storage,
    socketio_manager,
)
from bot.storage import Database, DatabaseUnavailable, Repositories
from bot.storage.embedded import EmbeddedDatabase, index_ids, sqlite_dir

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0
DELIVERY_STOP_SECONDS = 10.0


# Writes at once on FerretDB (bot.storage.database.WriteGate). Measured with
# bench/widget_load.py: 1 held 235 inputs/s, 2-6 held 250-263/s at saturation with p99
# under 500 ms; with no bound 250/s collapsed to 20-70/s.
FERRETDB_WRITES_AT_ONCE = 3


@dataclass
class Container:
    """Everything one process runs, built once from Settings."""

    settings: Settings
    database: Database
    repos: Repositories
    i18n: I18n
    delivery: DeliveryService
    tickets: TicketService
    dialogue: DialogueService
    metrics: Metrics
    widget: WidgetChannel
    privacy: PrivacyService
    analytics: AnalyticsService
    retention: RetentionService
    telegram: TelegramChannel | None = None
    indexes_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Every rate limit of this process: in memory, or in Redis shared by every process.
    rate_limits: Storage = field(default_factory=MemoryStorage)
    # The embedded database's files, when that is the database (see index_ids).
    sqlite_dir: Path | None = None

    @classmethod
    def build(cls, settings: Settings, uri: str, clock: Clock = utcnow) -> Container:
        metrics = Metrics()
        database = Database(
            uri, settings.mongodb_database, settings.mongodb_timeout_ms, [CommandTimer(metrics)]
        )
        repos = Repositories.create(database)
        i18n = I18n(settings.locales_dir, settings.default_locale)
        i18n.check()  # a missing catalog fails the start, not a customer's first message
        delivery = DeliveryService(
            repos,
            metrics,
            clock,
            lease_seconds=settings.delivery_lease_seconds,
            max_attempts=settings.delivery_max_attempts,
            give_up_hours=settings.delivery_give_up_hours,
            poll_seconds=settings.delivery_poll_seconds,
        )
        tickets = TicketService(
            repos,
            delivery,
            WorkingCalendar(settings.timezone),
            i18n,
            metrics,
            clock,
            reference_prefix=settings.reference_prefix,
            deadlines=Deadlines(
                first_response_days=settings.first_response_working_days,
                complex_days=settings.complex_working_days,
            ),
        )
        flow_config = FlowConfig(
            notice_version=NOTICE_VERSION,
            licence_required=settings.licence_required,
            text_min=settings.text_min_chars,
            text_max=settings.text_max_chars,
            max_attachments=settings.max_attachments,
            retention_days=settings.retention_closed_ticket_days,
        )
        consents = ConsentService(repos, i18n, metrics, clock, tickets.calendar)
        privacy = PrivacyService(
            repos,
            i18n,
            metrics,
            clock,
            consents,
            tickets,
            request_days=settings.privacy_request_days,
            licence_required=settings.licence_required,
        )
        dialogue = DialogueService(
            repos, tickets, i18n, metrics, clock, flow_config, consents, privacy
        )
        retention = RetentionService(
            repos, privacy, metrics, clock, RetentionPolicy.from_settings(settings)
        )
        analytics = AnalyticsService(
            repos,
            tickets.calendar,
            clock,
            first_response_days=settings.first_response_working_days,
        )
        tickets.listeners.append(analytics)
        rate_limits = rate_limit_storage(settings)
        widget = WidgetChannel(
            settings,
            repos,
            dialogue,
            delivery,
            i18n,
            metrics,
            rate_limits=rate_limits,
            client_manager=socketio_manager(settings),
            admission=Admission(settings.inputs_in_flight, metrics),  # a bound per channel
        )
        for logged_by_staff in (Channel.PHONE, Channel.EMAIL):
            delivery.register(logged_by_staff, StaffAnswerThem())
        delivery.register(Channel.FORM, FormSender())
        telegram = None
        if settings.telegram_token is not None:
            telegram = TelegramChannel(
                settings,
                repos,
                dialogue,
                tickets,
                delivery,
                i18n,
                rate_limits=rate_limits,
                admission=Admission(settings.inputs_in_flight, metrics),
            )
            if telegram.staff_topics is not None:
                privacy.topic_eraser = telegram.staff_topics.delete_topic
        return cls(
            widget=widget,
            privacy=privacy,
            analytics=analytics,
            retention=retention,
            telegram=telegram,
            settings=settings,
            database=database,
            repos=repos,
            i18n=i18n,
            delivery=delivery,
            tickets=tickets,
            dialogue=dialogue,
            metrics=metrics,
            rate_limits=rate_limits,
        )

    async def prepare_database(self) -> None:
        """Every collection and index; on the embedded database, its `_id` indexes too;
        and how many writes to send it at once (WriteGate)."""
        writes = self.settings.mongodb_writes_at_once
        if writes is None and await self.database.is_ferretdb():
            writes = FERRETDB_WRITES_AT_ONCE
        self.database.writes.limit_to(writes or None)  # 0: no bound
        await self.repos.ensure_indexes()
        keyed = await self.repos.customer_keys.backfill(self.repos.customers)
        if keyed:
            log.info("customers keyed by identity", extra={"count": keyed})
        if self.sqlite_dir is not None:
            created = await asyncio.to_thread(
                index_ids, self.sqlite_dir, self.settings.mongodb_database
            )
            if created:
                log.info("embedded database: _id indexes added", extra={"count": created})

    async def ensure_indexes_until_ready(self, retry_seconds: float = 2.0) -> None:
        """Create indexes at start-up; if the database is down, keep trying (health says 503)."""
        while True:
            try:
                await self.prepare_database()
            except DatabaseUnavailable as exc:
                log.warning(
                    "database unavailable at start-up; retrying",
                    extra={"cause": type(exc.__cause__).__name__},
                )
                await asyncio.sleep(retry_seconds)
            else:
                self.indexes_ready.set()
                log.info("indexes ready")
                return

    async def run_channels(self, retry_seconds: float = 5.0) -> None:
        """Start the channels once the database is ready; retry while Telegram is unreachable."""
        await self.indexes_ready.wait()
        while self.telegram is not None:
            try:
                await self.telegram.start()
            except Exception:  # network, bad token: log, keep the rest of the service up
                log.exception("telegram channel failed to start; retrying")
                await asyncio.sleep(retry_seconds)
            else:
                return

    async def stop_receiving(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop_receiving()

    async def close(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop()
        await close_socketio_manager(self.widget.sio.manager)
        await close_rate_limits(self.rate_limits)
        await self.database.close()


@contextlib.asynccontextmanager
async def tool_container(settings: Settings) -> AsyncIterator[Container]:
    """A container for a command-line tool (`chat`, `staff add`) on the configured database:
    MONGODB_URI, else the embedded server the service is running, else one started for the
    tool and stopped after it."""
    embedded = None
    uri = settings.mongodb_uri or EmbeddedDatabase.running_uri(settings.data_dir / "ferretdb")
    if uri is None:
        embedded = await asyncio.to_thread(
            EmbeddedDatabase.start, settings.cache_dir, settings.data_dir / "ferretdb"
        )
        uri = embedded.uri
    container = Container.build(settings, uri)
    if settings.mongodb_uri is None:
        container.sqlite_dir = sqlite_dir(settings.data_dir / "ferretdb")
    try:
        await container.prepare_database()
        yield container
    finally:
        await container.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


CONTAINER = web.AppKey("container", Container)


async def healthz(request: web.Request) -> web.Response:
    container = request.app[CONTAINER]
    try:
        await asyncio.wait_for(container.database.ping(), HEALTH_TIMEOUT_SECONDS)
    except (DatabaseUnavailable, TimeoutError):
        container.metrics.database_up.set(0)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    container.metrics.database_up.set(1)
    ready = container.indexes_ready.is_set()
    body = {"status": "ok" if ready else "starting", "database": "up", "indexes": ready}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    request.app[CONTAINER].metrics.record_gc_pauses()
    registry = request.app[CONTAINER].metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(trusted: list[Network]) -> Middleware:
    """Behind proxies, the client's address (`request.remote`) from X-Forwarded-For, and
    its scheme (`request.secure`) from X-Forwarded-Proto.

    Only when the peer is one of our proxies (BOT_TRUSTED_PROXIES): anyone else could
    write any address there and escape the per-address limits. Each proxy appends the
    address it got the request from, so the client is the right-most address that is
    not one of ours. Socket.IO gets the same request, so the widget's limits see it too.

    Every cookie set in an answer to a request that came over HTTPS is sent back to
    HTTPS only (`Secure`), whatever BOT_CONSOLE_SECURE_COOKIES says: a console behind a
    TLS proxy has its session cookie kept off plain HTTP without a setting to remember.
    """

    def ours(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    def as_client_sent(request: web.Request) -> web.Request:
        peer = request.remote
        if not trusted or peer is None or not ours(peer):
            return request
        hops = [
            hop.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")
        ]
        client = peer
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break  # not an address: believe nothing further left
            client = hop
            if not ours(hop):
                break
        # The scheme the client used: the first proxy's, the left-most.
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        scheme = proto if proto in ("http", "https") else request.scheme
        if client == peer and scheme == request.scheme:
            return request
        return request.clone(remote=client, scheme=scheme)

    def secured(request: web.Request, response: web.StreamResponse) -> None:
        if request.secure:
            for cookie in response.cookies.values():
                cookie["secure"] = True

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request = as_client_sent(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a redirect may set a cookie too
            secured(request, exc)
            raise
        secured(request, response)
        return response

    return middleware


@web.middleware
async def count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # The route's pattern, not the path: a path can carry a reference or an id.
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[CONTAINER].metrics.http_requests.labels(name, str(exc.status)).inc()
        raise
    request.app[CONTAINER].metrics.http_requests.labels(name, str(response.status)).inc()
    return response


def build_app(container: Container) -> web.Application:
    app = web.Application(
        middlewares=[client_address(container.settings.proxy_networks), count_requests],
        client_max_size=1024**2,
    )
    app[CONTAINER] = container
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    container.widget.attach(app)
    register_console(app, container)
    settings = container.settings
    app[FORM_PAGES] = register_form_routes(
        app,
        container,
        secret=settings.form_link_secret.get_secret_value(),
        telegram_username=settings.telegram_bot_username,
        public_url=settings.public_url,
        posts_per_ip=settings.form_posts_per_ip,
    )
    if container.telegram is not None:
        container.telegram.register_webhook(app)

    async def background(app: web.Application) -> AsyncIterator[None]:
        delivery = asyncio.create_task(container.delivery.run())
        retention = asyncio.create_task(
            container.retention.run_periodically(
                settings.retention_interval_minutes * 60, ready=container.indexes_ready
            )
        )
        tasks = [
            asyncio.create_task(container.ensure_indexes_until_ready()),
            delivery,
            retention,
            asyncio.create_task(container.run_channels()),
        ]
        yield
        # The dispatcher finishes the message in hand and stops; it is cancelled only if
        # that takes too long (a send hanging on an unreachable channel). Meanwhile
        # Telegram polling stops taking updates and finishes those in hand.
        container.delivery.stop()
        container.retention.stop()  # a retention round in hand is cut short the same way
        receiving = asyncio.create_task(container.stop_receiving())
        await asyncio.wait([delivery, retention, receiving], timeout=DELIVERY_STOP_SECONDS)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await container.close()

    app.cleanup_ctx.append(background)
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order: HTTP, workers, database."""
    embedded: EmbeddedDatabase | None = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = await asyncio.to_thread(
            EmbeddedDatabase.start, settings.cache_dir, settings.data_dir / "ferretdb"
        )
        uri = embedded.uri
        log.info("using the embedded database", extra={"data_dir": str(settings.data_dir)})
    else:
        log.info("using MONGODB_URI; no embedded database started")
    try:
        container = Container.build(settings, uri)
        if embedded is not None:
            container.sqlite_dir = embedded.sqlite_dir
        runner = web.AppRunner(build_app(container), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        # Everything made so far (modules, models, catalogs, routes: about 250,000
        # objects) lives as long as the process. Out of the collector's sight, a full
        # collection no longer walks them all: it stopped the event loop for 160-200 ms
        # every few seconds under load (docs/performance.md, fourth pass).
        gc.collect()  # what is garbage already is not frozen with the rest
        gc.freeze()
        log.info("listening", extra={"host": settings.http_host, "port": settings.http_port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with GcTimer(container.metrics):
            await stop.wait()
        log.info("shutting down")
        await runner.cleanup()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    log.info("stopped")
