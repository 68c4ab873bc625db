"""sso sources map provider groups to portal groups

A group_map column on oidc_sources: a JSON list of [provider group, portal group name] pairs
("staff" -> "Staff"). Existing sources get an empty map: they keep granting nothing, as before.

Revision ID: 0016_sso_group_map
Revises: 0014_api_tenant
Create Date: 2026-12-02 04:10:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0016_sso_group_map'
down_revision = '0014_api_tenant'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('oidc_sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_map', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))


def downgrade():
    with op.batch_alter_table('oidc_sources', schema=None) as batch_op:
        batch_op.drop_column('group_map')
