"""api tokens belong to one tenant

A nullable tenant_id on api_tokens; every existing token moves to the default tenant (the one
every request acted in before), so scripts keep working unchanged. Deleting a tenant deletes its
tokens.

Revision ID: 0014_api_tenant
Revises: 0009_tenants
Create Date: 2026-12-02 02:20:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_api_tenant'
down_revision = '0014_sso_tenant'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_tokens_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_api_tokens_tenant_id_tenants'), 'tenants',
                                    ['tenant_id'], ['id'], ondelete='CASCADE')
    default_id = op.get_bind().execute(sa.text(
        "SELECT COALESCE((SELECT id FROM tenants WHERE slug = 'default'), "
        "(SELECT min(id) FROM tenants))")).scalar()
    if default_id is not None:
        op.execute(sa.text("UPDATE api_tokens SET tenant_id = :tenant WHERE tenant_id IS NULL")
                   .bindparams(tenant=default_id))


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_tokens_tenant_id_tenants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_tokens_tenant_id'))
        batch_op.drop_column('tenant_id')
