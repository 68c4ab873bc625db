"""Roles: named sets of permissions bound to groups, optionally limited to namespaces (Kestra's model)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .tenants import current_tenant_id
from .types import UTCDateTime, utcnow

group_roles = Table(
    "group_roles",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)


class Role(db.Model):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    name: Mapped[str] = mapped_column(String(150))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Names from portal.access.PERMISSIONS, such as "invitations:manage".
    permissions: Mapped[list] = mapped_column(JSON, default=list)
    # Empty: every namespace. Otherwise the role applies only to flows in these namespaces.
    namespaces: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    groups: Mapped[list[Group]] = relationship(  # noqa: F821
        secondary=group_roles, back_populates="roles", order_by="Group.name"
    )

    # Names are unique within a tenant.
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_roles_tenant_id_name"),)

    def __repr__(self) -> str:
        return f"<Role {self.name}>"
