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
    # A TrueType CJK font to embed in statement PDFs ("" = first known one installed,
    # "builtin" = reportlab's non-embedded CID font); see labbook/billing/pdf.py.
    LABBOOK_PDF_FONT = _env("PDF_FONT", "")
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
    # Timed jobs (labbook/*/tasks.py)
    LABBOOK_AUTO_CHECKOUT_MARGIN_MINUTES = int(_env("AUTO_CHECKOUT_MARGIN_MINUTES", "30") or 30)
    LABBOOK_APPROVAL_NOTICE_HOURS = int(_env("APPROVAL_NOTICE_HOURS", "24") or 24)
    LABBOOK_QUALIFICATION_WARNING_DAYS = _env_int_list("QUALIFICATION_WARNING_DAYS", "30,7")
    LABBOOK_MAINTENANCE_HORIZON_DAYS = int(_env("MAINTENANCE_HORIZON_DAYS", "56") or 56)
    # The scheduler process (labbook/scheduler)
    LABBOOK_SCHEDULER_ELECTION_SECONDS = float(_env("SCHEDULER_ELECTION_SECONDS", "5") or 5)
    LABBOOK_SCHEDULER_MISFIRE_GRACE_SECONDS = int(
        _env("SCHEDULER_MISFIRE_GRACE_SECONDS", "300") or 300
    )
    LABBOOK_SCHEDULER_LOCK_FILE = _env("SCHEDULER_LOCK_FILE", str(INSTANCE_DIR / "scheduler.lock"))
    # "job_id=seconds,job_id=seconds": override job intervals (tests, small sites).
    LABBOOK_SCHEDULER_INTERVALS = _env("SCHEDULER_INTERVALS", "")
    # Mail outbox delivery
    LABBOOK_SMTP_TIMEOUT = float(_env("SMTP_TIMEOUT", "10") or 10)
    LABBOOK_OUTBOX_MAX_ATTEMPTS = int(_env("OUTBOX_MAX_ATTEMPTS", "8") or 8)
    LABBOOK_OUTBOX_BACKOFF_SECONDS = int(_env("OUTBOX_BACKOFF_SECONDS", "60") or 60)
    LABBOOK_OUTBOX_BATCH = int(_env("OUTBOX_BATCH", "50") or 50)
    # Calendar feeds
    LABBOOK_ICAL_HOST = _env("ICAL_HOST")
    LABBOOK_FEED_PAST_DAYS = int(_env("FEED_PAST_DAYS", "60") or 60)
    LABBOOK_FEED_FUTURE_DAYS = int(_env("FEED_FUTURE_DAYS", "365") or 365)
    LABBOOK_FEED_REFRESH_MINUTES = int(_env("FEED_REFRESH_MINUTES", "60") or 60)
    LABBOOK_FEED_CANCELLED_DAYS = int(_env("FEED_CANCELLED_DAYS", "30") or 30)
    LABBOOK_IMPORT_MAX_BYTES = int(_env("IMPORT_MAX_BYTES", str(2 * 1024 * 1024)) or 2097152)
    LABBOOK_IMPORT_TIMEOUT = float(_env("IMPORT_TIMEOUT", "10") or 10)
    # Billing journal export (labbook/billing/journal.py, docs/billing-exports.md): the
    # revenue account credited for a facility's charges, the tax-payable account, and
    # per-facility overrides of the revenue account as "FACILITY_CODE=ACCOUNT,...".
    LABBOOK_JOURNAL_REVENUE_ACCOUNT = _env("JOURNAL_REVENUE_ACCOUNT", "6001")
    LABBOOK_JOURNAL_TAX_ACCOUNT = _env("JOURNAL_TAX_ACCOUNT", "2221")
    LABBOOK_JOURNAL_FACILITY_ACCOUNTS = _env("JOURNAL_FACILITY_ACCOUNTS", "")

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
