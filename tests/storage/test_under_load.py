"""What keeps storage steady under load: how many writes one process sends the database
at once (WriteGate), and numbers drawn one at a time in a process (message numbers per
customer, ticket references per year), with the unique indexes still deciding between
processes."""

from __future__ import annotations

import asyncio
import os

from pymongo import monitoring

from bot.app import FERRETDB_WRITES_AT_ONCE, Container
from bot.config import Settings
from bot.domain.models import Author, Channel, Direction, Message
from bot.storage import Database, Repositories
from tests.storage.test_repositories import make_ticket
from tests.support import configured


class InFlight(monitoring.CommandListener):
    """The most commands of each name that were sent and not yet answered at one time."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.names: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names[event.request_id] = event.command_name
        self.counts[event.command_name] = self.counts.get(event.command_name, 0) + 1
        self.now[event.command_name] = self.now.get(event.command_name, 0) + 1
        self.most[event.command_name] = max(
            self.most.get(event.command_name, 0), self.now[event.command_name]
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id)

    def _done(self, request_id: int) -> None:
        name = self.names.pop(request_id, None)
        if name is not None:
            self.now[name] -= 1


async def test_writes_wait_their_turn_and_reads_do_not(mongo_uri: str, db_name: str) -> None:
    watch = InFlight()
    database = Database(mongo_uri, db_name, listeners=[watch])
    try:
        database.writes.limit_to(2)
        collection = database.db["gate"]
        await asyncio.gather(*(collection.insert_one({"_id": f"d{i}"}) for i in range(30)))
        await asyncio.gather(*(collection.find_one({"_id": f"d{i}"}) for i in range(30)))
        assert await collection.count_documents({}) == 30  # nothing was lost waiting
        assert watch.most["insert"] == 2
        assert watch.most["find"] > 2  # reads are not held back

        database.writes.limit_to(None)  # no bound: the writes go at once
        await asyncio.gather(*(collection.delete_one({"_id": f"d{i}"}) for i in range(30)))
        assert watch.most["delete"] > 2
        assert await collection.count_documents({}) == 0
    finally:
        await database.client.drop_database(db_name)
        await database.close()


async def test_the_bound_is_3_on_ferretdb_none_on_mongodb_unless_set(
    container: Container, settings: Settings, mongo_uri: str
) -> None:
    ferretdb = await container.database.is_ferretdb()
    assert ferretdb is not bool(os.environ.get("MONGODB_URI"))  # the suite's default server
    assert container.database.writes.limit == (FERRETDB_WRITES_AT_ONCE if ferretdb else None)

    chosen = Container.build(configured(settings, mongodb_writes_at_once=7), mongo_uri)
    try:
        await chosen.prepare_database()
        assert chosen.database.writes.limit == 7
    finally:
        await chosen.close()


async def test_one_customers_messages_at_once_get_numbers_in_turn(container: Container) -> None:
    messages = container.repos.messages
    customer_id = "customer-in-turn"
    await container.repos.sequences.begin(customer_id)

    def message(i: int) -> Message:
        return Message(
            customer_id=customer_id,
            channel=Channel.WIDGET,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text=f"words {i}",
            idempotency_key=f"widget:in-turn:{i}",
        )

    stored = await asyncio.gather(*(messages.append(message(i)) for i in range(20)))
    assert sorted(s.item.seq for s in stored) == list(range(1, 21))
    assert all(s.created for s in stored)
    # Drawn one at a time, no number was drawn twice: 20 inserts, none refused and tried
    # again (the service's own command timer counts them).
    inserts = sum(
        sample.value
        for metric in container.metrics.registry.collect()
        if metric.name == "feedback_database_command_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
        and sample.labels == {"command": "insert", "collection": "messages"}
    )
    assert inserts == 20


async def test_ticket_references_are_drawn_in_turn_and_unique_across_processes(
    mongo_uri: str, db_name: str
) -> None:
    watch = InFlight()
    counted = Database(mongo_uri, db_name, listeners=[watch])
    other = Database(mongo_uri, db_name)  # a second process, with its own client and locks
    try:
        ours, theirs = Repositories.create(counted), Repositories.create(other)
        await ours.ensure_indexes()
        filed = await asyncio.gather(
            *(ours.tickets.add(make_ticket("c1"), prefix="FB", year=2026) for _ in range(15))
        )
        # In one process: 15 references, 15 inserts; none refused and drawn again.
        assert sorted(t.item.ref_number for t in filed) == list(range(1, 16))
        assert watch.most["insert"] == 1  # one at a time
        inserts = watch.counts["insert"]
        assert inserts == 15

        both = await asyncio.gather(
            *(
                repos.tickets.add(make_ticket("c2"), prefix="FB", year=2026)
                for repos in (ours, theirs)
                for _ in range(10)
            )
        )
        assert sorted(t.item.ref_number for t in both) == list(range(16, 36))
    finally:
        await counted.client.drop_database(db_name)
        await counted.close()
        await other.close()
