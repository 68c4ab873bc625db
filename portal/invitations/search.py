"""The admin's "name or address contains" search, served by each database's own index.

PostgreSQL: trigram GIN indexes on name and email (migrations 0004 and 0006; pg_trgm) serve
`ILIKE '%…%'` directly. SQLite: an FTS5 table with the trigram tokenizer (migration 0009_perf),
kept in step with `invitations` by triggers, narrows the rows to those containing the text; the
same ILIKE then confirms each one, so both databases answer exactly alike. Without the FTS5
table (an SQLite built without FTS5 or older than 3.34, where the migration skips it), or for a
text shorter than a trigram, the search scans, as it did before.
"""

from __future__ import annotations

import weakref

from sqlalchemy import and_, or_, text

from ..extensions import db
from ..models import Invitation

FTS_TABLE = "invitations_fts"
# Shared with migration 0009_perf and the model's after_create event (tests build the schema
# with create_all).
SQLITE_FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS invitations_fts USING fts5(name, email, "
    "content='invitations', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS invitations_fts_insert AFTER INSERT ON invitations BEGIN "
    "INSERT INTO invitations_fts(rowid, name, email) VALUES (new.id, new.name, new.email); END",
    "CREATE TRIGGER IF NOT EXISTS invitations_fts_delete AFTER DELETE ON invitations BEGIN "
    "INSERT INTO invitations_fts(invitations_fts, rowid, name, email) "
    "VALUES ('delete', old.id, old.name, old.email); END",
    "CREATE TRIGGER IF NOT EXISTS invitations_fts_update AFTER UPDATE OF name, email ON invitations "
    "BEGIN INSERT INTO invitations_fts(invitations_fts, rowid, name, email) "
    "VALUES ('delete', old.id, old.name, old.email); "
    "INSERT INTO invitations_fts(rowid, name, email) VALUES (new.id, new.name, new.email); END",
)
TRIGRAM = 3
_fts_present: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _has_fts() -> bool:
    """Whether this SQLite database has the FTS5 table (asked once per engine)."""
    engine = db.engine
    if engine not in _fts_present:
        _fts_present[engine] = db.session.execute(text(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": FTS_TABLE}).first() is not None
    return _fts_present[engine]


def forget_fts() -> None:
    """After the schema was rebuilt in this process (tests, migrations): ask again."""
    _fts_present.clear()


def contains(search: str):
    """The WHERE clause for "name or address contains `search`" (taken literally)."""
    term = search.strip()
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    clause = or_(Invitation.name.ilike(pattern, escape="\\"),
                 Invitation.email.ilike(pattern, escape="\\"))
    if db.engine.dialect.name == "sqlite" and len(term) >= TRIGRAM and _has_fts():
        phrase = '"' + term.replace('"', '""') + '"'  # an FTS5 string: every character literal
        matching = text("SELECT rowid FROM invitations_fts WHERE invitations_fts MATCH :phrase"
                        ).bindparams(phrase=phrase)
        clause = and_(Invitation.id.in_(matching), clause)
    return clause


def create_sqlite_index(connection) -> bool:
    """Create the FTS5 table and its triggers, and fill it; False when this SQLite cannot."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    try:
        for statement in SQLITE_FTS_DDL:
            connection.exec_driver_sql(statement)
    except (OperationalError, sqlite3.OperationalError):
        return False
    connection.exec_driver_sql("INSERT INTO invitations_fts(invitations_fts) VALUES ('rebuild')")
    return True
