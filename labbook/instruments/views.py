"""Catalog pages (stub: the catalog UI fills this in)."""
from __future__ import annotations

from flask import render_template

from labbook.instruments import bp


@bp.route("/")
def index():
    return render_template("instruments/index.html")


@bp.route("/facilities")
def facilities():
    return render_template("instruments/index.html")


@bp.route("/facilities/<int:facility_id>")
def facility(facility_id: int):
    return render_template("instruments/index.html")
