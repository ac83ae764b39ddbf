"""Fixtures for the administration tests: ``admin``, the client logged in as an
administrator (the user is returned)."""
from __future__ import annotations

import pytest


@pytest.fixture
def admin(login_as):
    return login_as("admin")
