"""Every label the widget shows, and the widget's error messages: all from the catalogs."""

from __future__ import annotations

from bot.domain.text import N_, Text
from bot.i18n import I18n

UI = {
    "launcher": N_("Feedback"),
    "title": N_("Feedback and support"),
    "close": N_("Close"),
    "send": N_("Send"),
    "placeholder": N_("Type your message"),
    "attach": N_("Attach a photo or file"),
    "connecting": N_("Connecting…"),
    "online": N_("Connected"),
    "offline": N_("Offline. Your messages will be sent when the connection is back."),
    "start": N_("Give feedback"),
    "unread": N_("{count} unread"),
    "typing": N_("Our team is typing…"),
    "uploading": N_("Uploading…"),
    "upload_failed": N_("The file could not be uploaded."),
    "you": N_("You"),
    "team": N_("Our team"),
    "assistant": N_("Feedback assistant"),
    "language": N_("Language: 中文 / English"),
    "error": N_("Something went wrong. Please try again."),
    "privacy": N_("My data"),
    "download": N_("Download {name}"),
    "erased": N_("Your data was deleted. This chat starts afresh."),
}

# Outside a flow, what the widget offers (the chat bot's help names Telegram's commands).
HELP = N_(
    "I collect feedback about our products and services. Choose “Give feedback” or send "
    "/start to begin, /status to see how your feedback is going, and “My data” or /privacy to see, "
    "download, correct or delete your data. The language button at the top switches "
    "between 中文 and English."
)

ERRORS = {
    "bad_auth": N_("The chat could not start: the widget sent an invalid identity."),
    "bad_signature": N_(
        "The chat could not start: your sign-in could not be verified. Please reload the page."
    ),
    "rate_limited": N_("Too many requests. Please wait a moment and try again."),
    "invalid": N_("That request was not understood and nothing was changed."),
    "too_large": N_("That is too long: at most {limit} characters."),
    "unavailable": N_("We cannot save anything right now. Please try again in a minute."),
    "busy": N_("Many people are writing to us right now. Your message will be sent in a moment."),
    "unsupported_type": N_("This type of file cannot be attached. Photos and PDF files work."),
    "file_too_large": N_("That file is too large: at most {limit} MB."),
    "expired": N_("The upload took too long. Please try again."),
    "not_found": N_("That file was not found. Please attach it again."),
    "not_now": N_(
        "Files can be attached when the assistant asks for them, or once your feedback is sent."
    ),
    "too_many_files": N_("You have sent many files today. Please try again tomorrow."),
    "error": N_("Something went wrong. Please try again."),
}


def ui_strings(i18n: I18n, locale: str) -> dict[str, str]:
    # {count} and {name} stay placeholders: the widget fills them in.
    return {
        key: i18n.render(locale, Text(msgid, {"count": "{count}", "name": "{name}"}))
        for key, msgid in UI.items()
    }


def error(i18n: I18n, locale: str, code: str, **params: int | str) -> dict[str, str]:
    return {"code": code, "message": i18n.render(locale, Text(ERRORS[code], params))}
