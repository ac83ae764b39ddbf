"""Notifications: an in-app list per user and a mail outbox written in the same
transaction as the change that causes it, delivered over SMTP by the scheduler."""

from flask import Blueprint  # noqa: E402

bp = Blueprint("notifications", __name__, template_folder="templates")

from labbook.notifications import views  # noqa: E402,F401  (routes attach to bp)
