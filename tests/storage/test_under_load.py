"""What keeps storage steady under load: how many writes one process sends the database
at once (WriteGate), and numbers drawn one at a time in a process (message numbers per
customer, ticket references per year), with the unique indexes still deciding between
processes."""

from __future__ import annotations

import asyncio
import os

import pytest
from pymongo import monitoring

from bot.app import FERRETDB_WRITES_AT_ONCE, Container
from bot.config import Settings
from bot.domain.models import Author, Channel, ConsentPurpose, Direction, Message
from bot.storage import Database, DatabaseUnavailable, Repositories
from tests.storage.test_repositories import consent, in_force, make_ticket
from tests.support import configured


class InFlight(monitoring.CommandListener):
    """The most commands of each name that were sent and not yet answered at one time."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.names: dict[int, list[str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Kept by command name ("insert"), and by name and collection ("insert tickets")."""
        target = event.command.get(event.command_name)
        names = [event.command_name, f"{event.command_name} {target}"]
        self.names[event.request_id] = names
        for name in names:
            self.counts[name] = self.counts.get(name, 0) + 1
            self.now[name] = self.now.get(name, 0) + 1
            self.most[name] = max(self.most.get(name, 0), self.now[name])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id)

    def _done(self, request_id: int) -> None:
        for name in self.names.pop(request_id, []):
            self.now[name] -= 1


async def test_writes_wait_their_turn_and_reads_do_not(mongo_uri: str, db_name: str) -> None:
    watch = InFlight()
    database = Database(mongo_uri, db_name, listeners=[watch])
    try:
        database.writes.limit_to(2)
        collection = database.db["gate"]
        await asyncio.gather(*(collection.insert_one({"_id": f"d{i}"}) for i in range(30)))
        assert await collection.count_documents({}) == 30  # nothing was lost waiting
        assert watch.most["insert"] == 2

        database.writes.limit_to(1)
        async with database.writes.turn():  # the one turn is taken
            write = asyncio.ensure_future(collection.delete_one({"_id": "d0"}))
            assert await collection.find_one({"_id": "d0"}) == {"_id": "d0"}  # reads go on
            await asyncio.sleep(0.2)
            assert not write.done()  # the write waits for its turn
        assert (await write).deleted_count == 1  # and gets it
    finally:
        await database.client.drop_database(db_name)
        await database.close()


async def test_a_write_that_cannot_get_a_turn_in_time_finds_the_database_unavailable(
    mongo_uri: str, db_name: str
) -> None:
    database = Database(mongo_uri, db_name, timeout_ms=200)
    try:
        database.writes.limit_to(1)
        collection = database.db["gate"]
        async with database.writes.turn():  # e.g. a write waiting out a database outage
            with pytest.raises(DatabaseUnavailable):
                await collection.insert_one({"_id": "late"})
        assert await collection.find_one({"_id": "late"}) is None
        await collection.insert_one({"_id": "late"})  # the one turn was given back
    finally:
        await database.client.drop_database(db_name)
        await database.close()


async def test_the_bound_is_3_on_ferretdb_none_on_mongodb_unless_set(
    container: Container, settings: Settings, mongo_uri: str
) -> None:
    ferretdb = await container.database.is_ferretdb()
    assert container.database.writes.limit == (FERRETDB_WRITES_AT_ONCE if ferretdb else None)
    if not os.environ.get("MONGODB_URI"):
        assert ferretdb  # the suite's own server is the embedded FerretDB

    chosen = Container.build(configured(settings, mongodb_writes_at_once=7), mongo_uri)
    try:
        await chosen.prepare_database()
        assert chosen.database.writes.limit == 7
    finally:
        await chosen.close()
    unbounded = Container.build(configured(settings, mongodb_writes_at_once=0), mongo_uri)
    try:
        await unbounded.prepare_database()
        assert unbounded.database.writes.limit is None
    finally:
        await unbounded.close()


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
        assert watch.most["insert tickets"] == 1  # one at a time
        assert watch.counts["insert tickets"] == 15
        # Drawn from the year's counter: the tickets were searched once, to start it.
        assert watch.counts["find tickets"] == 1
        # (one increment per ticket, and one that found no counter yet)
        assert watch.counts["findAndModify message_sequences"] == 16

        both = await asyncio.gather(
            *(
                repos.tickets.add(make_ticket("c2"), prefix="FB", year=2026)
                for repos in (ours, theirs)
                for _ in range(10)
            )
        )
        assert sorted(t.item.ref_number for t in both) == list(range(16, 36))

        # A counter behind what is stored (increments lost between processes, a restore)
        # catches up at the first number found taken, not one number per try.
        await ours.sequences.collection.update_one({"_id": "tickets:2026"}, {"$set": {"last": 3}})
        before = watch.counts["insert tickets"]
        late = await ours.tickets.add(make_ticket("c3"), prefix="FB", year=2026)
        assert late.item.ref_number == 36
        assert watch.counts["insert tickets"] - before == 2
    finally:
        await counted.client.drop_database(db_name)
        await counted.close()
        await other.close()


async def test_consents_given_in_two_processes_at_once_keep_one_ledger(
    mongo_uri: str, db_name: str
) -> None:
    # No lock between processes: the ledger's unique numbers decide, and a state left
    # behind by the other process is rebuilt when read.
    one, two = Database(mongo_uri, db_name), Database(mongo_uri, db_name)
    try:
        ours, theirs = Repositories.create(one), Repositories.create(two)
        await ours.ensure_indexes()
        purposes = list(ConsentPurpose)
        await asyncio.gather(
            *(
                repos.consents.append(consent("c", purposes[n % 3], n % 2 == 0))
                for n in range(12)
                for repos in (ours, theirs)
            )
        )
        ledger = await ours.consents.history("c")
        assert [r.seq for r in ledger] == list(range(1, 25))  # one number each, none skipped
        for repos in (ours, theirs):
            current = await repos.consents.current("c")
            assert {p: r.granted for p, r in current.items()} == in_force(ledger)
    finally:
        await one.client.drop_database(db_name)
        await one.close()
        await two.close()
