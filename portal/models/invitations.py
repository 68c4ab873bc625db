"""Invitations and the record of each use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .tenants import current_tenant_id
from .types import UTCDateTime, utcnow

invitation_groups = Table(
    "invitation_groups",
    db.metadata,
    Column("invitation_id", ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Invitation(db.Model):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: an invitation to the whole instance (an account, no tenant), made by a superadmin.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    # The invitee becomes an instance superadmin (instance invitations only).
    grants_superuser: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    name: Mapped[str] = mapped_column(String(255), index=True)
    # The link's token is HMAC(SECRET_KEY, token_salt); only its digest is searchable.
    # A copy of the database alone therefore never yields a working link.
    token_salt: Mapped[str] = mapped_column(String(64))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), index=True)
    # authentik's fixed_data: pre-fills fields and lands in the new user's attributes.
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Indexed with tenant and flow (ix_invitations_creator, below): the list's "created by"
    # choices probe it once per account, which a tenant_id index alone turns into a scan.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Recipient-bound invitations: the address the link was sent to, which enrollment must use.
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    cc: Mapped[list] = mapped_column(JSON, default=list)
    bcc: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    # Open links: when not empty, enrollment accepts only addresses at these domains.
    allowed_domains: Mapped[list] = mapped_column(JSON, default=list)

    flow: Mapped[Flow] = relationship()  # noqa: F821
    tenant: Mapped[Tenant | None] = relationship()  # noqa: F821
    # Roles attached directly (Kestra's form), each optionally limited to namespaces.
    direct_roles: Mapped[list[InvitationRole]] = relationship(  # noqa: F821
        cascade="all, delete-orphan", passive_deletes=True)
    created_by: Mapped[User | None] = relationship()  # noqa: F821
    uses: Mapped[list[InvitationUse]] = relationship(
        back_populates="invitation",
        order_by="InvitationUse.used_at.desc()",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    groups: Mapped[list[Group]] = relationship(  # noqa: F821
        secondary=invitation_groups, order_by="Group.name"
    )
    emails: Mapped[list[OutboxMessage]] = relationship(  # noqa: F821
        back_populates="invitation", order_by="OutboxMessage.id.desc()", passive_deletes=True
    )

    __table_args__ = (
        # The admin's "name contains" search (name ILIKE '%…%'): a trigram index on PostgreSQL
        # keeps it fast at 100,000 rows (SQLite scans, which is fast enough there).
        Index("ix_invitations_name_trgm", name, postgresql_using="gin",
              postgresql_ops={"name": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
        # The same search also matches the recipient's address.
        Index("ix_invitations_email_trgm", email, postgresql_using="gin",
              postgresql_ops={"email": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
        # Who created what, in which tenant and flow: the list's "created by" choices (one
        # EXISTS probe per account, also with the admin's flows) and ON DELETE SET NULL.
        Index("ix_invitations_creator", created_by_id, tenant_id, flow_id),
    )

    @property
    def use_limit(self) -> int | None:
        """How many times the link may be used; None means no limit."""
        return 1 if self.single_use else self.max_uses

    def __repr__(self) -> str:
        return f"<Invitation {self.name}>"


class InvitationUse(db.Model):
    """Who used an invitation and when: written with the user, in the same transaction."""

    __tablename__ = "invitation_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    invitation: Mapped[Invitation] = relationship(back_populates="uses")
    user: Mapped[User | None] = relationship()  # noqa: F821

    # An account uses one invitation at most once (an existing user's second Accept, even from
    # two browsers at the same moment, is refused by the database).
    __table_args__ = (Index("uq_invitation_uses_invitation_user", invitation_id, user_id,
                            unique=True),)


class InvitationDecline(db.Model):
    """An existing account said no to an invitation: it leaves their account page's list.

    Nothing is consumed; the link still works if they change their mind."""

    __tablename__ = "invitation_declines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    declined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("invitation_id", "user_id",
                                       name="uq_invitation_declines_pair"),)


event.listen(
    Invitation.__table__, "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),
)


@event.listens_for(Invitation.__table__, "after_create")
def _create_search_index(_table, connection, **_kw) -> None:
    """SQLite: the FTS5 table behind the admin's search (migration 0009_perf makes it too)."""
    if connection.dialect.name == "sqlite":
        from ..invitations.search import create_sqlite_index, forget_fts

        create_sqlite_index(connection)
        forget_fts()


@event.listens_for(Invitation.__table__, "before_drop")
def _drop_search_index(_table, connection, **_kw) -> None:
    if connection.dialect.name == "sqlite":
        from ..invitations.search import FTS_TABLE, forget_fts

        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
        forget_fts()
