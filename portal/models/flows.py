"""Flows, their stages and prompts, and the server-side state of a flow in progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .tenants import current_tenant_id
from .types import UTCDateTime, utcnow


class FlowDesignation:
    ENROLLMENT = "enrollment"
    AUTHENTICATION = "authentication"
    RECOVERY = "recovery"
    UNENROLLMENT = "unenrollment"
    INVALIDATION = "invalidation"
    AUTHORIZATION = "authorization"
    STAGE_CONFIGURATION = "stage_configuration"
    CHOICES = (
        ENROLLMENT, AUTHENTICATION, RECOVERY, UNENROLLMENT,
        INVALIDATION, AUTHORIZATION, STAGE_CONFIGURATION,
    )


class FlowAuthentication:
    NONE = "none"
    REQUIRE_AUTHENTICATED = "require_authenticated"
    REQUIRE_UNAUTHENTICATED = "require_unauthenticated"
    REQUIRE_SUPERUSER = "require_superuser"
    CHOICES = (NONE, REQUIRE_AUTHENTICATED, REQUIRE_UNAUTHENTICATED, REQUIRE_SUPERUSER)


prompt_stage_fields = Table(
    "prompt_stage_fields",
    db.metadata,
    Column("stage_id", ForeignKey("stages.id", ondelete="CASCADE"), primary_key=True),
    Column("prompt_id", ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True),
)


class Flow(db.Model):
    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: instance-wide, usable by every tenant (the seeded defaults, and every row from before
    # tenants); else owned by (and editable in) one tenant, by default the one it is made in.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255), default="")
    designation: Mapped[str] = mapped_column(String(40), default=FlowDesignation.ENROLLMENT)
    authentication: Mapped[str] = mapped_column(String(40), default=FlowAuthentication.NONE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    bindings: Mapped[list[FlowStageBinding]] = relationship(
        back_populates="flow",
        order_by="(FlowStageBinding.order, FlowStageBinding.id)",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return f"<Flow {self.slug}>"


class Stage(db.Model):
    """One configured stage; `type` names its class in portal.flows.stages."""

    __tablename__ = "stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: instance-wide, usable by every tenant (the seeded defaults, and every row from before
    # tenants); else owned by (and editable in) one tenant, by default the one it is made in.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(50))
    options: Mapped[dict] = mapped_column(JSON, default=dict)

    prompts: Mapped[list[Prompt]] = relationship(
        secondary=prompt_stage_fields, order_by="(Prompt.order, Prompt.id)", back_populates="stages"
    )
    bindings: Mapped[list[FlowStageBinding]] = relationship(
        back_populates="stage", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Stage {self.type} {self.name}>"


class Prompt(db.Model):
    """A field shown by prompt stages; `type` is one of authentik's prompt types."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: instance-wide, usable by every tenant (the seeded defaults, and every row from before
    # tenants); else owned by (and editable in) one tenant, by default the one it is made in.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=current_tenant_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    field_key: Mapped[str] = mapped_column(String(150))
    label: Mapped[str] = mapped_column(String(255), default="")
    type: Mapped[str] = mapped_column(String(40), default="text")
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    placeholder: Mapped[str] = mapped_column(Text, default="")
    initial_value: Mapped[str] = mapped_column(Text, default="")
    help_text: Mapped[str] = mapped_column(Text, default="")
    order: Mapped[int] = mapped_column(Integer, default=0)
    choices: Mapped[list | None] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON, default=dict)

    stages: Mapped[list[Stage]] = relationship(
        secondary=prompt_stage_fields, back_populates="prompts"
    )

    def __repr__(self) -> str:
        return f"<Prompt {self.field_key} ({self.type})>"


class FlowStageBinding(db.Model):
    __tablename__ = "flow_stage_bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), index=True)
    order: Mapped[int] = mapped_column(Integer, default=0)
    # Declarative condition (see portal.flows.planner); None means "always".
    condition: Mapped[dict | None] = mapped_column(JSON)
    evaluate_on_plan: Mapped[bool] = mapped_column(Boolean, default=True)
    re_evaluate_policies: Mapped[bool] = mapped_column(Boolean, default=False)

    flow: Mapped[Flow] = relationship(back_populates="bindings")
    stage: Mapped[Stage] = relationship(back_populates="bindings")

    def __repr__(self) -> str:
        return f"<Binding {self.flow_id}:{self.order} -> {self.stage_id}>"


class FlowSession(db.Model):
    """The wizard's state, kept server-side so any worker can serve the next step.

    The browser's signed cookie carries only `key`; we store its digest.
    """

    __tablename__ = "flow_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), index=True)
    plan: Mapped[list] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    prompt_data: Mapped[dict] = mapped_column(JSON, default=dict)
    # Fields fixed by the invitation: shown read-only and never taken from a POST.
    fixed_fields: Mapped[list] = mapped_column(JSON, default=list)
    errors: Mapped[dict | None] = mapped_column(JSON)
    token_supplied: Mapped[bool] = mapped_column(Boolean, default=False)
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("invitations.id", ondelete="SET NULL")
    )
    # The chosen password, already argon2id-hashed: the plaintext never reaches the database.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    flow: Mapped[Flow] = relationship()
    # Read-only: invitation_id is what is written. The wizard loads the invitation (and its
    # groups) with the session, in the same query; see FlowContext.invitation.
    invitation: Mapped[Invitation | None] = relationship(viewonly=True)  # noqa: F821


class ConsentRecord(db.Model):
    """Someone accepted a consent stage's text: when, and which version of the text.

    Written when the box is ticked; the user is attached when the flow creates them.
    """

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    stage_id: Mapped[int | None] = mapped_column(ForeignKey("stages.id", ondelete="SET NULL"), index=True)
    stage_name: Mapped[str] = mapped_column(String(255), default="")
    flow_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_sessions.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    text_sha256: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
