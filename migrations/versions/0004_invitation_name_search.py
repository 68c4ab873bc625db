"""invitation name search: trigram index on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:30:00

"""
import warnings

from alembic import op
from sqlalchemy.exc import DBAPIError


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # "Name contains" searches name ILIKE '%…%'; only a trigram index serves that.
    # pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13.
    # Without it (not installed: Debian's postgresql-contrib; or no right to create it) the
    # upgrade goes on without the index, says so, and the search scans; run
    # `CREATE EXTENSION pg_trgm` and the CREATE INDEX below by hand later to add it.
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").first()
    if available is None:
        warnings.warn('pg_trgm is not available: the invitation search will scan', stacklevel=1)
        return
    try:
        with bind.begin_nested():  # a SAVEPOINT: a refusal leaves the migration's transaction usable
            bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except DBAPIError as exc:
        warnings.warn(f'pg_trgm could not be created ({exc.orig}): the invitation search will '
                      'scan', stacklevel=1)
        return
    op.execute('CREATE INDEX ix_invitations_name_trgm ON invitations '
               'USING gin (name gin_trgm_ops)')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP INDEX IF EXISTS ix_invitations_name_trgm')
