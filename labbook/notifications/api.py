"""JSON API of labbook.notifications (routes attach to ``labbook.api.bp``): the caller's
own notifications, and marking one read. Someone else's notification does not exist for
the caller (404)."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, optional_json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import PAGE_PROPS, Boolean, Schema, response_schema
from labbook.db import now_utc, run_with_retry
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.notifications import render, services
from labbook.notifications.kinds import KINDS
from labbook.notifications.models import Notification

TAGS = ("notifications",)

NOTIFICATION_QUERY = Schema("NotificationQuery", {
    "unread": Boolean(description="true: only unread ones; false: only read ones"),
    **PAGE_PROPS,
})
NOTIFICATION_READ = Schema("NotificationRead", {
    "read": Boolean(default=True, description="false marks it unread again"),
})
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
NOTIFICATION = component("Notification", response_schema({
    "id": {"type": "integer"},
    "kind": {"type": "string", "enum": list(KINDS)},
    "title": {"type": "string", "description": "in the caller's language"},
    "params": {"type": "object", "description": "the event's details, as recorded"},
    "booking_id": {"type": ["integer", "null"]},
    "url": {"type": ["string", "null"], "description": "the page it is about"},
    "created_at": {"type": "string", "format": "date-time"},
    "read_at": _NULL_TIME,
}))


def notification_to_dict(note: Notification) -> dict[str, Any]:
    path = render.link_path(note)
    return {
        "id": note.id,
        "kind": note.kind,
        "title": render.title(note),
        "params": dict(note.params or {}),
        "booking_id": note.reservation_id,
        "url": render.absolute(path) if path else None,
        "created_at": note.created_at.isoformat(),
        "read_at": note.read_at.isoformat() if note.read_at else None,
    }


@bp.get("/notifications")
@operation("Your notifications", tags=TAGS, query=NOTIFICATION_QUERY,
           response=page_of(NOTIFICATION), description=(
               "Newest first. Every notification is listed here whether or not it was also "
               "mailed (see the mail preferences page)."))
def list_notifications() -> Response:
    args = NOTIFICATION_QUERY.parse_query(request.args)
    stmt = services.notifications_for(current_user._get_current_object())
    if args.get("unread") is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif args.get("unread") is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    return jsonify(paginate(stmt, args["page"], args["per_page"], notification_to_dict))


@bp.post(f"/notifications/<{ID}:notification_id>/read")
@operation("Mark one of your notifications read", tags=TAGS, body=NOTIFICATION_READ,
           response=NOTIFICATION, errors=(404,), description=(
               "The body is optional (`{\"read\": false}` marks it unread again). Marking "
               "read twice keeps the first reading time. Another user's notification: 404."))
def read_notification(notification_id: int) -> Response:
    values = NOTIFICATION_READ.parse(optional_json_body())
    user_id = current_user.id

    def unit() -> dict[str, Any]:
        note = db.session.get(Notification, notification_id)
        if note is None or note.user_id != user_id:
            raise NotFound(_("No such notification."))
        return notification_to_dict(
            services.mark_read(note, now_utc(), read=values.get("read", True)))

    return jsonify(run_with_retry(unit))
