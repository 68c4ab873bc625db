"""Count the SQL statements a block of code sends (for the tests and the benchmark)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from portal.extensions import db


@contextmanager
def count_statements(app):
    """Yields a list that fills with each statement sent while the block runs."""
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
