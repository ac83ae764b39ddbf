"""Bookings: the booking engine arrives with its own issue; the package has its final shape."""

from flask import Blueprint

bp = Blueprint("bookings", __name__, template_folder="templates")
