"""Every string the staff console shows, marked for extraction into the Babel catalogs.

Pages render them in the signed-in staff member's own locale (Staff.locale). The
customer's words are never among them: those are shown as text, untranslated.
"""

from __future__ import annotations

from bot.domain.models import (
    Channel,
    ConsentPurpose,
    DeliveryState,
    PrivacyRequestKind,
    StaffRole,
)
from bot.domain.models import TicketStatus as S
from bot.domain.text import N_, NP_, Plural
from bot.domain.tickets import SlaKind

# ---------------------------------------------------------------- every page

CONSOLE = N_("Staff console")
NAV_LABEL = N_("Console sections")
NAV_QUEUE = N_("Queue")
NAV_INTAKE = N_("Log feedback")
NAV_CANNED = N_("Canned replies")
NAV_ANALYTICS = N_("Analytics")
NAV_AUDIT = N_("Audit log")
SIGNED_IN_AS = N_("Signed in as {name} ({role})")
SIGN_OUT = N_("Sign out")
LIVE_OFFLINE = N_("Live updates are paused; reload the page to see the latest.")
UNAVAILABLE = N_("The database is unavailable. Please try again in a moment.")
NOT_FOUND = N_("There is no such ticket.")
NOT_FOUND_TITLE = N_("Not found")
ANY = N_("Any")
NOT_GIVEN = N_("not given")
SAVE = N_("Save")
DELETE = N_("Delete")
FILTER = N_("Filter")
CLEAR = N_("Clear")
PREVIOUS = N_("Previous")
NEXT = N_("Next")
PAGE_OF = N_("Page {page} of {pages}")

ROLES = {
    StaffRole.AGENT: N_("agent"),
    StaffRole.SUPERVISOR: N_("supervisor"),
    StaffRole.ADMIN: N_("administrator"),
}

# The staff's names for statuses (the customer is told bot.domain.tickets.STATUS_LABELS).
STATUSES = {
    S.RECEIVED: N_("Received"),
    S.ACKNOWLEDGED: N_("Acknowledged"),
    S.IN_PROGRESS: N_("In progress"),
    S.WAITING_FOR_CUSTOMER: N_("Waiting for the customer"),
    S.RESOLVED: N_("Resolved"),
    S.ADOPTED: N_("Adopted"),
    S.DECLINED: N_("Declined"),
    S.CLOSED: N_("Closed"),
}

CHANNELS = {
    Channel.TELEGRAM: N_("Telegram"),
    Channel.WIDGET: N_("In-app widget"),
    Channel.FORM: N_("Online form"),
    Channel.PHONE: N_("Phone"),
    Channel.EMAIL: N_("E-mail"),
    Channel.TERMINAL: N_("Terminal (development)"),
}

SLA: dict[SlaKind, str | Plural] = {
    SlaKind.OVERDUE: N_("Overdue"),
    SlaKind.DUE_TODAY: N_("Due today"),
    SlaKind.UPCOMING: NP_("Due in {days} working day", "Due in {days} working days", by="days"),
    SlaKind.MET: N_("Responded"),
    SlaKind.CLOSED: N_("No response needed"),
}

# ---------------------------------------------------------------- the queue

QUEUE_TITLE = N_("Ticket queue")
STATUS = N_("Status")
STATUS_OPEN = N_("Open")
STATUS_ALL = N_("All")
CATEGORY = N_("Category")
CHANNEL = N_("Channel")
ASSIGNEE = N_("Assigned to")
ASSIGNEE_ME = N_("Me")
ASSIGNEE_NONE = N_("Nobody")
DEADLINE = N_("Deadline")
DEADLINE_OVERDUE = N_("Overdue")
DEADLINE_TODAY = N_("Due today")
DEADLINE_BOTH = N_("Overdue or due today")
SEARCH = N_("Search")
SEARCH_HINT = N_("Reference, words of the feedback, e-mail or phone")
REFERENCE = N_("Reference")
RATING = N_("Rating")
DUE = N_("First response due")
COUNT = NP_("{count} ticket", "{count} tickets")
EMPTY_QUEUE = N_("No tickets match these filters.")
COMPLEX_BADGE = N_("complex")

# ---------------------------------------------------------------- the ticket page

TICKET_TITLE = N_("Ticket {reference}")
BACK_TO_QUEUE = N_("Back to the queue")
FEEDBACK = N_("Feedback")
RATING_VALUE = N_("{rating} of 5")
FILED_AT = N_("Filed")
TEXT_OWN_WORK = N_("The customer marked this text as their own work.")
TIMELINE = N_("Timeline")
CUSTOMER_PANEL = N_("Customer")
LANGUAGE = N_("Language")
CONTACT_NAME = N_("Name")
CONTACT_EMAIL = N_("E-mail")
CONTACT_PHONE = N_("Phone")
CONSENTS = N_("Consents")
CONSENT_GRANTED = N_("given")
CONSENT_REFUSED = N_("refused or withdrawn")
CONSENT_LINE = N_("{purpose}: {state} (notice version {version}, {at})")
NO_CONSENTS = N_("No consent recorded.")
NO_CONSENTS_LOGGED = N_(
    "No consent recorded: staff logged this feedback on the customer's behalf. "
    "Use it only to handle this feedback."
)
EXPANDED_USE_IN_FORCE = N_("Expanded use allowed when filed")
EXPANDED_USE_NOT = N_("Use only to handle this feedback")
CONSENT_PURPOSES = {
    ConsentPurpose.PROCESSING: N_("Processing the feedback"),
    ConsentPurpose.EXPANDED_USE: N_("Expanded use (analysis, product improvement)"),
    ConsentPurpose.LICENCE: N_("Feedback licence"),
}
ATTACHMENTS = N_("Attachments")
NO_ATTACHMENTS = N_("None")
OWN_WORK = N_("own work")
ATTACHMENT_UNNAMED = N_("file without a name")

ACTOR_CUSTOMER = N_("Customer")
ACTOR_BOT = N_("Bot")
ACTOR_SYSTEM = N_("System")
ACTOR_STAFF = N_("Staff: {name}")
EVENT_CREATED = N_("Feedback filed")
EVENT_LOGGED = N_("{name} logged this feedback, received by {channel}")
EVENT_STATUS = N_("{name}: status {from_status} → {to_status}")
EVENT_STATUS_MESSAGE = N_("Message to the customer: {message}")
EVENT_COMPLEX_ON = N_("{name} marked the ticket complex")
EVENT_COMPLEX_OFF = N_("{name} marked the ticket not complex")
EVENT_ASSIGNED = N_("{name} assigned the ticket to {assignee}")
EVENT_UNASSIGNED = N_("{name} took the ticket off everyone's list")
EVENT_NOTE = N_("Internal note by {name}")
EVENT_REPLY = N_("{name} gave the first response")
EVENT_TOPIC = N_("Staff topic opened in Telegram")
EVENT_CORRECTED = N_("The customer added a correction to their feedback")
TEXT_CORRECTED = N_("Original words, since corrected by the customer (see below)")
CORRECTION_AT = N_("Correction by the customer, {when}")
ANONYMIZED = N_(
    "Personal data erased on {date} (the customer's request or the retention period): "
    "only the anonymous figures remain."
)
EVENT_OTHER = N_("{name}: {kind}")

DELIVERY = {
    DeliveryState.PENDING: N_("waiting to be delivered"),
    DeliveryState.SENT: N_("delivered"),
    DeliveryState.UNDELIVERABLE: N_("undeliverable"),
    DeliveryState.NOT_APPLICABLE: N_("received"),
}
DELIVERY_ERROR = N_("Last error: {error}")
DELIVERY_ATTEMPTS = N_("Attempts: {attempts}")

REPLY = N_("Reply to the customer")
REPLY_HINT = N_("Sent on the customer's channel ({channel}), now or when they come back.")
REPLY_SEND = N_("Send reply")
CANNED_PICK = N_("Start from a canned reply")
CANNED_USE = N_("Use")
CANNED_NONE_FOR_LOCALE = N_("No canned replies in this customer's language yet.")
NOTE = N_("Internal note")
NOTE_HINT = N_("Only staff see notes; the customer never does.")
NOTE_ADD = N_("Add note")
STATUS_CHANGE = N_("Change the status")
STATUS_NEW = N_("New status")
STATUS_MESSAGE = N_(
    "Message to the customer (required when declining: say why; optional otherwise)"
)
STATUS_APPLY = N_("Change status")
COMPLEX = N_("Complexity")
COMPLEX_IS = N_("Complex: first response within {days} working days.")
COMPLEX_IS_NOT = N_("Not complex: first response within {days} working days.")
COMPLEX_SET = N_("Mark complex")
COMPLEX_UNSET = N_("Mark not complex")
ASSIGNMENT = N_("Assignment")
ASSIGNED_TO = N_("Assigned to {name}.")
ASSIGNED_NOBODY = N_("Not assigned to anyone.")
ASSIGN_ME = N_("Assign to me")
ASSIGN_NOBODY = N_("Unassign")
ASSIGN_USERNAME = N_("User name of a colleague")
ASSIGN = N_("Assign")

DONE = {
    "reply": N_("Reply queued: the customer gets it on their own channel."),
    "status": N_("Status changed; the customer is being told."),
    "note": N_("Note added."),
    "assigned": N_("Assignment changed."),
    "complex": N_("Complexity changed; the due date is updated."),
}
ERRORS = {
    "transition": N_("That status change is not possible from the ticket's current status."),
    "conflict": N_("Someone changed this ticket at the same moment. Check it and try again."),
    "busy": N_("The ticket is busy. Please try again in a moment."),
    "empty": N_("Please write something first."),
    "too_long": N_("The text is too long."),
    "no_such_staff": N_("No active staff member has that user name."),
    "invalid": N_("That request was not understood. Reload the page and try again."),
    "reason_needed": N_("Declining feedback needs a message to the customer that says why."),
}

# ---------------------------------------------------------------- manual intake (C2.2)

INTAKE_TITLE = N_("Log feedback received by phone or e-mail")
INTAKE_INTRO = N_(
    "For feedback a customer gave by phone or e-mail. The ticket records the channel "
    "and that you logged it. No consent is recorded, so it is used only to handle this "
    "feedback. Replies cannot be sent automatically: call or write back yourself."
)
INTAKE_CHANNEL = N_("Received by")
INTAKE_CONTACT = N_("The customer's phone number or e-mail address (optional)")
INTAKE_LOCALE = N_("The customer's language")
INTAKE_TEXT = N_("What the customer said")
INTAKE_OWN_WORK = N_("The customer says this text is their own work")
INTAKE_SUBMIT = N_("Log feedback")
INTAKE_DONE = N_(
    "Logged as {reference}. Tell the customer this reference number; "
    "the first response is due by {due}."
)
INTAKE_ERRORS = {
    "channel": N_("Choose how the feedback was received."),
    "category": N_("Choose a category."),
    "rating": N_("Choose a rating from 1 to 5."),
    "text": N_("Write down what the customer said ({min} to {max} characters)."),
    "contact": N_("That does not look like a phone number or an e-mail address."),
    "locale": N_("Choose the customer's language."),
    "erasing": N_(
        "This customer's data is being erased at this moment, so nothing was recorded. "
        "Try again in a few minutes: they will then be a new customer."
    ),
}
INTAKE_FIELDS = ("channel", "category", "rating", "text", "contact", "locale")

# ---------------------------------------------------------------- canned replies

CANNED_TITLE = N_("Canned replies")
CANNED_INTRO = N_(
    "Ready answers agents can start a reply from. Each is in one language; a ticket "
    "offers those in its customer's language."
)
CANNED_ADD = N_("Add a canned reply")
CANNED_TITLE_FIELD = N_("Title")
CANNED_TEXT_FIELD = N_("Text")
CANNED_EMPTY = N_("No canned replies yet.")
CANNED_SAVED = N_("Saved.")
CANNED_DELETED = N_("Deleted.")
CANNED_INVALID = N_("Give a title (at most 80 characters), a language and a text.")

# ---------------------------------------------------------------- the audit log (C3.1.4)

AUDIT_TITLE = N_("Audit log")
AUDIT_INTRO = N_("Every view of a customer's personal data and every export by staff.")
AUDIT_WHEN = N_("When")
AUDIT_WHO = N_("Who")
AUDIT_ACTION = N_("Action")
AUDIT_TARGET = N_("Target")
AUDIT_DETAIL = N_("Details")
AUDIT_ACTOR_FILTER = N_("User name")
AUDIT_TARGET_FILTER = N_("Target id (ticket or customer)")
AUDIT_EMPTY = N_("No entries match.")
AUDIT_SHOWN = NP_(
    "{count} matching entry, the latest first.", "{count} matching entries, the latest first."
)

# ---------------------------------------------------------------- privacy requests (C3.2.6)

NAV_PRIVACY = N_("Privacy requests")
PRIVACY_TITLE = N_("Customers' privacy requests")
PRIVACY_INTRO = N_(
    "Requests to see, export, correct or delete their data, or to withdraw a consent. "
    "Each must be answered within {days} days of being made."
)
PRIVACY_KINDS = {
    PrivacyRequestKind.ACCESS: N_("See their data"),
    PrivacyRequestKind.EXPORT: N_("Export their data"),
    PrivacyRequestKind.CORRECT: N_("Correct their data"),
    PrivacyRequestKind.ERASE: N_("Delete their data"),
    PrivacyRequestKind.WITHDRAW: N_("Withdraw a consent"),
}
PRIVACY_OPEN = N_("Open requests")
PRIVACY_OPEN_EMPTY = N_("No open requests.")
PRIVACY_ANSWERED = N_("Recently answered")
PRIVACY_ANSWERED_EMPTY = N_("No request has been answered yet.")
PRIVACY_KIND = N_("Request")
PRIVACY_RECEIVED_BY = N_("Received by")
PRIVACY_OPENED = N_("Made")
PRIVACY_DUE = N_("Answer due")
PRIVACY_DONE_AT = N_("Answered")
PRIVACY_LOGGED_BY = N_("Logged by")
PRIVACY_BY_CUSTOMER = N_("The customer (self-service)")
PRIVACY_DETAILS = N_("Details and audit trail")
PRIVACY_DUE_IN = NP_("Due in {days} day", "Due in {days} days", by="days")
PRIVACY_ON_TIME = N_("Answered on time")
PRIVACY_LATE = N_("Answered late")
PRIVACY_LOG = N_("Log a request received by phone or e-mail")
PRIVACY_LOG_HINT = N_(
    "Find the customer by one of their ticket references, their e-mail address, their "
    "phone number or their customer id. The request is then open, with its due date."
)
PRIVACY_TERM = N_("Ticket reference, e-mail, phone or customer id")
PRIVACY_LOG_SUBMIT = N_("Log the request")
PRIVACY_LOG_INVALID = N_(
    "Give what identifies the customer (at most {max} characters), the request and how it "
    "was received."
)
PRIVACY_NO_MATCH = N_(
    "No customer matches that. Check it with the customer, or ask for one of their ticket "
    "references."
)
PRIVACY_SEVERAL = N_(
    "{count} customers match that. Ask the customer for one of their ticket references and "
    "look them up by it."
)
PRIVACY_NO_TICKETS = N_("no tickets")
PRIVACY_REQUEST_TITLE = N_("Privacy request: {kind}")
PRIVACY_BACK = N_("Back to the privacy requests")
PRIVACY_STATE = N_("State")
PRIVACY_STATE_OPEN = N_("Open")
PRIVACY_STATE_DONE = N_("Answered")
PRIVACY_NOTE = N_("What was done")
PRIVACY_RECORD = N_("Recorded")
PRIVACY_CUSTOMER_TICKETS = N_("Their tickets")
PRIVACY_CUSTOMER_GONE = N_("The customer's data has been erased; nothing leads back to them.")
PRIVACY_ANSWER = N_("Answer the request")
PRIVACY_EXPORT_HINT = N_(
    "Downloads everything held about this customer as a JSON file. Making the file "
    "answers the request; send it to the customer by a safe route."
)
PRIVACY_EXPORT_BUTTON = N_("Download the customer's data (JSON)")
PRIVACY_ERASE_WARNING = N_(
    "This erases the customer's personal data everywhere: contact details, identities, "
    "texts, messages and attachments. Their tickets keep only category, rating, dates and "
    "status for statistics. It cannot be undone."
)
PRIVACY_CONFIRM = N_("To confirm, type {word}")
PRIVACY_ERASE_BUTTON = N_("Erase the customer's data")
PRIVACY_CONFIRM_WRONG = N_("That is not what the page asked you to type. Nothing was erased.")
PRIVACY_CLOSE_HINT = N_(
    "Or say what was done (for example: the data read out on the phone, or why nothing "
    "was changed). Plain text; the customer's data itself does not belong here."
)
PRIVACY_CLOSE_BUTTON = N_("Mark answered")
PRIVACY_NOTE_INVALID = N_("Write what was done, in at most {max} characters.")
PRIVACY_TRAIL = N_("Audit trail")
PRIVACY_TRAIL_EMPTY = N_("Nothing recorded yet.")
PRIVACY_TRAIL_ALL = N_("This request in the audit log")
PRIVACY_NOT_FOUND = N_("There is no such privacy request.")
PRIVACY_ACTIONS = {
    "privacy.lookup": N_("looked up a customer"),
    "privacy.log": N_("logged the request"),
    "privacy.view": N_("viewed the request"),
    "privacy.export": N_("exported the customer's data"),
    "privacy.erase": N_("erased the customer's data"),
    "privacy.correct": N_("corrected the customer's data"),
    "privacy.withdraw": N_("withdrew a consent for the customer"),
    "privacy.close": N_("marked the request answered"),
}
# Changes made for the customer on the request's page (a correction, a withdrawal).
PRIVACY_CONTACT_TITLE = N_("Correct the contact details")
PRIVACY_CONTACT_HINT = N_(
    "Enter the details as the customer gave them; leave both empty to remove them. "
    "Saving answers the request."
)
PRIVACY_CONTACT_BUTTON = N_("Save the contact details")
PRIVACY_CONTACT_INVALID = N_(
    "Enter an e-mail address and a phone number as written (a phone number has 7 to 15 "
    "digits), or leave a field empty."
)
PRIVACY_CORRECTION_TITLE = N_("Add a correction to their feedback")
PRIVACY_CORRECTION_HINT = N_(
    "The original words stay, marked as corrected, with the correction below them. "
    "Adding it answers the request."
)
PRIVACY_CORRECTION_TICKET = N_("Feedback")
PRIVACY_CORRECTION_TEXT = N_("The customer's correction")
PRIVACY_CORRECTION_BUTTON = N_("Add the correction")
PRIVACY_CORRECTION_NONE = N_("None of this customer's feedback can still be corrected.")
PRIVACY_CORRECTION_INVALID = N_("Write the correction in {min} to {max} characters.")
PRIVACY_WITHDRAW_TITLE = N_("Withdraw a consent")
PRIVACY_WITHDRAW_HINT = N_(
    "The withdrawal takes effect at once and answers the request. Tell the customer it is done."
)
PRIVACY_WITHDRAW_BUTTON = N_("Withdraw: {purpose}")
PRIVACY_WITHDRAW_NONE = N_(
    "No consent that can be withdrawn is in force. Withdrawing the consent to processing "
    "means deleting the data: log a request to delete it."
)
# Recorded in the consent ledger (as its hash) for a withdrawal made by staff: what staff
# confirm to the customer.
PRIVACY_WITHDRAW_SHOWN = N_(
    "At your request, your consent has been withdrawn: {purpose}. It takes effect at once."
)
# The audit log's actions and what they were done to, in words; an action or a target
# this version does not know is shown as recorded.
AUDIT_ACTIONS = {
    "ticket.view": N_("viewed a ticket"),
    "customer.view": N_("viewed a customer's details"),
    "tickets.search": N_("searched the tickets"),
    **PRIVACY_ACTIONS,
}
AUDIT_TARGETS = {
    "ticket": N_("ticket {id}"),
    "customer": N_("customer {id}"),
    "privacy_request": N_("privacy request {id}"),
    "tickets": N_("the ticket queue"),
    "customers": N_("the customers"),
}
# What a privacy request or an audit entry records (bot.services.privacy: counts erased,
# the field corrected; never personal), in words; `value` is the recorded value.
RECORD_DETAILS = {
    "answered_by_erasure": N_("answered by the erasure request {value}"),
    "audit": N_("audit entries made anonymous: {value}"),
    "consents": N_("consent records deleted: {value}"),
    "conversations": N_("dialogues deleted: {value}"),
    "customer": N_("customer: {value}"),
    "customers": N_("customer records deleted: {value}"),
    "field": N_("corrected: {value}"),
    "kind": N_("request: {value}"),
    "messages": N_("messages deleted: {value}"),
    "purpose": N_("consent: {value}"),
    "reason": N_("reason: {value}"),
    "results": N_("results: {value}"),
    "ticket": N_("ticket: {value}"),
    "tickets": N_("tickets made anonymous: {value}"),
    "upload_tokens": N_("upload links deleted: {value}"),
    "uploads": N_("files deleted: {value}"),
}
RECORD_VALUES: dict[str, dict[str, str]] = {
    "field": {"contact": N_("contact details")},
    "kind": {kind.value: label for kind, label in PRIVACY_KINDS.items()},
    "purpose": {purpose.value: label for purpose, label in CONSENT_PURPOSES.items()},
    "reason": {"retention": N_("the retention period ended")},
}
PRIVACY_DONE = {
    "logged": N_("Request logged. It is due on the date shown."),
    "exists": N_("This customer already has an open request of this kind: here it is."),
    "erased": N_("The customer's data has been erased and the request answered."),
    "closed": N_("The request is marked answered."),
    "corrected": N_("The correction is made and the request answered."),
    "withdrawn": N_("The consent is withdrawn and the request answered."),
}
PRIVACY_ERRORS = {
    "answered": N_("This request has already been answered."),
    "no_customer": N_("The customer's data is no longer held; mark the request answered."),
    "invalid": N_("That request was not understood. Reload the page and try again."),
}
PRIVACY_PANEL = N_("Privacy requests")
PRIVACY_PANEL_NONE = N_("No open privacy request.")
PRIVACY_PANEL_AGENT = N_("A supervisor answers these.")
PRIVACY_START_CHANNEL = N_("The customer asked by")
PRIVACY_START_EXPORT = N_("Export this customer's data")
PRIVACY_START_ERASE = N_("Start erasing this customer's data")
