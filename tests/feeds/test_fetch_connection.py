"""The feed token lookup's own connection (labbook/feeds/fetch.py): one per thread and
engine, outside the pool, replaced when it breaks."""

from __future__ import annotations

import pytest

from labbook.extensions import db
from labbook.feeds import fetch


def test_lookup_connection_is_kept_and_replaced_when_broken(app):
    engine = db.engine
    try:
        assert fetch._execute_on(engine, "SELECT 1", ()) == (1,)
        first = fetch._connections.get(engine)
        assert fetch._execute_on(engine, "SELECT 2", ()) == (2,)
        assert fetch._connections.get(engine) is first  # kept, not checked out again
        first.close()  # as a server restart or an idle timeout would
        assert fetch._execute_on(engine, "SELECT 3", ()) == (3,)
        assert fetch._connections.get(engine) is not first
    finally:
        fetch._connections.drop(engine)


def test_a_real_sql_error_is_raised_after_one_retry(app):
    engine = db.engine
    try:
        with pytest.raises(engine.dialect.loaded_dbapi.Error):
            fetch._execute_on(engine, "SELECT * FROM no_such_table", ())
    finally:
        fetch._connections.drop(engine)
