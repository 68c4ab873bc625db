"""existing users accept invitations: the verified address, declines, one use per account

Revision ID: 0009_accept
Revises: 0008
Create Date: 2026-12-02 01:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009_accept'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: accounts of earlier versions have no address proven yet (nothing
    # recorded one), and every row keeps working. A plain ADD COLUMN (see 0007 on SQLite).
    op.add_column('users', sa.Column('verified_email', sa.String(length=320), nullable=True))
    op.create_table(
        'invitation_declines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('invitation_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('declined_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['invitation_id'], ['invitations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('invitation_id', 'user_id', name='uq_invitation_declines_pair'),
    )
    op.create_index('ix_invitation_declines_user_id', 'invitation_declines', ['user_id'])
    # An account uses an invitation at most once: enrollment makes a new account per use, so
    # existing rows are already distinct (a deleted user's NULLs never collide).
    op.create_index('uq_invitation_uses_invitation_user', 'invitation_uses',
                    ['invitation_id', 'user_id'], unique=True)


def downgrade():
    op.drop_index('uq_invitation_uses_invitation_user', table_name='invitation_uses')
    op.drop_index('ix_invitation_declines_user_id', table_name='invitation_declines')
    op.drop_table('invitation_declines')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('verified_email')
    if op.get_bind().dialect.name == 'sqlite':  # the batch copy dropped it (see 0007)
        op.execute('CREATE UNIQUE INDEX IF NOT EXISTS uq_users_username_lower '
                   'ON users (lower(username))')
