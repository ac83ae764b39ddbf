"""The scheduler: one elected APScheduler process (``flask --app labbook scheduler``) that
runs the features' idempotent jobs. Web workers never start it."""

from flask import Blueprint  # noqa: E402

bp = Blueprint("scheduler", __name__, template_folder="templates")

from labbook.scheduler import views  # noqa: E402,F401  (routes attach to bp)
