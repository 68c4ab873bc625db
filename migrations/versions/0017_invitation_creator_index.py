"""index invitations by creator with tenant and flow

The admin list's "created by" choices ask, for each account, whether it created an invitation
visible here. With only ix_invitations_tenant_id and ix_invitations_created_by_id, SQLite's
planner takes the tenant index (every row of a one-tenant install) and scans a million rows for
each account that created none; one index on (created_by_id, tenant_id, flow_id) answers each
probe at once, with the admin's flows too, and still serves ON DELETE SET NULL.

Revision ID: 0017_creator_index
Revises: 0016_sso_group_map
"""
from alembic import op


revision = '0017_creator_index'
down_revision = '0016_sso_group_map'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index('ix_invitations_creator', ['created_by_id', 'tenant_id', 'flow_id'],
                              unique=False)
        batch_op.drop_index('ix_invitations_created_by_id')


def downgrade():
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index('ix_invitations_created_by_id', ['created_by_id'], unique=False)
        batch_op.drop_index('ix_invitations_creator')
