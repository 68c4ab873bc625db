"""People and the groups that carry their access."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .tenants import current_tenant_id
from .types import UTCDateTime, utcnow

user_groups = Table(
    "user_groups",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class UserType:
    INTERNAL = "internal"
    EXTERNAL = "external"
    CHOICES = (INTERNAL, EXTERNAL)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(320), default="", index=True)
    # The address a verification proved (an email stage's link opened, or a recipient-bound
    # invitation used). It vouches for `email` only while the two are the same address
    # (auth.service.verified_email), so changing the address needs a new proof.
    verified_email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    type: Mapped[str] = mapped_column(String(20), default=UserType.INTERNAL)
    path: Mapped[str] = mapped_column(String(255), default="users")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Carried in every sign-in session (see get_id); raising it ends all of the user's sessions
    # at their next request: sign-out, password change or reset, deactivation.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    groups: Mapped[list[Group]] = relationship(
        secondary=user_groups, back_populates="users", order_by="Group.name"
    )
    tenants: Mapped[list[Tenant]] = relationship(  # noqa: F821
        secondary="tenant_members", back_populates="members", order_by="Tenant.name"
    )

    # Usernames are unique regardless of case; the index makes the database the final judge.
    __table_args__ = (Index("uq_users_username_lower", func.lower(username), unique=True),)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: "<id>:<generation>", so a stale one is refused."""
        return f"{self.id}:{self.session_generation or 0}"

    @property
    def display_name(self) -> str:
        return self.name or self.username

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Group(db.Model):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    name: Mapped[str] = mapped_column(String(150))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    users: Mapped[list[User]] = relationship(secondary=user_groups, back_populates="groups")
    roles: Mapped[list[Role]] = relationship(  # noqa: F821
        secondary="group_roles", back_populates="groups", order_by="Role.name"
    )

    # Names are unique within a tenant; two tenants may each have their "staff".
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_groups_tenant_id_name"),)

    def __repr__(self) -> str:
        return f"<Group {self.name}>"
