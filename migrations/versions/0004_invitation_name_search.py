"""invitation name search: trigram index on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # "Name contains" searches name ILIKE '%…%'; only a trigram index serves that.
    # pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13.
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.execute('CREATE INDEX ix_invitations_name_trgm ON invitations '
               'USING gin (name gin_trgm_ops)')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP INDEX IF EXISTS ix_invitations_name_trgm')
