from flask import Blueprint

bp = Blueprint("instruments", __name__, template_folder="templates")

from labbook.instruments import views  # noqa: E402,F401  (routes attach to bp)
