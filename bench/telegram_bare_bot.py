"""A bare aiogram 3 bot: the baseline bench/telegram_inbound.py compares the service with,
as bench/echo_server.py is for the widget.

It makes the Bot API calls the service makes for the benchmark's dialogue and nothing
else: no database, no flow, no translations, no limits. A message is answered with one
`sendMessage` carrying an inline keyboard that offers every button the benchmark users
press; a button press with `answerCallbackQuery`, `editMessageReplyMarkup` (the old
buttons go) and that `sendMessage`. Polling is aiogram's own `start_polling`; the webhook
is aiogram's `SimpleRequestHandler`, answering once the update is handled, as the
service does.

    .venv/bin/python bench/telegram_bare_bot.py --api http://127.0.0.1:PORT --token T \
        --mode polling|webhook [--port P --secret S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from telegram_users import PRESS_FIRST_OF

# Every value a benchmark user presses, as the service's `o:<step>:<value>` buttons, and
# the service's back / cancel / help row.
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        *([InlineKeyboardButton(text=v, callback_data=f"o:step:{v}")] for v in PRESS_FIRST_OF),
        [
            InlineKeyboardButton(text=label, callback_data=f"c:{label}")
            for label in ("back", "cancel", "help")
        ],
    ]
)
ANSWER = "The next question, with its buttons."


async def on_message(message: Message, bot: Bot) -> None:
    await bot.send_message(message.chat.id, ANSWER, reply_markup=KEYBOARD)


async def on_button(callback: CallbackQuery, bot: Bot) -> None:
    with contextlib.suppress(TelegramBadRequest):
        await callback.answer()
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)
    await bot.send_message(callback.from_user.id, ANSWER, reply_markup=KEYBOARD)


def dispatcher() -> Dispatcher:
    dp = Dispatcher()
    dp.message.register(on_message)
    dp.callback_query.register(on_button, F.data)
    return dp


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main_async(args: argparse.Namespace) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.api))
    bot = Bot(args.token, session=session)
    dp = dispatcher()
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    if args.mode == "webhook":
        handler = SimpleRequestHandler(
            dp, bot, handle_in_background=False, secret_token=args.secret
        )
        handler.register(app, path="/telegram/webhook")
        await bot.set_webhook("https://bench.example.com/", secret_token=args.secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    try:
        if args.mode == "polling":
            await dp.start_polling(bot, polling_timeout=1, handle_signals=False)
        else:
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await bot.session.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", required=True, help="the (fake) Bot API's base URL")
    parser.add_argument("--token", required=True)
    parser.add_argument("--mode", choices=("polling", "webhook"), required=True)
    parser.add_argument("--port", type=int, required=True, help="for /healthz and the webhook")
    parser.add_argument("--secret", default=None, help="the webhook's secret token")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
