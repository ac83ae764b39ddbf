"""Billing: customer classes now; rate cards, charges and statements with the billing issue."""
from flask import Blueprint

bp = Blueprint("billing", __name__, template_folder="templates")
