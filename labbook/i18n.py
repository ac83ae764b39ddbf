"""Locale selection: the user's own choice, then the language switch cookie for
anonymous visitors, then the browser's Accept-Language."""
from __future__ import annotations

from flask import Flask, current_app, has_request_context, request
from flask_login import current_user

from labbook.extensions import babel

LANG_COOKIE = "labbook_lang"


def normalize_locale(value: str | None) -> str | None:
    if not value:
        return None
    value = value.replace("-", "_")
    if value.lower().startswith("zh"):
        return "zh_Hans"
    if value.lower().startswith("en"):
        return "en"
    return None


def select_locale() -> str:
    if not has_request_context():  # CLI, scheduler: messages in the default locale
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated:
        return current_user.locale
    chosen = normalize_locale(request.cookies.get(LANG_COOKIE))
    if chosen:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"])
    return normalize_locale(best) or current_app.config["BABEL_DEFAULT_LOCALE"]


def init_babel(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
