"""Storage: PyMongo's async API, one repository per collection."""

from __future__ import annotations

from dataclasses import dataclass, fields

from bot.storage.analytics import AnalyticsRepository
from bot.storage.audit import AuditRepository
from bot.storage.canned import CannedReplyRepository
from bot.storage.consents import ConsentRepository, ConsentStateRepository
from bot.storage.conversations import ConversationRepository, VersionClaimRepository
from bot.storage.customers import CustomerErased, CustomerKeyRepository, CustomerRepository
from bot.storage.database import Database, DatabaseUnavailable, Repository
from bot.storage.inbound import InboundEventRepository
from bot.storage.locks import LockRepository
from bot.storage.messages import MessageRepository, OutboxRepository, SequenceRepository
from bot.storage.privacy import PrivacyRequestRepository
from bot.storage.refusals import RefusalRepository
from bot.storage.staff import StaffRepository
from bot.storage.staff_posts import StaffPostRepository
from bot.storage.tickets import TicketRepository
from bot.storage.uploads import UploadRepository, UploadTokenRepository


@dataclass(frozen=True)
class Repositories:
    customers: CustomerRepository
    customer_keys: CustomerKeyRepository
    conversations: ConversationRepository
    conversation_versions: VersionClaimRepository
    tickets: TicketRepository
    messages: MessageRepository
    sequences: SequenceRepository
    outbox: OutboxRepository
    consents: ConsentRepository
    consent_states: ConsentStateRepository
    staff: StaffRepository
    staff_posts: StaffPostRepository
    audit: AuditRepository
    refusals: RefusalRepository
    inbound: InboundEventRepository
    uploads: UploadRepository
    upload_tokens: UploadTokenRepository
    locks: LockRepository
    canned: CannedReplyRepository
    privacy_requests: PrivacyRequestRepository
    analytics: AnalyticsRepository

    @classmethod
    def create(cls, database: Database) -> Repositories:
        db = database.db
        locks = LockRepository(db)
        sequences = SequenceRepository(db)
        outbox = OutboxRepository(db)
        consent_states = ConsentStateRepository(db)
        customer_keys = CustomerKeyRepository(db)
        claims = VersionClaimRepository(db)
        return cls(
            customers=CustomerRepository(
                db, sequences=sequences, consent_states=consent_states, keys=customer_keys
            ),
            customer_keys=customer_keys,
            conversations=ConversationRepository(db, locks=locks, claims=claims),
            conversation_versions=claims,
            tickets=TicketRepository(db, locks=locks, sequences=sequences),
            messages=MessageRepository(db, sequences=sequences, outbox=outbox),
            sequences=sequences,
            outbox=outbox,
            consents=ConsentRepository(db, states=consent_states),
            consent_states=consent_states,
            staff=StaffRepository(db),
            staff_posts=StaffPostRepository(db),
            audit=AuditRepository(db),
            refusals=RefusalRepository(db),
            inbound=InboundEventRepository(db),
            uploads=UploadRepository(db),
            upload_tokens=UploadTokenRepository(db),
            locks=locks,
            canned=CannedReplyRepository(db),
            privacy_requests=PrivacyRequestRepository(db),
            analytics=AnalyticsRepository(db),
        )

    def all(self) -> list[Repository]:  # type: ignore[type-arg]
        return [getattr(self, f.name) for f in fields(self)]

    async def ensure_indexes(self) -> None:
        for repository in self.all():
            await repository.ensure_indexes()

    async def fence(self, customer_id: str) -> None:
        """After a write for a customer that an erasure does not wait for (their words
        going onto a ticket, a message queued for them, a consent decision): if their
        erasure began meanwhile, take back what is written for them and raise
        CustomerErased.

        The erasure marks the customer before it deletes anything and deletes the record
        last (PrivacyService.erase). A writer that finds the record unmarked after its
        write wrote before the mark, so the erasure's deletions find what it wrote; one
        that finds it marked, or gone, deletes what the erasure may have missed. Without
        this, words stored at the moment of an erasure stayed under the customer's id,
        where no retention rule looks (they start from customers).
        """
        if await self.customers.kept(customer_id):
            return
        await self.messages.delete_for_customer(customer_id)
        await self.consents.delete_for_customer(customer_id)
        raise CustomerErased(customer_id)


__all__ = ["CustomerErased", "Database", "DatabaseUnavailable", "Repositories"]
