"""All models, imported here so Alembic and the app see one metadata."""

from .access import Role, group_roles
from .api_tokens import ApiToken
from .audit import AuditEvent
from .flows import (
    ConsentRecord,
    Flow,
    FlowAuthentication,
    FlowDesignation,
    FlowSession,
    FlowStageBinding,
    Prompt,
    Stage,
    prompt_stage_fields,
)
from .invitations import Invitation, InvitationDecline, InvitationUse, invitation_groups
from .mfa import RecoveryCode, TOTPDevice
from .outbox import OutboxMessage, OutboxStatus
from .sources import MatchingMode, OIDCSource, SourceConnection, SSOAttempt
from .tenants import DEFAULT_TENANT_SLUG, InvitationRole, MemberRole, Tenant, tenant_members
from .tokens import ActionToken, TokenPurpose
from .types import utcnow
from .users import Group, User, UserType, user_groups

__all__ = [
    "DEFAULT_TENANT_SLUG", "InvitationRole", "MemberRole", "Tenant", "tenant_members",
    "AuditEvent", "OutboxMessage", "OutboxStatus", "Role", "group_roles", "invitation_groups",
    "ActionToken", "ApiToken", "ConsentRecord", "Flow", "FlowAuthentication", "FlowDesignation",
    "FlowSession", "FlowStageBinding", "Group", "Invitation", "InvitationDecline", "InvitationUse",
    "MatchingMode", "OIDCSource", "Prompt", "RecoveryCode", "SourceConnection", "SSOAttempt",
    "Stage", "TOTPDevice", "TokenPurpose", "User", "UserType", "prompt_stage_fields",
    "user_groups", "utcnow",
]
