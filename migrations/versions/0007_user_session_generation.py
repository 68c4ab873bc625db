"""user session generation: ending a user's sessions everywhere

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Existing users start at generation 0: the server default fills their rows, so nothing is
    # lost. Sessions signed before this carry a bare id and are asked to sign in again.
    # A plain ADD COLUMN, not a batch: SQLite's batch copy would lose the expression index
    # uq_users_username_lower, which reflection cannot see.
    op.add_column('users', sa.Column('session_generation', sa.Integer(),
                                     server_default=sa.text('0'), nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
    if op.get_bind().dialect.name == 'sqlite':  # the batch copy dropped it (see upgrade)
        op.execute('CREATE UNIQUE INDEX IF NOT EXISTS uq_users_username_lower '
                   'ON users (lower(username))')
