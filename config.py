"""Configuration classes. Every setting that differs between machines comes from a
``LABBOOK_*`` environment variable (SPEC section 8); nothing secret is hard-coded for
production."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"LABBOOK_{name}")
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int_list(name: str, default: str) -> tuple[int, ...]:
    raw = _env(name, default) or default
    return tuple(int(part) for part in raw.split(",") if part.strip())


class Config:
    """Base settings shared by every environment."""

    SQLALCHEMY_DATABASE_URI = _env(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'labbook.sqlite3'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SECRET_KEY = _env("SECRET_KEY")
    LABBOOK_TIMEZONE = _env("TIMEZONE", "Asia/Shanghai")
    LABBOOK_BASE_URL = _env("BASE_URL", "http://127.0.0.1:5000")
    LABBOOK_CURRENCY = _env("CURRENCY", "CNY")
    LABBOOK_REDIS_URL = _env("REDIS_URL")
    LABBOOK_REMINDER_OFFSETS = _env_int_list("REMINDER_OFFSETS", "1440,60")
    LABBOOK_SMTP_HOST = _env("SMTP_HOST", "localhost")
    LABBOOK_SMTP_PORT = int(_env("SMTP_PORT", "25") or 25)
    LABBOOK_SMTP_USER = _env("SMTP_USER")
    LABBOOK_SMTP_PASSWORD = _env("SMTP_PASSWORD")
    LABBOOK_SMTP_SENDER = _env("SMTP_SENDER", "labbook@localhost")
    LABBOOK_SMTP_STARTTLS = _env_bool("SMTP_STARTTLS", False)
    # Login throttling: failures allowed per window, per account and per address.
    LABBOOK_LOGIN_MAX_FAILURES = int(_env("LOGIN_MAX_FAILURES", "5") or 5)
    LABBOOK_LOGIN_WINDOW_SECONDS = int(_env("LOGIN_WINDOW_SECONDS", "900") or 900)
    LABBOOK_PAGE_SIZE = 50
    # Booking engine
    LABBOOK_CHECKIN_EARLY_MINUTES = int(_env("CHECKIN_EARLY_MINUTES", "10") or 10)
    LABBOOK_WAITLIST_HOLD_MINUTES = int(_env("WAITLIST_HOLD_MINUTES", "30") or 30)

    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ("en", "zh_Hans")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SECURE_COOKIES", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = _env_bool("SECURE_COOKIES", False)
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    HSTS = False


class DevelopmentConfig(Config):
    """``make run``: SQLite in instance/, a per-checkout secret so sessions survive restarts."""

    DEBUG = False


class ProductionConfig(Config):
    """Behind a TLS-terminating proxy: secure cookies and HSTS; the secret key is mandatory."""

    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    HSTS = True


class TestConfig(Config):
    """The test suite. CSRF stays on: tests post the token like a browser does."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    SQLALCHEMY_DATABASE_URI = os.environ.get("LABBOOK_TEST_DATABASE_URL_ACTIVE", "sqlite://")
    SERVER_NAME = None
    LABBOOK_LOGIN_MAX_FAILURES = 5


def make_secret_key() -> str:
    return secrets.token_urlsafe(48)


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}
