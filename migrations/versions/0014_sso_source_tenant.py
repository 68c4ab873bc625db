"""oidc sources: instance-wide or owned by a tenant

Revision ID: 0014_sso_tenant
Revises: 0009_tenants
Create Date: 2026-12-02 02:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_sso_tenant'
down_revision = '0009_tenants'
branch_labels = None
depends_on = None


def upgrade():
    # One nullable column: every existing source stays instance-wide (NULL), as it was.
    with op.batch_alter_table('oidc_sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_oidc_sources_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_oidc_sources_tenant_id_tenants'), 'tenants', ['tenant_id'],
                                    ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('oidc_sources', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_oidc_sources_tenant_id_tenants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_oidc_sources_tenant_id'))
        batch_op.drop_column('tenant_id')
