"""Jinja filters and globals: local times in a facility's zone, localized names."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from labbook.auth.forms import EmptyForm, LanguageForm


def zone_for(tz: str | None = None) -> ZoneInfo:
    return ZoneInfo(tz or current_app.config["LABBOOK_TIMEZONE"])


def localtime(value: datetime | None, tz: str | None = None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format an aware UTC datetime in ``tz`` (a facility's zone; default the centre's)."""
    if value is None:
        return ""
    local = value.astimezone(zone_for(tz))
    return f"{local.strftime(fmt)} {local.tzname()}"


def display_name(obj: object) -> str:
    """The localized name of a field, platform or facility."""
    locale = str(get_locale() or "en")
    method = getattr(obj, "display_name", None)
    return method(locale) if callable(method) else str(getattr(obj, "name", obj))


ROLE_LABELS = {
    "researcher": _l("Researcher"),
    "team_lead": _l("Team lead"),
    "facility_manager": _l("Facility manager"),
    "finance": _l("Finance"),
    "admin": _l("Administrator"),
}

STATUS_LABELS = {
    "available": _l("Available"),
    "limited": _l("Limited"),
    "down": _l("Down"),
    "retired": _l("Retired"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def init_templating(app: Flask) -> None:
    app.add_template_filter(localtime)
    app.add_template_filter(display_name)
    app.add_template_filter(role_label)
    app.add_template_filter(status_label)

    @app.context_processor
    def _globals() -> dict:
        return {
            "current_locale": str(get_locale() or "en"),
            "language_form": LanguageForm(formdata=None, next=request.full_path.rstrip("?")),
            "logout_form": EmptyForm(formdata=None),
        }
