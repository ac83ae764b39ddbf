"""Session user loading, security headers and login throttling."""
from __future__ import annotations

from flask import Flask, Response, g, request
from flask_babel import lazy_gettext as _l

from labbook.auth.throttle import init_throttle
from labbook.extensions import db, login_manager

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@login_manager.user_loader
def load_user(user_id: str):  # type: ignore[no-untyped-def]
    from labbook.auth.models import User

    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if g.get("_hsts"):
        response.headers.setdefault(
            "Strict-Transport-Security", "max-age=63072000; includeSubDomains"
        )
    if request.endpoint and not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_security(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    init_throttle(app)

    @app.before_request
    def _mark_hsts() -> None:
        g._hsts = bool(app.config.get("HSTS"))

    app.after_request(_security_headers)
    init_login_wall(app)


def public(view):  # type: ignore[no-untyped-def]
    """Mark a view as reachable without a session (login page, token-protected feeds)."""
    view._labbook_public = True
    return view


def init_login_wall(app: Flask) -> None:
    """Login is required everywhere by default: a new view is protected unless it is
    explicitly marked ``@public``. The JSON API authenticates with bearer tokens instead."""
    from flask_login import current_user

    @app.before_request
    def _require_login():  # type: ignore[no-untyped-def]
        endpoint = request.endpoint
        if endpoint is None or endpoint == "static" or request.blueprint == "api":
            return None
        view = app.view_functions.get(endpoint)
        if getattr(view, "_labbook_public", False) or current_user.is_authenticated:
            return None
        return login_manager.unauthorized()
