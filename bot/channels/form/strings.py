"""Every string the form and the channels page show that the dialogue does not already have.

Marked with `N_` for extraction; the pages render them in the visitor's locale. Texts the
dialogue already shows (the privacy notice, the consent questions, the category and rating
labels, the validation messages) are taken from `bot.domain.flow`, so both say the same.
"""

from __future__ import annotations

from bot.domain.text import N_, NP_

# ---------------------------------------------------------------- every page

LANGUAGE = N_("Language")
ERROR_TITLE = N_("Error: {title}")
CHANNELS_LINK = N_("All the ways to reach us")
POLICY_LINK = N_("Privacy policy")
POLICY_TITLE = N_("Privacy policy, version {version}")
POLICY_INTRO = N_(
    "This is how we handle your information when you give us feedback, in any of our "
    "channels. Every channel shows you the same notice, and asks for your agreement, before "
    "it keeps anything about you."
)
POLICY_RIGHTS = N_(
    "How to use your rights: in Telegram, send /privacy to our bot; in the chat in our app "
    "or on our website, choose “My data”. There you can see your data, download a copy, "
    "correct it, withdraw a consent or have it deleted, and it is done at once. If you gave "
    "feedback through the online form, by phone or by e-mail, write to us or call us with "
    "your reference number: we answer within {days} days. Every request is recorded."
)

# ---------------------------------------------------------------- the form

FORM_TITLE = N_("Give us your feedback")
FORM_INTRO = N_(
    "Tell us about our products and services. This form asks the same questions as our "
    "chat assistant. It takes about two minutes. Questions marked “required” must be "
    "answered; everything else is up to you."
)
REQUIRED = N_("(required)")
OPTIONAL = N_("(optional)")
NOTICE_LEGEND = N_("Privacy notice")
NOTICE_AGREE = N_(
    "I have read the privacy notice and agree to you processing my information for this purpose."
)
NOTICE_DECLINE_HINT = N_(
    "If you do not agree, choose “I do not agree” at the end of the form. "
    "Nothing you typed will be kept."
)
EXPANDED_LEGEND = N_("Wider use of your feedback")
EXPANDED_AGREE = N_(
    "Yes, you may also use my feedback for market analysis and to improve your products."
)
LICENCE_LEGEND = N_("Licence for your feedback")
LICENCE_AGREE = N_("I accept this licence.")
TEXT_LABEL = N_("Your feedback")
OWN_WORK = N_("This text is my own work (I keep its copyright).")
CONTACT_LABEL = N_("E-mail address or phone number")
CONTACT_HINT = N_(
    "Give these only if you want us to contact you; leave the field empty otherwise. "
    "Without them we cannot reply to you directly, so keep the reference number you get "
    "and quote it when you contact us."
)
SUBMIT = N_("Send my feedback")
DECLINE = N_("I do not agree: leave without sending anything")

# ---------------------------------------------------------------- form errors

ERRORS_SUMMARY = N_("Please correct the following and send the form again:")
ERR_NOTICE = N_(
    "Please tick this box to agree to the privacy notice, or choose “I do not agree” at "
    "the end of the form."
)
ERR_LICENCE = N_(
    "We can only accept feedback under this licence. Please tick the box to accept it."
)
ERR_CATEGORY = N_("Please choose what your feedback is about.")
ERR_CONTACT = N_(
    "That does not look like an e-mail address or a phone number. "
    "Please correct it, or leave the field empty."
)
ERR_FORM = N_(
    "Parts of what was sent do not belong to this form, so nothing was saved. "
    "Please check your answers and send the form again."
)
ERR_STALE = N_(
    "Our privacy notice has changed since this form was opened. Please read it again "
    "and tick the boxes again if you agree."
)
ERR_UNREADABLE = N_(
    "The form could not be read (it was not sent as UTF-8 text), so nothing was saved. "
    "Please fill it in again."
)
ERR_TOO_LARGE = N_(
    "The form was too large to accept (at most {size} KB), so nothing was saved. "
    "Please fill it in again with a shorter text."
)
ERR_MEDIA_TYPE = N_("Please send your feedback with the form on this page.")
ERR_TOO_MANY = N_(
    "Too many forms were sent from your network in a short time. Please try again later."
)
ERR_BUSY = N_("We are busy saving this form. Please wait a moment and send it again.")
ERR_PAGE_UNAVAILABLE = N_(
    "This page is not available right now. Please try again in a few minutes."
)
ERR_UNAVAILABLE = N_(
    "We cannot save your feedback right now, and nothing was saved. Please try again in a "
    "few minutes."
)

# ---------------------------------------------------------------- after sending

DONE_TITLE = N_("Thank you for your feedback")
DONE_REFERENCE = N_("We have received your feedback. Your reference number is {reference}.")
DONE_DUE = NP_(
    "We will give you our first response by {due} ({days} working day).",
    "We will give you our first response by {due} ({days} working days).",
    by="days",
)
DONE_NEXT_TITLE = N_("What happens next")
DONE_NEXT = N_(
    "Our customer-service team reads every piece of feedback. If you gave us an e-mail "
    "address or a phone number, we will contact you there. Otherwise, keep this reference "
    "number and quote it whenever you contact us through any of our channels, to ask how "
    "your feedback is going or to add something to it."
)
DONE_AGAIN = N_("Give more feedback")
NOT_FOUND_TITLE = N_("Page not found")
NOT_FOUND = N_(
    "This link is incomplete or not valid. If you sent feedback, your reference number is "
    "in the confirmation you saw after sending it."
)
DECLINED_TITLE = N_("Nothing was sent")
DECLINED = N_(
    "Understood. Without your agreement we cannot take your feedback, and we have kept "
    "nothing about you. You are welcome to come back at any time."
)
BACK_TO_FORM = N_("Back to the feedback form")

# ---------------------------------------------------------------- the channels page

CHANNELS_TITLE = N_("How to give us feedback")
CHANNELS_INTRO = N_(
    "You can reach us in any of these ways. Each of them files your feedback in the same "
    "place, gives you a reference number at once, and tells you when to expect our first "
    "response."
)
WIDGET_TITLE = N_("In our app and on our website")
WIDGET_TEXT = N_(
    "Choose the Feedback button in our app or on our website to chat with our feedback assistant."
)
WIDGET_EMBED = N_(
    "For website owners: to add the chat to a web page, paste this code before the page's "
    "closing body tag."
)
TELEGRAM_TITLE = N_("Telegram bot")
TELEGRAM_TEXT = N_("Chat with our feedback bot in Telegram:")
TELEGRAM_UNAVAILABLE = N_("Our Telegram bot is not available at the moment.")
FORM_CHANNEL_TITLE = N_("Online form")
FORM_CHANNEL_TEXT = N_("Fill in our online form. It works in any browser, without JavaScript:")
