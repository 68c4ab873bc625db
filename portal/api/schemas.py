"""What the API reads and writes, as marshmallow schemas: the OpenAPI document is generated from
these (flask-smorest), so the spec and the validation can never disagree."""

from __future__ import annotations

from datetime import UTC

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..access import PERMISSIONS
from ..apitokens import SCOPES
from ..numbers import DB_INT_MAX

DB_ID = validate.Range(min=1, max=DB_INT_MAX)


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("NUL characters are not allowed.")


def Text(*, max_length: int, min_length: int = 0, **kwargs) -> fields.String:  # noqa: N802
    """A string bounded in length and free of NUL (the database refuses it)."""
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), _no_nul],
                         **kwargs)


def When(**kwargs) -> fields.AwareDateTime:  # noqa: N802
    """An ISO 8601 moment; without an offset it is read as UTC."""
    return fields.AwareDateTime(format="iso", default_timezone=UTC, **kwargs)


def Id(**kwargs) -> fields.Integer:  # noqa: N802
    return fields.Integer(strict=True, validate=DB_ID, **kwargs)


def Namespaces(**kwargs) -> fields.List:  # noqa: N802
    """Namespaces (flow-slug prefixes), each a word without spaces."""
    return fields.List(fields.String(validate=[validate.Length(min=1, max=100), _no_nul,
                                               validate.Regexp(r"^\S+$", error="No spaces.")]),
                       validate=validate.Length(max=50), **kwargs)


class Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


# -- errors ------------------------------------------------------------------------------------


class FieldErrorSchema(Schema):
    field = fields.String(required=True, metadata={
        "description": "The field, dotted for nested ones (rows.3.email)."})
    location = fields.String(required=True, metadata={"description": "json, query or path."})
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


# -- references --------------------------------------------------------------------------------


class GroupRef(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class FlowRef(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)


class UserRef(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)


def page_of(item: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item), required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
        "total": fields.Integer(required=True),
    }, name=name)


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=DB_INT_MAX))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


# -- invitations -------------------------------------------------------------------------------

STATUS_KEYS = ["pending", "accepted", "used_up", "expired", "revoked"]
SORT_KEYS = [f"{d}{k}" for k in ("created", "expires", "name", "email", "uses") for d in ("", "-")]


class InvitationListArgs(PageArgs):
    q = Text(max_length=200, load_default="", metadata={"description": "Name or email contains."})
    status = fields.String(validate=validate.OneOf(STATUS_KEYS))
    flow = Text(max_length=255, metadata={"description": "Flow slug."})
    creator = Id(metadata={"description": "Id of the user who created them."})
    sort = fields.String(load_default="-created", validate=validate.OneOf(SORT_KEYS))


class AttachedRoleSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    namespaces = fields.List(fields.String(), required=True, metadata={
        "description": "What the role is limited to on this invitation; empty: its own."})


class InvitationSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUS_KEYS))
    flow = fields.Nested(FlowRef, required=True)
    email = fields.String(required=True, allow_none=True)
    cc = fields.List(fields.String(), required=True)
    bcc = fields.List(fields.String(), required=True)
    single_use = fields.Boolean(required=True)
    max_uses = fields.Integer(required=True, allow_none=True)
    use_count = fields.Integer(required=True)
    allowed_domains = fields.List(fields.String(), required=True)
    groups = fields.List(fields.Nested(GroupRef), required=True)
    roles = fields.List(fields.Nested(AttachedRoleSchema), required=True, metadata={
        "description": "Roles attached directly, each with the namespaces it is limited to."})
    attributes = fields.Dict(required=True)
    message = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True, allow_none=True)
    revoked_at = fields.AwareDateTime(required=True, allow_none=True)
    created_by = fields.Nested(UserRef, required=True, allow_none=True)
    read_only = fields.String(required=True, allow_none=True, metadata={
        "description": "Why you may only read it (a group beyond what you may give), or null."})


class EmailSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    created_at = fields.AwareDateTime(required=True)


class InvitationDetailSchema(InvitationSchema):
    link = fields.String(required=True, allow_none=True, metadata={
        "description": "The invitation link while it is pending and yours to share, else null."})
    emails = fields.List(fields.Nested(EmailSchema), required=True)


InvitationPage = page_of(InvitationSchema, "InvitationPage")


class RoleGrant(Strict):
    """A role attached directly (Kestra's "attach a role"), maybe limited to namespaces."""

    role = Text(max_length=150, min_length=1, required=True, metadata={"description": "Role name."})
    namespaces = Namespaces(load_default=list, metadata={
        "description": "Limit the role to these namespaces (within its own); empty: its own."})


def RoleGrants(**kwargs) -> fields.List:  # noqa: N802
    return fields.List(fields.Nested(RoleGrant), validate=validate.Length(max=50), metadata={
        "description": "Roles given directly to whoever enrolls, each maybe limited to "
                       "namespaces."}, **kwargs)


class InvitationFields(Strict):
    """What an invitation is made of, as create and update take it."""

    name = Text(max_length=255)
    flow = Text(max_length=255, metadata={"description": "The enrollment flow's slug."})
    expires_at = When(metadata={"description": "Default: INVITATION_EXPIRE_AFTER from now."})
    attributes = fields.Dict(keys=fields.String(), metadata={
        "description": "Pre-filled, fixed answers and the new user's attributes."})
    message = Text(max_length=2000)
    groups = fields.List(Text(max_length=150), validate=validate.Length(max=100),
                         metadata={"description": "Group names, given to whoever enrolls."})
    roles = RoleGrants()
    single_use = fields.Boolean()
    max_uses = fields.Integer(allow_none=True, strict=True,
                              validate=validate.Range(min=1, max=1_000_000))
    allowed_domains = fields.List(Text(max_length=253), validate=validate.Length(max=50))


class InvitationCreate(InvitationFields):
    flow = Text(max_length=255, load_default="default-enrollment-flow",
                metadata={"description": "The enrollment flow's slug."})
    email = fields.Email(validate=validate.Length(max=320), metadata={
        "description": "Recipient-bound: single use, for this address only, emailed to it."})
    cc = fields.List(fields.Email(validate=validate.Length(max=320)),
                     validate=validate.Length(max=10))
    bcc = fields.List(fields.Email(validate=validate.Length(max=320)),
                      validate=validate.Length(max=10))
    send_email = fields.Boolean(load_default=True, metadata={
        "description": "With email: queue the invitation email (when a mail server is set)."})


class InvitationCreated(InvitationDetailSchema):
    emailed = fields.Boolean(required=True)


class ExpiryArgs(Strict):
    expires_at = When(required=True)


class ResendArgs(Strict):
    expires_at = When(metadata={"description": "Default: INVITATION_EXPIRE_AFTER from now."})


class BulkRow(Strict):
    email = Text(max_length=320, required=True)
    name = Text(max_length=255, load_default="")
    groups = fields.List(Text(max_length=150), load_default=list, validate=validate.Length(max=100))
    attributes = fields.Dict(keys=fields.String(), load_default=dict)


class BulkCreate(Strict):
    flow = Text(max_length=255, load_default="default-enrollment-flow")
    expires_at = When()
    groups = fields.List(Text(max_length=150), load_default=list, validate=validate.Length(max=100))
    roles = RoleGrants(load_default=list)
    message = Text(max_length=2000, load_default="")
    rows = fields.List(fields.Nested(BulkRow), required=True,
                       validate=validate.Length(min=1, max=5000))
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "Only check each row; create nothing."})


class BulkRowResult(Schema):
    row = fields.Integer(required=True, metadata={"description": "1-based position in rows."})
    email = fields.String(required=True)
    ok = fields.Boolean(required=True)
    problem = fields.String(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True, metadata={
        "description": "Not a problem: 'Already a member of this tenant: will be asked to join' "
                       "(to callers who may see accounts), or to instance superadmins 'Has an "
                       "account: will be asked to join' (an account of another tenant)."})
    invitation_id = fields.Integer(required=True, allow_none=True)


class BulkResult(Schema):
    created = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    emailed = fields.Boolean(required=True)
    dry_run = fields.Boolean(required=True)
    rows = fields.List(fields.Nested(BulkRowResult), required=True)


class BulkAction(Strict):
    action = fields.String(required=True, validate=validate.OneOf(["revoke", "delete"]))
    ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=1000))


class LeftUnchanged(Schema):
    id = fields.Integer(required=True)
    reason = fields.String(required=True)


class BulkActionResult(Schema):
    action = fields.String(required=True)
    changed = fields.Integer(required=True)
    left_unchanged = fields.List(fields.Nested(LeftUnchanged), required=True)


class LinkSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True, allow_none=True)
    expires_at = fields.AwareDateTime(required=True, allow_none=True)
    link = fields.String(required=True)


class LinksArgs(Schema):
    q = Text(max_length=200, load_default="")
    flow = Text(max_length=255)
    creator = Id()
    sort = fields.String(load_default="-created", validate=validate.OneOf(SORT_KEYS))


class UseSchema(Schema):
    id = fields.Integer(required=True)
    used_at = fields.AwareDateTime(required=True)
    user = fields.Nested(UserRef, required=True, allow_none=True)


class SentSchema(Schema):
    queued = fields.Boolean(required=True)
    message_id = fields.Integer(required=True, allow_none=True)


class ActionResult(Schema):
    changed = fields.Boolean(required=True)
    invitation = fields.Nested(InvitationDetailSchema, required=True)


# -- users, groups, roles ----------------------------------------------------------------------


class UserSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    active = fields.Boolean(required=True)
    superuser = fields.Boolean(required=True)
    type = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)
    last_login = fields.AwareDateTime(required=True, allow_none=True)
    groups = fields.List(fields.Nested(GroupRef), required=True)


UserPage = page_of(UserSchema, "UserPage")


class UserListArgs(PageArgs):
    q = Text(max_length=200, load_default="")


class UserCreate(Strict):
    username = fields.String(required=True, validate=[
        validate.Length(min=1, max=150), validate.Regexp(r"^[\w.@+-]+$",
                                                         error="Use letters, digits and @ . + - _ only.")])
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = Text(max_length=255, load_default="")
    groups = fields.List(Text(max_length=150), load_default=list, validate=validate.Length(max=100))


class UserUpdate(Strict):
    name = Text(max_length=255)
    email = fields.Email(validate=validate.Length(max=320))
    groups = fields.List(Text(max_length=150), validate=validate.Length(max=100), metadata={
        "description": "Group names in this tenant (replaces them)."})


class UserCreated(UserSchema):
    set_password_link = fields.String(required=True, allow_none=True, metadata={
        "description": "The one-time link to set a password when no mail server is set "
                       "(otherwise it was emailed, and this is null)."})


class MembershipSchema(Schema):
    groups = fields.List(fields.Nested(GroupRef), required=True)
    invitation_uses = fields.List(fields.Nested(Schema.from_dict({
        "invitation_id": fields.Integer(required=True, allow_none=True),
        "invitation_name": fields.String(required=True),
        "used_at": fields.AwareDateTime(required=True),
    }, name="UserInvitationUse")), required=True)


class GroupSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    superuser = fields.Boolean(required=True)
    roles = fields.List(fields.String(), required=True)
    members = fields.Integer(required=True)
    assignable = fields.Boolean(required=True, metadata={
        "description": "May you give this group (on invitations and new users)?"})


class RoleSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    permissions = fields.List(fields.String(), required=True)
    namespaces = fields.List(fields.String(), required=True)
    groups = fields.List(fields.Nested(GroupRef), required=True)


class GroupWrite(Strict):
    """A group's fields for a change: what is left out stays."""

    name = Text(max_length=150, min_length=1)
    superuser = fields.Boolean(metadata={"description": "Members may do everything (only a "
                                                        "superuser makes one)."})
    roles = fields.List(Text(max_length=150), validate=validate.Length(max=100), metadata={
        "description": "Role names bound to the group (replaces the list)."})


class GroupCreate(GroupWrite):
    name = Text(max_length=150, min_length=1, required=True)


class RoleWrite(Strict):
    name = Text(max_length=150, min_length=1)
    description = Text(max_length=500)
    permissions = fields.List(fields.String(validate=validate.OneOf(sorted(PERMISSIONS))),
                              validate=validate.Length(min=1, max=len(PERMISSIONS)))
    namespaces = Namespaces(metadata={"description": "Flow-slug namespaces the role is limited "
                                                     "to (\"sales\" covers sales.emea); empty: "
                                                     "every flow."})
    groups = fields.List(Text(max_length=150), validate=validate.Length(max=100), metadata={
        "description": "Group names the role is bound to (replaces the list)."})


class RoleCreate(RoleWrite):
    name = Text(max_length=150, min_length=1, required=True)
    permissions = fields.List(fields.String(validate=validate.OneOf(sorted(PERMISSIONS))),
                              required=True, validate=validate.Length(min=1, max=len(PERMISSIONS)))


# -- flows -------------------------------------------------------------------------------------


class FlowSchema(FlowRef):
    designation = fields.String(required=True)
    title = fields.String(required=True)


class BlueprintSchema(Schema):
    slug = fields.String(required=True)
    yaml = fields.String(required=True)


class BlueprintImport(Strict):
    blueprint = fields.String(required=True, validate=validate.Length(min=1, max=256 * 1024))
    dry_run = fields.Boolean(load_default=True, metadata={
        "description": "Only report what would change (the default); false applies it."})


class ChangeSchema(Schema):
    model = fields.String(required=True)
    action = fields.String(required=True)
    label = fields.String(required=True)
    details = fields.List(fields.String(), required=True)


class ImportReportSchema(Schema):
    applied = fields.Boolean(required=True)
    summary = fields.String(required=True)
    flows = fields.List(fields.String(), required=True)
    warnings = fields.List(fields.String(), required=True)
    changes = fields.List(fields.Nested(ChangeSchema), required=True)


# -- audit -------------------------------------------------------------------------------------


class AuditArgs(PageArgs):
    action = Text(max_length=60, load_default="")
    actor = Text(max_length=150, load_default="")
    object_type = Text(max_length=40, load_default="")
    q = Text(max_length=200, load_default="")
    since = When()
    until = When()


class AuditEventSchema(Schema):
    id = fields.Integer(required=True)
    action = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)
    actor = fields.String(required=True)
    ip_address = fields.String(required=True)
    object_type = fields.String(required=True)
    object_id = fields.Integer(required=True, allow_none=True)
    object = fields.String(required=True)
    detail = fields.Dict(required=True)


AuditPage = page_of(AuditEventSchema, "AuditEventPage")


# -- me ----------------------------------------------------------------------------------------


class MeSchema(Schema):
    user = fields.Nested(UserRef, required=True)
    token = fields.Nested(Schema.from_dict({
        "id": fields.Integer(required=True), "name": fields.String(required=True),
        "scopes": fields.List(fields.String(validate=validate.OneOf(list(SCOPES))), required=True),
        "expires_at": fields.AwareDateTime(required=True),
    }, name="TokenInfo"), required=True, allow_none=True)


class TenantRef(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)


class PendingInvitationSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    tenant = fields.Nested(TenantRef, required=True, allow_none=True, metadata={
        "description": "null: an invitation to the whole instance (an account in no tenant)."})
    flow = fields.Nested(FlowRef, required=True)
    expires_at = fields.AwareDateTime(required=True, allow_none=True)
    groups = fields.List(fields.Nested(GroupRef), required=True)
    invited_by = fields.String(required=True, allow_none=True)


class AcceptedSchema(Schema):
    invitation_id = fields.Integer(required=True)
    accepted = fields.Boolean(required=True)
    tenant = fields.Nested(TenantRef, required=True, allow_none=True, metadata={
        "description": "null: an invitation to the whole instance (an account in no tenant)."})
    groups = fields.List(fields.Nested(GroupRef), required=True,
                         metadata={"description": "The groups joined now."})


class DeclinedSchema(Schema):
    invitation_id = fields.Integer(required=True)
    declined = fields.Boolean(required=True)


# -- tenants (superadmins) -------------------------------------------------------------------------


class TenantSchema(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    active = fields.Boolean(required=True)
    default = fields.Boolean(required=True, metadata={
        "description": "The default tenant (never deleted)."})
    created_at = fields.AwareDateTime(required=True)


class TenantCreate(Strict):
    name = Text(max_length=150, required=True)
    slug = Text(max_length=63, required=True, metadata={
        "description": "Lower-case letters, digits and hyphens: /t/<slug>/admin/."})


class TenantPatch(Strict):
    """Rename (name, slug) or deactivate/activate (active); what is left out stays."""

    name = Text(max_length=150)
    slug = Text(max_length=63)
    active = fields.Boolean()


class TenantDeleted(Schema):
    id = fields.Integer(required=True)
    deleted = fields.Boolean(required=True)
    removed = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True, metadata={
        "description": "What went with it: invitations, groups, roles, members, flows, stages, "
                       "prompts (accounts stay)."})
