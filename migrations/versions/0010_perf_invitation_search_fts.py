"""invitation search on SQLite: an FTS5 trigram table kept by triggers

Revision ID: 0009_perf
Revises: 0008
Create Date: 2026-12-02 01:00:00

PostgreSQL already has trigram indexes on name (0004) and email (0006). SQLite gets an FTS5
table with the trigram tokenizer (SQLite 3.34 or later) over the same two columns, an external
content table filled from `invitations` and kept in step by three triggers. An SQLite without
FTS5 or the trigram tokenizer skips it, and the search scans as before
(portal.invitations.search checks for the table).

Note for later migrations: a batch ALTER of `invitations` on SQLite recreates the table and
drops these triggers; such a migration must run this one's upgrade() again afterwards.
"""
import sqlite3

from alembic import op
from sqlalchemy.exc import OperationalError

# revision identifiers, used by Alembic.
revision = '0009_perf'
down_revision = '0009_accept'
branch_labels = None
depends_on = None

FTS = 'invitations_fts'
DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(name, email, "
    "content='invitations', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_insert AFTER INSERT ON invitations BEGIN "
    f"INSERT INTO {FTS}(rowid, name, email) VALUES (new.id, new.name, new.email); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_delete AFTER DELETE ON invitations BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, name, email) VALUES ('delete', old.id, old.name, old.email); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_update AFTER UPDATE OF name, email ON invitations BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, name, email) VALUES ('delete', old.id, old.name, old.email); "
    f"INSERT INTO {FTS}(rowid, name, email) VALUES (new.id, new.name, new.email); END",
)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    try:
        for statement in DDL:
            bind.exec_driver_sql(statement)
    except (OperationalError, sqlite3.OperationalError):
        # No FTS5 or no trigram tokenizer in this SQLite: the search keeps scanning.
        for name in ('insert', 'delete', 'update'):
            bind.exec_driver_sql(f'DROP TRIGGER IF EXISTS {FTS}_{name}')
        return
    bind.exec_driver_sql(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    for name in ('insert', 'delete', 'update'):
        bind.exec_driver_sql(f'DROP TRIGGER IF EXISTS {FTS}_{name}')
    bind.exec_driver_sql(f'DROP TABLE IF EXISTS {FTS}')
