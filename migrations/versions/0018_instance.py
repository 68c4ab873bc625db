"""invitations and audit events of the whole instance

invitations.tenant_id and audit_events.tenant_id become nullable: NULL is the instance (an
invitation to an account on the instance, made by a superadmin; an event that belongs to no
tenant, such as a sign-in). invitations.grants_superuser: the invitation makes its invitee an
instance superadmin. Existing rows keep their tenant; nothing is rewritten.

Revision ID: 0018_instance
Revises: 0017_creator_index
Create Date: 2026-12-02 04:15:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0018_instance'
down_revision = '0017_creator_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('grants_superuser', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=True)
    _restore_sqlite_search()


def downgrade():
    # Lossy: instance invitations and instance events have no tenant to go back to.
    op.execute(sa.text("DELETE FROM invitations WHERE tenant_id IS NULL"))
    op.execute(sa.text("DELETE FROM audit_events WHERE tenant_id IS NULL"))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_column('grants_superuser')
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
    _restore_sqlite_search()


def _restore_sqlite_search():
    """The batch ALTER of `invitations` recreated the table on SQLite, dropping the FTS5
    triggers (as in 0013_tenants): create them again and rebuild the search table."""
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    present = bind.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'invitations_fts'").first()
    if present:
        from portal.invitations.search import create_sqlite_index

        create_sqlite_index(bind)
