"""The JSON API under ``/api/v1``.

Every request needs ``Authorization: Bearer <token>``; session cookies are ignored here, so
the API is exempt from CSRF without opening a cross-site hole. Errors use the body of SPEC
section 8, produced by ``labbook.errors``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request
from flask_babel import gettext as _

from labbook.errors import LabbookError, Unauthorized, ValidationError
from labbook.extensions import csrf

bp = Blueprint("api", __name__)
csrf.exempt(bp)


class UnsupportedMediaType(LabbookError):
    status = 415
    code = "unsupported_media_type"


class BadRequest(LabbookError):
    status = 400
    code = "bad_request"


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token to a user; anything else is a 401.

    :raises Unauthorized: without a valid, unrevoked token of an active user.
    """
    from labbook.auth.services import user_for_token

    scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
    user = user_for_token(secret.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Unauthorized(_("A valid API token is required (Authorization: Bearer <token>)."))
    g._login_user = user  # Flask-Login's current_user for this request only


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    :raises UnsupportedMediaType: when the body is not declared as JSON.
    :raises BadRequest: when it is not parseable JSON.
    :raises ValidationError: when it is JSON but not an object.
    """
    if not request.is_json:
        raise UnsupportedMediaType(_("Send a JSON body with Content-Type: application/json."))
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest(_("The body is not valid JSON."))
    if not isinstance(data, dict):
        raise ValidationError(_("The body must be a JSON object."))
    return data


def load_routes() -> None:
    """Import the modules whose routes attach to ``bp`` (before it is registered)."""
    from labbook.api import openapi  # noqa: F401
    from labbook.instruments import api as instruments_api  # noqa: F401
    from labbook.teams import api as teams_api  # noqa: F401
