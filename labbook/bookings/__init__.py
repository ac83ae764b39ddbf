"""Bookings: the booking engine (rules, slots, services), its pages and its API."""

from flask import Blueprint

bp = Blueprint("bookings", __name__, template_folder="templates")

from labbook.bookings import manage, views  # noqa: E402,F401  (routes attach to bp)
