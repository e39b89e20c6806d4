"""Phone and e-mail feedback that staff logged (C2.2): no automatic way back to the customer."""

from __future__ import annotations

from bot.domain.models import Customer, Message
from bot.services.delivery import SendResult, Undeliverable

NO_WAY_BACK = "phone or e-mail: no automatic channel; staff answer the customer themselves"


class StaffAnswerThem:
    """Settles such messages at once, so the ticket page shows at once that staff must
    call or write back, instead of a message pending for days."""

    async def send(self, message: Message, customer: Customer) -> SendResult:
        return Undeliverable(NO_WAY_BACK)
