"""Roles: named sets of permissions bound to groups, optionally limited to namespaces (Kestra's model)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
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
    name: Mapped[str] = mapped_column(String(150), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Names from portal.access.PERMISSIONS, such as "invitations:manage".
    permissions: Mapped[list] = mapped_column(JSON, default=list)
    # Empty: every namespace. Otherwise the role applies only to flows in these namespaces.
    namespaces: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    groups: Mapped[list[Group]] = relationship(  # noqa: F821
        secondary=group_roles, back_populates="roles", order_by="Group.name"
    )

    def __repr__(self) -> str:
        return f"<Role {self.name}>"
