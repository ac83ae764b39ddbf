"""Pages of labbook.notifications: the user's notification list (mark read), the mail
preferences, and for admins the mail outbox (counts, pending and failed messages, retry).

Views load (404 for another user's notification), authorize, make one service call, commit
and redirect; CSRFProtect checks every POST before they run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from labbook.auth.forms import EmptyForm
from labbook.auth.guards import get_or_404, require_role
from labbook.auth.models import Role
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.notifications import bp, render, services
from labbook.notifications.forms import preferences_form
from labbook.notifications.models import Notification, OutboxMessage
from labbook.teams.forms import status_of, submit
from labbook.urls import safe_next

OUTBOX_FILTERS = {
    "": ("pending", "failed"),
    "pending": ("pending",),
    "failed": ("failed",),
    "sent": ("sent",),
}
OUTBOX_STATE_LABELS = {
    "pending": _l("Pending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
}


@bp.app_context_processor
def _header() -> dict[str, Any]:
    return {"unread_notifications": unread_badge}


def unread_badge() -> int:
    """The header's unread count: one COUNT per request, only for logged-in users. A
    broken database session (an error page) shows no badge rather than a second error."""
    if "_unread_notifications" not in g:
        try:
            count = services.unread_count(current_user) if current_user.is_authenticated else 0
        except sa.exc.SQLAlchemyError:
            count = 0
        g._unread_notifications = count
    return int(g._unread_notifications)


def _page() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)


def _paginate(stmt: sa.Select) -> Any:
    return db.paginate(stmt, page=_page(), per_page=current_app.config["LABBOOK_PAGE_SIZE"],
                       error_out=False)


def own_notification(notification_id: int) -> Notification:
    """:raises NotFound: unknown, or someone else's (which reveals nothing)."""
    note = get_or_404(Notification, notification_id, _("No such notification."))
    if note.user_id != current_user.id:
        raise NotFound(_("No such notification."))
    return note


@bp.route("/notifications")
def index() -> str:
    """The user's notifications, newest first; unread ones stand out."""
    return render_template(
        "notifications/index.html", page=_paginate(services.notifications_for(current_user)),
        title=render.title, link=render.link_path, action_form=EmptyForm(formdata=None),
    )


@bp.route("/notifications/read", methods=["POST"])
def read_all() -> Any:
    count = services.mark_all_read(current_user, now_utc())
    db.session.commit()
    if count:
        flash(_("All notifications are marked as read."), "success")
    return redirect(url_for("notifications.index"))


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
def read(notification_id: int) -> Any:
    """Mark one read, then go to ``next`` (the page it is about) or back to the list.
    :raises NotFound: not the user's."""
    services.mark_read(own_notification(notification_id), now_utc())
    db.session.commit()
    return redirect(safe_next(request.form.get("next"), url_for("notifications.index")))


@bp.route("/notifications/preferences", methods=["GET", "POST"])
def preferences() -> Any:
    form = preferences_form(services.preferences(current_user))
    done, _saved = submit(form, lambda: services.set_preferences(current_user, form.choices()),
                          _("Your mail preferences are saved."))
    if done:
        return redirect(url_for("notifications.preferences"))
    return render_template("notifications/preferences.html", form=form), status_of(form)


@bp.route("/admin/outbox")
@require_role(Role.ADMIN)
def outbox() -> str:
    """Counts by state, and the messages of the chosen state (default: pending and
    failed, the ones that may need a look)."""
    chosen = request.args.get("state", "")
    chosen = chosen if chosen in OUTBOX_FILTERS else ""
    return render_template(
        "notifications/outbox.html", counts=services.outbox_counts(), chosen=chosen,
        to_compose=services.to_compose(),
        page=_paginate(services.outbox_messages(OUTBOX_FILTERS[chosen])),
        state_labels=OUTBOX_STATE_LABELS, action_form=EmptyForm(formdata=None),
    )


@bp.route("/admin/outbox/<int:message_id>/retry", methods=["POST"])
@require_role(Role.ADMIN)
def outbox_retry(message_id: int) -> Any:
    """Queue a failed or pending message again, due now. :raises NotFound: unknown."""
    message = get_or_404(OutboxMessage, message_id)
    try:
        services.retry_message(current_user, message, now_utc())
    except ValidationError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("The message is queued again and goes out with the next delivery run."),
              "success")
    return redirect(safe_next(request.form.get("next"), url_for("notifications.outbox")))
