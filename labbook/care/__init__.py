"""Equipment care and usage capture: outages and maintenance, fault reports, instrument
status and service log, kiosk check-in/out and walk-ins, usage records, the manager
dashboard."""

from flask import Blueprint

bp = Blueprint("care", __name__, template_folder="templates")

from labbook.care import views  # noqa: E402,F401  (routes attach to bp)
