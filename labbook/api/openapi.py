"""The OpenAPI 3 document at /api/v1/openapi.json (stub)."""
from __future__ import annotations

from flask import jsonify

from labbook.api import bp


@bp.get("/openapi.json")
def openapi_document():
    return jsonify({"openapi": "3.1.0", "info": {"title": "labbook", "version": "1"}, "paths": {}})
