"""Administration (stub)."""
from __future__ import annotations

from flask import render_template

from labbook.admin import bp
from labbook.auth.guards import require_role
from labbook.auth.models import Role


@bp.route("/users")
@require_role(Role.ADMIN)
def users():
    return render_template("instruments/index.html")
