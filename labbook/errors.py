"""Typed errors raised by services, and the handlers that turn any error into an HTML page
or, under ``/api/``, the JSON body of SPEC section 8:
``{"error": {"code": ..., "message": ..., ...}}``.
"""
from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


class LabbookError(Exception):
    """Base of every expected refusal. ``status`` is its HTTP status, ``code`` the
    machine-readable code, ``extra`` further keys for the JSON body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class ValidationError(LabbookError):
    """Input that breaks a rule. ``fields`` maps field names to lists of messages."""

    status = 422
    code = "validation"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, fields=fields or {})
        self.fields = fields or {}


class Unauthorized(LabbookError):
    status = 401
    code = "unauthorized"


class Forbidden(LabbookError):
    status = 403
    code = "forbidden"


class NotFound(LabbookError):
    status = 404
    code = "not_found"


class Conflict(LabbookError):
    status = 409
    code = "conflict"


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="labbook"'
    return response


def _html_error(status: int, message: str) -> tuple[str, int]:
    return render_template("errors/error.html", status=status, message=message), status


def handle_labbook_error(error: LabbookError) -> Any:
    if wants_json():
        return json_error(error.status, error.code, error.message, **error.extra)
    return _html_error(error.status, error.message)


def handle_http_exception(error: HTTPException) -> Any:
    status = error.code or 500
    if wants_json():
        response = json_error(status, HTTP_CODES.get(status, "error"), error.description or "")
    else:
        body, _status = _html_error(status, error.description or "")
        response = Response(body, status=status, mimetype="text/html")
    for name, value in error.get_headers():
        if name.lower() == "allow":  # RFC 9110: a 405 names the allowed methods
            response.headers[name] = value
    return response


def handle_csrf_error(error: CSRFError) -> Any:
    message = _("The form has expired or was not sent from this site. Please try again.")
    if wants_json():
        return json_error(400, "csrf", message)
    return _html_error(400, message)


def handle_unexpected(error: Exception) -> Any:
    """Last resort: log the traceback server-side, show none of it to the client."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = _("Something went wrong on our side. The error has been logged.")
    if wants_json():
        return json_error(500, "internal", message)
    return _html_error(500, message)


RETRY_AFTER_SECONDS = 5


def database_unavailable(error: sa.exc.OperationalError) -> bool:
    """Is this the database being unreachable or too busy (try again), rather than a
    programming error? PostgreSQL: every OperationalError (connection refused or lost,
    too many clients, shutdown); SQLite: only a lock that outlasted the busy timeout."""
    if error.connection_invalidated:
        return True
    module = type(error.orig).__module__ if error.orig is not None else ""
    if module.startswith("psycopg"):
        return True
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text


def handle_operational_error(error: sa.exc.OperationalError) -> Any:
    """503 with ``Retry-After`` when the database cannot serve now; else a plain 500."""
    if not database_unavailable(error):
        return handle_unexpected(error)
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                type(error.orig).__name__)
    try:
        from labbook.extensions import db

        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; nothing to undo then
        pass
    message = _("The service is busy or its database is unreachable; please try again in a "
                "moment.")
    if wants_json():
        response = json_error(503, "unavailable", message)
    else:
        body, _status = _html_error(503, message)
        response = Response(body, status=503, mimetype="text/html")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(LabbookError, handle_labbook_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(sa.exc.OperationalError, handle_operational_error)
    app.register_error_handler(Exception, handle_unexpected)
