"""Tenants: the teams or customers sharing one instance (Kestra's model).

Accounts are instance-wide; a person belongs to tenants through a membership. Groups, roles,
invitations and audit events belong to one tenant; flows, stages and prompts belong to one
tenant or (tenant_id NULL) to the whole instance, usable by every tenant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Column,
    ForeignKey,
    String,
    Table,
    event,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

DEFAULT_TENANT_SLUG = "default"

tenant_members = Table(
    "tenant_members",
    db.metadata,
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    # Inactive: its invitations refuse to work and its members may not act in it.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(  # noqa: F821
        secondary=tenant_members, back_populates="tenants", order_by="User.username")

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"


class InvitationRole(db.Model):
    """A role attached directly to an invitation, optionally limited to namespaces (Kestra's
    form); the new member gets it as a MemberRole in the invitation's tenant."""

    __tablename__ = "invitation_roles"

    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    # Empty: the role's own namespaces; otherwise narrowed to these (within the role's).
    namespaces: Mapped[list] = mapped_column(JSON, default=list)

    role: Mapped[Role] = relationship()  # noqa: F821


class MemberRole(db.Model):
    """A role a person holds directly in a tenant (not through a group), with its namespaces."""

    __tablename__ = "member_roles"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    namespaces: Mapped[list] = mapped_column(JSON, default=list)

    role: Mapped[Role] = relationship()  # noqa: F821


# A new schema (create_all, as the tests and `flask seed` on an empty database make it) starts
# with the default tenant, exactly as migration 0009 leaves an upgraded one.
event.listen(Tenant.__table__, "after_create", DDL(
    "INSERT INTO tenants (name, slug, active, created_at) "
    "VALUES ('Default', 'default', TRUE, CURRENT_TIMESTAMP)"))  # DEFAULT_TENANT_SLUG


def current_tenant_id(context=None) -> int | None:
    """The column default of every tenant-owned row: the tenant of the admin URL being served
    (portal.tenants.current_tenant), None on an instance page (portal.tenants.use_instance),
    else the default tenant (CLI, services without a request)."""
    from flask import g, has_app_context

    if has_app_context() and g.get("tenant_id") is not None:
        return g.tenant_id
    if has_app_context() and g.get("instance_scope"):
        return None
    query = select(Tenant.id).where(Tenant.slug == DEFAULT_TENANT_SLUG)
    found = context.connection.execute(query).scalar() if context is not None else db.session.scalar(query)
    if found is None:
        raise LookupError("no default tenant: run the migrations (flask db upgrade)")
    return found


def event_tenant_id(context=None) -> int | None:
    """The column default of an audit event: the tenant of the admin URL (or API token) being
    served, else none: an event outside every tenant (a sign-in, an account's own change, an
    instance page) belongs to the instance, which only superadmins see."""
    from flask import g, has_app_context

    if has_app_context():
        return g.get("tenant_id")
    return None
