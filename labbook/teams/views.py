"""Team pages (stub)."""
from __future__ import annotations

from flask import render_template

from labbook.teams import bp


@bp.route("/teams")
def mine():
    return render_template("instruments/index.html")
