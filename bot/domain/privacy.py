"""Privacy rules that do not depend on storage or channels (C6.1, C6.2, C3.1.7, C3.2.3)."""

from __future__ import annotations

import hashlib

# The version of the privacy notice and consent texts. Bump it whenever the
# wording of the notice, the expanded-use consent or the licence changes: the
# ledger records which version a customer agreed to, and consents given under an
# older version are asked again.
NOTICE_VERSION = "2026-11-25"

# The customer's data export (docs/data-export.md). Bump the version on any change
# a reader of the file would notice; adding a field is a change.
EXPORT_FORMAT = "feedback-bot/customer-data-export"
EXPORT_VERSION = 1


def text_hash(text: str) -> str:
    """sha256 of the exact text shown, so the ledger proves what was agreed to."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def conversation_key(channel: str, external_id: str) -> str:
    """The dialogue's id for one person on one channel.

    Hashed so that the channel's user id is not copied into another collection;
    the customer record is the one place that holds it.
    """
    return hashlib.sha256(f"{channel}\x00{external_id}".encode()).hexdigest()
