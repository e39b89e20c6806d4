"""Customers' privacy requests on the staff side, over HTTP against the real database
(C3.2.6; issue 7): the request log with due dates, requests received by phone or e-mail,
the export download, the erasure with its confirmation, the audit trail."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

from bot.app import Container
from bot.console.auth import FORBIDDEN
from bot.domain.models import (
    Channel,
    ConsentPurpose,
    Customer,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    StaffRole,
    Ticket,
)
from bot.domain.text import Text
from tests.console.support import Client, get_page, post, sign_in
from tests.console.tickets import file_ticket
from tests.support import FixedClock, everything_stored

ROW = re.compile(
    r'data-testid="privacy-row" data-id="([^"]+)" data-kind="[^"]+" data-due="([^"]+)"'
)
REQUEST_PATH = re.compile(r"^/console/privacy/([0-9a-f]{32})\?done=(\w+)$")


def open_rows(page: str) -> list[tuple[str, str]]:
    """(request id, due state) of every open request listed, in page order."""
    return ROW.findall(page)


async def post_page(client: Client, path: str, csrf: str, status: int, **data: str) -> str:
    """POST a console form that answers with a page (a refusal); returns the page."""
    response = await client.post(path, data={"csrf": csrf, **data}, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


async def customer_of(container: Container, ticket: Ticket) -> Customer:
    customer = await container.repos.customers.get(ticket.customer_id)
    assert customer is not None
    return customer


async def stored(container: Container, request_id: str) -> PrivacyRequest:
    found = await container.repos.privacy_requests.get(request_id)
    assert found is not None
    return found


async def test_c3_2_6_agents_cannot_see_or_answer_privacy_requests(
    console: Client, container: Container
) -> None:
    agent, csrf = await sign_in(console, container.repos)
    ticket = await file_ticket(container, "201")
    customer = await customer_of(container, ticket)
    request = await container.privacy.log_request(
        customer, PrivacyRequestKind.ERASE, channel=Channel.PHONE, by="someone"
    )

    for path in ("/console/privacy", f"/console/privacy/{request.id}"):
        assert "This page is for another role." in await get_page(console, path, 403)
    for path, data in [
        ("/console/privacy", {"term": ticket.reference, "kind": "erase", "channel": "phone"}),
        ("/console/privacy/start", {"ticket": ticket.id, "kind": "erase", "channel": "phone"}),
        (f"/console/privacy/{request.id}/export", {}),
        (f"/console/privacy/{request.id}/erase", {"confirm": ticket.reference}),
        (f"/console/privacy/{request.id}/close", {"note": "done"}),
        (f"/console/privacy/{request.id}/contact", {"email": "", "phone": ""}),
        (f"/console/privacy/{request.id}/correction", {"ticket": ticket.id, "text": "Other."}),
        (f"/console/privacy/{request.id}/withdraw", {"purpose": "expanded_use"}),
    ]:
        await post_page(console, path, csrf, 403, **data)
    assert await container.repos.customers.get(customer.id) is not None
    assert (await stored(container, request.id)).state is PrivacyRequestState.OPEN
    assert len(await container.repos.privacy_requests.recent()) == 1

    # The agent sees that the customer has an open request, and whom to ask; no way in.
    assert 'id="nav-privacy"' not in await get_page(console, "/console/queue")
    page = await get_page(console, f"/console/tickets/{ticket.id}")
    panel = page.split('data-testid="privacy-panel"')[1].split("</section>")[0]
    assert "Delete their data" in panel
    assert "A supervisor answers these." in panel
    assert "privacy-start-form" not in panel
    assert f"/console/privacy/{request.id}" not in panel
    assert agent.id not in {
        e.actor for e in await container.repos.audit.recent(target_id=request.id)
    }


async def test_c3_2_6_open_requests_soonest_due_first_with_overdue_flagged(
    console: Client, container: Container, clock: FixedClock
) -> None:
    staff, _ = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sup1")
    start = clock.now
    customers = [await customer_of(container, await file_ticket(container, u)) for u in "abcd"]
    privacy = container.privacy

    # Logged out of order: the list follows the due dates, not the order of logging.
    clock.now = start + timedelta(days=8)
    late = await privacy.log_request(
        customers[0], PrivacyRequestKind.ACCESS, channel=Channel.EMAIL, by="customer"
    )
    clock.now = start
    early = await privacy.log_request(
        customers[1], PrivacyRequestKind.ERASE, channel=Channel.PHONE, by=staff.id
    )
    clock.now = start + timedelta(days=5)
    middle = await privacy.log_request(
        customers[2], PrivacyRequestKind.EXPORT, channel=Channel.EMAIL, by=staff.id
    )
    answered = await privacy.log_request(
        customers[3], PrivacyRequestKind.CORRECT, channel=Channel.PHONE, by=staff.id
    )
    await privacy.close_request(answered.id, {"note": "phone number corrected"})
    assert early.due_at - early.opened_at == timedelta(days=15)  # the default

    # Two hours before the middle one's deadline: the same day in the company's time zone.
    clock.now = middle.due_at - timedelta(hours=2)
    page = await get_page(console, "/console/privacy")
    assert open_rows(page) == [
        (early.id, "overdue"),
        (middle.id, "due_today"),
        (late.id, "upcoming"),
    ]
    assert "answered within 15 days" in page
    assert "Overdue" in page
    assert "Due today" in page
    assert "Due in 3 days" in page
    assert "The customer (self-service)" in page  # who logged `late`
    assert "Sup1" in page
    answered_part = page.split('data-testid="privacy-answered"')[1]
    assert answered.id in answered_part
    assert "Answered on time" in answered_part
    assert f'href="/console/privacy/{early.id}"' in page  # each leads to its audit trail

    clock.now = middle.due_at + timedelta(seconds=1)
    page = await get_page(console, "/console/privacy")
    assert [state for _, state in open_rows(page)] == ["overdue", "overdue", "upcoming"]

    # The due date shows on the customer's ticket too, with a way to the request.
    (ticket,) = await container.repos.tickets.for_customer(customers[1].id)
    panel = (await get_page(console, f"/console/tickets/{ticket.id}")).split(
        'data-testid="privacy-panel"'
    )[1]
    assert f'href="/console/privacy/{early.id}"' in panel
    assert "Overdue" in panel.split("</ul>")[0]


async def test_c3_2_6_a_request_received_by_phone_or_e_mail_is_logged_with_its_due_date(
    console: Client, container: Container, clock: FixedClock
) -> None:
    staff, csrf = await sign_in(console, container.repos, role=StaffRole.ADMIN, username="adm1")
    ticket = await file_ticket(container, "211")
    customer = await customer_of(container, ticket)
    await container.repos.customers.update_fields(customer.id, email="Wang.Fang@example.com")

    where = await post(
        console,
        "/console/privacy",
        csrf,
        term=f"  {ticket.reference.lower()} ",
        kind="export",
        channel="phone",
    )
    found = REQUEST_PATH.match(where)
    assert found is not None, where
    assert found.group(2) == "logged"
    request = await stored(container, found.group(1))
    assert (request.kind, request.channel, request.by) == (
        PrivacyRequestKind.EXPORT,
        Channel.PHONE,
        staff.id,
    )
    assert request.customer_id == customer.id
    assert request.state is PrivacyRequestState.OPEN
    assert request.due_at == clock.now + timedelta(days=15)
    page = await get_page(console, where)
    assert "Request logged." in page
    assert ticket.reference in page
    assert "Adm1" in page

    # The same request again (a second call, a double click) is the same request.
    again = await post(
        console, "/console/privacy", csrf, term=ticket.reference, kind="export", channel="email"
    )
    assert again == f"/console/privacy/{request.id}?done=exists"

    where = await post(
        console,
        "/console/privacy",
        csrf,
        term="WANG.FANG@EXAMPLE.COM",
        kind="correct",
        channel="email",
    )
    found = REQUEST_PATH.match(where)
    assert found is not None, where
    by_email = await stored(container, found.group(1))
    assert (by_email.kind, by_email.channel, by_email.customer_id) == (
        PrivacyRequestKind.CORRECT,
        Channel.EMAIL,
        customer.id,
    )
    opened = await container.repos.privacy_requests.open_requests()
    assert {r.id for r in opened} == {request.id, by_email.id}

    actions = [e.action for e in await container.repos.audit.recent(actor=staff.id)]
    assert actions.count("privacy.lookup") == 3  # the term may be an e-mail (C3.1.4)
    assert actions.count("privacy.log") == 2


async def test_c3_2_6_an_unknown_or_ambiguous_customer_gets_a_clear_message(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sup1")
    chat = await file_ticket(container, "221", "Lamp flickers since the update.")
    widget = await file_ticket(
        container, "visitor-0000000000000222", "Kettle lid broke.", channel=Channel.WIDGET
    )
    for ticket in (chat, widget):  # one person, two channels, one address
        customer = await customer_of(container, ticket)
        await container.repos.customers.update_fields(customer.id, email="li.na@example.com")

    page = await post_page(
        console,
        "/console/privacy",
        csrf,
        409,
        term="li.na@example.com",
        kind="erase",
        channel="email",
    )
    assert "2 customers match that." in page
    listed = page.split('data-testid="privacy-candidates">')[1].split("</ul>")[0]
    assert f"Telegram: {chat.reference}" in listed
    assert f"In-app widget: {widget.reference}" in listed
    # Channel and references only: nothing else about them.
    for personal in ("@", "Lamp", "Kettle", "221", "visitor-"):
        assert personal not in listed

    page = await post_page(
        console, "/console/privacy", csrf, 404, term="FB-1999-000001", kind="erase", channel="phone"
    )
    assert "No customer matches that." in page
    page = await post_page(
        console,
        "/console/privacy",
        csrf,
        404,
        term="nobody@example.com",
        kind="access",
        channel="email",
    )
    assert "No customer matches that." in page
    page = await post_page(
        console, "/console/privacy", csrf, 400, term="", kind="erase", channel="phone"
    )
    assert "Give what identifies the customer" in page
    page = await post_page(
        console,
        "/console/privacy",
        csrf,
        400,
        term=chat.reference,
        kind="delete-all",
        channel="fax",
    )
    assert "Give what identifies the customer" in page
    assert await container.repos.privacy_requests.recent() == []


async def test_c3_2_6_the_export_download_holds_that_customers_data_and_every_view_is_audited(
    console: Client, container: Container, clock: FixedClock
) -> None:
    staff, csrf = await sign_in(
        console, container.repos, role=StaffRole.SUPERVISOR, username="sup1"
    )
    mine = await file_ticket(container, "231", "Mine: the heater rattles at night.")
    other = await file_ticket(container, "232", "Other: the fridge door sags.")
    customer = await customer_of(container, mine)
    await container.repos.customers.update_fields(customer.id, phone="+8613912345678")

    # From the ticket page, through the same request flow.
    where = await post(
        console, "/console/privacy/start", csrf, ticket=mine.id, kind="export", channel="phone"
    )
    found = REQUEST_PATH.match(where)
    assert found is not None, where
    request_id = found.group(1)
    page = await get_page(console, where)
    assert 'id="privacy-export"' in page

    response = await console.post(
        f"/console/privacy/{request_id}/export", data={"csrf": csrf}, allow_redirects=False
    )
    assert response.status == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    assert clock.now.date().isoformat() in disposition
    assert response.headers["Content-Type"].startswith("application/json")
    document = json.loads(await response.read())
    assert document["customer"]["phone"] == "+8613912345678"
    assert [t["reference"] for t in document["tickets"]] == [mine.reference]
    assert "Mine: the heater rattles at night." in json.dumps(document, ensure_ascii=False)
    assert "fridge" not in json.dumps(document, ensure_ascii=False)
    assert other.reference not in json.dumps(document, ensure_ascii=False)

    request = await stored(container, request_id)
    assert request.state is PrivacyRequestState.DONE
    assert request.done_at == clock.now
    # Answered once: a second click does not make a second export.
    again = await post(console, f"/console/privacy/{request_id}/export", csrf)
    assert again.endswith("?error=answered")

    page = await get_page(console, again)
    assert "This request has already been answered." in page
    assert 'id="privacy-export"' not in page
    trail = await container.repos.audit.recent(target_id=request_id)
    assert [e.action for e in reversed(trail)] == [
        "privacy.log",
        "privacy.view",
        "privacy.export",
        "privacy.view",
    ]
    assert {e.actor for e in trail} == {staff.id}
    assert "exported the customer&#39;s data" in page
    # No customer id in these entries: once erased, the trail leads back to nobody.
    assert all(customer.id not in e.detail.values() for e in trail)


async def test_c3_2_6_an_erasure_needs_the_confirmation_then_leaves_no_personal_data(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.ADMIN, username="adm1")
    text = "Zhao: my order 88231 never came, call me."
    ticket = await file_ticket(container, "tg-user-241", text)
    kept = await file_ticket(container, "tg-user-242", "Qian: the app logs me out.")
    customer = await customer_of(container, ticket)
    await container.repos.customers.update_fields(
        customer.id, email="zhao.lei@example.com", phone="+8613600001111"
    )
    await get_page(console, f"/console/tickets/{ticket.id}")  # a view, audited with their id

    where = await post(
        console, "/console/privacy/start", csrf, ticket=ticket.id, kind="erase", channel="email"
    )
    found = REQUEST_PATH.match(where)
    assert found is not None, where
    request_id = found.group(1)
    page = await get_page(console, where)
    assert "It cannot be undone." in page
    assert f'data-word="{ticket.reference}"' in page
    assert f"To confirm, type {ticket.reference}" in page

    erase = f"/console/privacy/{request_id}/erase"
    for typed in ("", "yes", kept.reference):
        page = await post_page(console, erase, csrf, 400, confirm=typed)
        assert "Nothing was erased." in page
    assert await container.repos.customers.get(customer.id) is not None
    assert (await stored(container, request_id)).state is PrivacyRequestState.OPEN

    where = await post(console, erase, csrf, confirm=f" {ticket.reference.lower()} ")
    assert where == f"/console/privacy/{request_id}?done=erased"
    assert await container.repos.customers.get(customer.id) is None
    anonymous = await container.tickets.get(ticket.id)
    assert text not in anonymous.text
    assert anonymous.category is ticket.category  # the statistics keep the ticket
    request = await stored(container, request_id)
    assert request.state is PrivacyRequestState.DONE
    assert request.customer_id is None

    everything = await everything_stored(container)
    for personal in (text, "zhao.lei@example.com", "8613600001111", "tg-user-241", customer.id):
        assert personal not in everything
    assert "Qian: the app logs me out." in everything  # nobody else's

    page = await get_page(console, where)
    assert "The customer&#39;s data has been erased and the request answered." in page
    assert "nothing leads back to them" in page
    assert "erased the customer&#39;s data" in page
    # What was done, in words (it was "customers=1, messages=2, ..."), and in the trail.
    assert "customer records deleted: 1" in page
    assert "tickets made anonymous: 1" in page
    assert "request: Delete their data" in page
    assert "customers=" not in page
    assert "kind=" not in page
    assert 'id="privacy-erase"' not in page
    assert f'href="/console/audit?target={request_id}"' in page  # admins: the full log
    audit_page = await get_page(console, f"/console/audit?target={request_id}")
    assert audit_page.count('data-testid="audit-row"') == len(
        await container.repos.audit.recent(target_id=request_id)
    )


async def logged(
    console: Client, csrf: str, ticket: Ticket, kind: PrivacyRequestKind
) -> tuple[str, str]:
    """A request of `kind` for the ticket's customer, received by phone: its id and page."""
    where = await post(
        console, "/console/privacy/start", csrf, ticket=ticket.id, kind=kind.value, channel="phone"
    )
    found = REQUEST_PATH.match(where)
    assert found is not None, where
    return found.group(1), await get_page(console, where)


async def test_c3_2_6_staff_correct_the_contact_details_a_customer_asked_for_by_phone(
    console: Client, container: Container
) -> None:
    staff, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR)
    ticket = await file_ticket(container, "tg-user-251")
    customer = await customer_of(container, ticket)
    await container.repos.customers.update_fields(
        customer.id, email="old@example.com", phone="+8613600002222"
    )
    request_id, page = await logged(console, csrf, ticket, PrivacyRequestKind.CORRECT)
    assert 'value="old@example.com"' in page  # what is held now, to be corrected
    assert 'id="privacy-close-form"' in page  # a note still answers what no form does

    contact = f"/console/privacy/{request_id}/contact"
    for email, phone in [("not an address", ""), ("", "12"), ("+8613600003333", "")]:
        page = await post_page(console, contact, csrf, 400, email=email, phone=phone)
        assert "leave a field empty" in page
        assert f'value="{email}"' in page  # what was typed is kept
    unchanged = await container.repos.customers.get(customer.id)
    assert unchanged is not None
    assert unchanged.email == "old@example.com"

    where = await post(console, contact, csrf, email=" new@example.com ", phone="+86 136 0000 3333")
    assert where == f"/console/privacy/{request_id}?done=corrected"
    corrected = await container.repos.customers.get(customer.id)
    assert corrected is not None
    assert (corrected.email, corrected.phone) == ("new@example.com", "+8613600003333")
    request = await stored(container, request_id)
    assert request.state is PrivacyRequestState.DONE
    assert request.detail["field"] == "contact"
    page = await get_page(console, where)
    assert "The correction is made and the request answered." in page
    assert "corrected: contact details" in page
    assert "corrected the customer&#39;s data" in page  # the trail
    assert 'id="privacy-contact-form"' not in page  # answered: nothing more to change here
    actions = [e.action for e in await container.repos.audit.recent(target_id=request_id)]
    assert "privacy.correct" in actions
    # The same again: refused, the request being answered.
    assert await post(console, contact, csrf, email="", phone="") == (
        f"/console/privacy/{request_id}?error=answered"
    )
    assert await container.repos.customers.get(customer.id) == corrected
    assert staff.id == request.by


async def test_c3_2_6_staff_add_a_customers_correction_to_their_feedback(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR)
    ticket = await file_ticket(container, "tg-user-252", "The parcel came on Tuesday.")
    other = await file_ticket(container, "tg-user-253")
    request_id, page = await logged(console, csrf, ticket, PrivacyRequestKind.CORRECT)
    assert f'<option value="{ticket.id}">{ticket.reference}</option>' in page
    assert other.reference not in page

    correction = f"/console/privacy/{request_id}/correction"
    page = await post_page(console, correction, csrf, 400, ticket=ticket.id, text="x")
    assert "Write the correction in" in page
    page = await post_page(console, correction, csrf, 400, ticket=other.id, text="It was Monday.")
    assert "was not understood" in page  # another customer's ticket
    assert (await container.tickets.get(other.id)).corrections == []

    where = await post(
        console, correction, csrf, ticket=ticket.id, text="It was Monday, not Tuesday."
    )
    assert where == f"/console/privacy/{request_id}?done=corrected"
    updated = await container.tickets.get(ticket.id)
    assert [c.text for c in updated.corrections] == ["It was Monday, not Tuesday."]
    assert updated.text == ticket.text  # the original words stay
    request = await stored(container, request_id)
    assert request.state is PrivacyRequestState.DONE
    assert request.detail["ticket"] == ticket.reference

    # A double click: the second submit waits for the first, then finds it answered.
    request_id, _ = await logged(console, csrf, ticket, PrivacyRequestKind.CORRECT)
    correction = f"/console/privacy/{request_id}/correction"
    # A browser sends a textarea's line breaks as CR LF: counted, and kept, as one.
    words = "It was Monday.\r\nAnd the box was open."
    both = await asyncio.gather(
        *(post(console, correction, csrf, ticket=ticket.id, text=words) for _ in range(2))
    )
    assert sorted(both) == [
        f"/console/privacy/{request_id}?done=corrected",
        f"/console/privacy/{request_id}?error=answered",
    ]
    updated = await container.tickets.get(ticket.id)
    assert [c.text for c in updated.corrections][1:] == ["It was Monday.\nAnd the box was open."]


async def test_c3_2_6_a_request_from_the_ticket_page_names_a_channel_the_panel_offers(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR)
    ticket = await file_ticket(container, "tg-user-255")  # a Telegram customer
    for channel in ("widget", "terminal", "$where"):
        where = await post(
            console,
            "/console/privacy/start",
            csrf,
            ticket=ticket.id,
            kind="withdraw",
            channel=channel,
        )
        assert where.endswith("?error=invalid"), where
    assert await container.repos.privacy_requests.recent() == []
    for channel in ("telegram", "phone", "email"):
        where = await post(
            console,
            "/console/privacy/start",
            csrf,
            ticket=ticket.id,
            kind="access",
            channel=channel,
        )
        found = REQUEST_PATH.match(where)
        assert found is not None, where
        await container.privacy.close_request(found.group(1))  # the next is not a duplicate


async def test_c3_2_6_staff_withdraw_a_consent_for_the_customer_and_it_takes_effect_at_once(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sup2")
    ticket = await file_ticket(container, "tg-user-254")
    assert ticket.expanded_use
    customer = await customer_of(container, ticket)
    request_id, page = await logged(console, csrf, ticket, PrivacyRequestKind.WITHDRAW)
    assert 'data-purpose="expanded_use"' in page
    assert 'data-purpose="licence"' not in page  # irrevocable here (BOT_LICENCE_REQUIRED)
    assert 'data-purpose="processing"' not in page  # that is an erasure

    withdraw = f"/console/privacy/{request_id}/withdraw"
    for purpose in ("processing", "licence", "$where"):
        assert await post(console, withdraw, csrf, purpose=purpose) == (
            f"/console/privacy/{request_id}?error=invalid"
        )
    assert (await container.repos.consents.current(customer.id))[
        ConsentPurpose.EXPANDED_USE
    ].granted

    where = await post(console, withdraw, csrf, purpose="expanded_use")
    assert where == f"/console/privacy/{request_id}?done=withdrawn"
    record = (await container.repos.consents.current(customer.id))[ConsentPurpose.EXPANDED_USE]
    assert not record.granted
    assert record.channel is Channel.PHONE  # as the customer asked: the ledger says how
    assert not (await container.tickets.get(ticket.id)).expanded_use  # at once (C3.1.7)
    request = await stored(container, request_id)
    assert request.state is PrivacyRequestState.DONE
    assert request.detail["purpose"] == "expanded_use"
    page = await get_page(console, where)
    assert "The consent is withdrawn and the request answered." in page
    assert "withdrew a consent for the customer" in page

    # Nothing left to withdraw: a new request says so and points to an erasure.
    request_id, page = await logged(console, csrf, ticket, PrivacyRequestKind.WITHDRAW)
    assert 'data-testid="privacy-withdraw-none"' in page
    assert 'data-testid="privacy-withdraw"' not in page


async def test_c3_2_6_a_post_without_the_csrf_token_changes_nothing(
    console: Client, container: Container
) -> None:
    await sign_in(console, container.repos, role=StaffRole.ADMIN, username="adm1")
    ticket = await file_ticket(container, "251")
    customer = await customer_of(container, ticket)
    erase = await container.privacy.log_request(
        customer, PrivacyRequestKind.ERASE, channel=Channel.PHONE, by="x"
    )
    export = await container.privacy.log_request(
        customer, PrivacyRequestKind.EXPORT, channel=Channel.PHONE, by="x"
    )
    correct = await container.privacy.log_request(
        customer, PrivacyRequestKind.CORRECT, channel=Channel.PHONE, by="x"
    )
    withdraw = await container.privacy.log_request(
        customer, PrivacyRequestKind.WITHDRAW, channel=Channel.PHONE, by="x"
    )
    refused = container.i18n.render(container.i18n.negotiate(None), Text(FORBIDDEN))
    for path, data in [
        ("/console/privacy", {"term": ticket.reference, "kind": "access", "channel": "phone"}),
        ("/console/privacy/start", {"ticket": ticket.id, "kind": "access", "channel": "phone"}),
        (f"/console/privacy/{export.id}/export", {}),
        (f"/console/privacy/{erase.id}/erase", {"confirm": ticket.reference}),
        (f"/console/privacy/{erase.id}/close", {"note": "done"}),
        (f"/console/privacy/{correct.id}/contact", {"email": "a@example.com", "phone": ""}),
        (f"/console/privacy/{correct.id}/correction", {"ticket": ticket.id, "text": "Other."}),
        (f"/console/privacy/{withdraw.id}/withdraw", {"purpose": "expanded_use"}),
    ]:
        for sent in (data, {**data, "csrf": "forged"}):
            response = await console.post(path, data=sent, allow_redirects=False)
            assert response.status == 403, path
            assert await response.text() == refused  # the guard's message, nothing else ran
    assert await container.repos.customers.get(customer.id) is not None
    opened = await container.repos.privacy_requests.open_requests()
    assert {r.id for r in opened} == {erase.id, export.id, correct.id, withdraw.id}
    assert (await container.tickets.get(ticket.id)).expanded_use


async def test_c3_2_6_hostile_input_is_stored_and_shown_as_inert_text(
    console: Client, container: Container
) -> None:
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="sup1")
    ticket = await file_ticket(container, "261")
    customer = await customer_of(container, ticket)

    for term in ('<script>alert("t")</script>', '{"$where": "sleep(1000) || true"}', "$where"):
        response = await console.post(
            "/console/privacy",
            data={"csrf": csrf, "term": term, "kind": "access", "channel": "phone", "$where": "1"},
            allow_redirects=False,
        )
        page = await response.text()
        assert response.status == 404, page[:500]
        assert "No customer matches that." in page
        assert "<script>alert" not in page
    assert await container.repos.privacy_requests.recent() == []
    bad = {"ticket": "x\r\nSet-Cookie: a=b", "kind": "$where", "channel": "phone"}
    where = await post(console, "/console/privacy/start", csrf, **bad)
    assert where.startswith("/console/tickets/x%0D%0ASet-Cookie")  # one header, inert
    assert where.endswith("?error=invalid")

    request = await container.privacy.log_request(
        customer, PrivacyRequestKind.CORRECT, channel=Channel.EMAIL, by="x"
    )
    close = f"/console/privacy/{request.id}/close"
    page = await post_page(console, close, csrf, 400, note="x" * 5000)
    assert "in at most 1000 characters" in page
    page = await post_page(console, close, csrf, 400, note="  ")
    assert "Write what was done" in page
    assert (await stored(container, request.id)).state is PrivacyRequestState.OPEN

    note = '<script>alert(1)</script> {"$where": "1"} $set.detail: changed the e-mail'
    where = await post(console, close, csrf, note=note, **{"$where": "1", "detail.x": "y"})
    assert where == f"/console/privacy/{request.id}?done=closed"
    answered = await stored(container, request.id)
    assert answered.state is PrivacyRequestState.DONE
    assert answered.detail["note"] == note  # as typed, a string, not an operator
    assert "$where" not in answered.detail
    assert "x" not in answered.detail
    page = await get_page(console, f"/console/privacy/{request.id}")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {&#34;$where&#34;: &#34;1&#34;}" in page
    assert " style=" not in page
    assert "<script>" not in page.replace('<script src="/console/live.js" defer>', "")
    again = await post(console, close, csrf, note="twice")
    assert again.endswith("?error=answered")
    assert "There is no such privacy request." in await get_page(
        console, "/console/privacy/nope", 404
    )


async def test_c3_2_6_the_privacy_pages_speak_the_staff_members_language(
    console: Client, container: Container
) -> None:
    await sign_in(
        console, container.repos, role=StaffRole.SUPERVISOR, username="wang", locale="zh_CN"
    )
    ticket = await file_ticket(container, "271")
    customer = await customer_of(container, ticket)
    request = await container.privacy.log_request(
        customer, PrivacyRequestKind.ERASE, channel=Channel.PHONE, by="x"
    )
    response = await console.get("/console/privacy")
    page = await response.text()
    assert response.headers["Content-Language"] == "zh-CN"
    assert "客户的个人信息请求" in page
    assert "删除其数据" in page
    page = await get_page(console, f"/console/privacy/{request.id}")
    assert "不可撤销" in page
    assert "请求：删除其数据" in page  # the trail: the view of this page, in words


async def test_c3_2_6_a_withdrawal_for_a_customer_being_erased_is_not_a_500(
    console: Client, container: Container
) -> None:
    """Staff answer a withdrawal just as the customer's erasure begins: the consent
    recorded is taken back, and the console said 500."""
    _, csrf = await sign_in(console, container.repos, role=StaffRole.SUPERVISOR, username="s9")
    ticket = await file_ticket(container, "tg-user-901")
    customer = await customer_of(container, ticket)
    request_id, _ = await logged(console, csrf, ticket, PrivacyRequestKind.WITHDRAW)
    await container.repos.customers.update_fields(
        customer.id, erasing_since=container.privacy.clock()
    )
    where = await post(
        console, f"/console/privacy/{request_id}/withdraw", csrf, purpose="expanded_use"
    )
    assert where.endswith("?error=no_customer")
    assert await container.repos.consents.history(customer.id) == []
