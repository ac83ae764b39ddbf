from flask import Blueprint

bp = Blueprint("teams", __name__, template_folder="templates")

from labbook.teams import views  # noqa: E402,F401  (routes attach to bp)
