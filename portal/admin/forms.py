from __future__ import annotations

import re
from datetime import UTC, datetime

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Field,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.utils import unset_value
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from ..access import PERMISSIONS
from ..forms import Email
from ..invitations.attributes import parse_attributes
from ..numbers import db_int


class YamlObject:
    """The field holds attributes (YAML or JSON); the parsed dict is kept in `field.parsed`."""

    def __call__(self, form, field):
        try:
            field.parsed = parse_attributes(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def split_addresses(text: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or new lines."""
    return [part for part in re.split(r"[\s,;]+", text or "") if part]


def normalise_address(address: str) -> str:
    """The normalised address, or ValueError with the reason."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not a valid email address ({exc}).") from None


class AddressList:
    """Validate every address of a list field; keep the normalised list in `field.addresses`."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit

    def __call__(self, form, field):
        field.addresses = []
        for address in split_addresses(field.data):
            try:
                normalised = normalise_address(address)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None
            if normalised.lower() not in {a.lower() for a in field.addresses}:
                field.addresses.append(normalised)
        if len(field.addresses) > self.limit:
            raise ValidationError(f"At most {self.limit} addresses here; use bulk invite for more.")


class DomainList:
    def __call__(self, form, field):
        field.domains = []
        for domain in split_addresses(field.data):
            from ..invitations.service import domain_problem

            domain = domain.lower().lstrip("@")
            problem = domain_problem(domain)
            if problem:
                raise ValidationError(problem)
            field.domains.append(domain)


def _check_expiry(field, *, unchanged_from: datetime | None = None) -> None:
    """The one expiry rule (portal.invitations.scope.expiry_problem) as a field error."""
    from ..invitations.scope import expiry_problem

    value = field.data.replace(tzinfo=UTC) if field.data is not None else None
    problem = expiry_problem(value, unchanged_from=unchanged_from)
    if problem:
        raise ValidationError(problem)


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (easier than a multi-select, with and without a mouse)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PerRoleNamespacesField(Field):
    """One namespaces input per role, posted as `<name>-<role id>` (keyed by the role, not by
    its place in the list, so a role added meanwhile shifts nothing). `data`: {role id: text as
    typed}; `role_errors`: {role id: [message]} for the inputs' own errors."""

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.process_errors, self.role_errors = [], {}
        self.data = dict(data) if isinstance(data, dict) else {}
        if formdata is not None:
            prefix = f"{self.name}-"
            for key in formdata:
                if key.startswith(prefix) and key[len(prefix):].isdigit():
                    self.data[int(key[len(prefix):])] = formdata.get(key) or ""

    def _value(self):  # not rendered as one input (see templates/admin/invitations/_roles.html)
        return ""


def namespace_list(text: str) -> list[str]:
    """The namespaces typed in one input: separated by commas or spaces, each once."""
    return list(dict.fromkeys(split_addresses(text)))


class DirectRoleFields:
    """Kestra's "attach a role": roles held directly, each optionally limited to its own
    namespaces (one input per role row); on the create, edit and bulk forms. The form checks
    each ticked role with the one rule (portal.access.ceiling.direct_role_problem) and keeps
    the result in `direct_roles`: [(Role, namespaces)]."""

    roles = MultiCheckboxField("Roles given directly", coerce=int,
                               description="Held in this tenant without a group (Kestra's "
                                           "“attach a role”). Each can be limited to "
                                           "namespaces within its own, e.g. sales, hr.")
    role_namespaces = PerRoleNamespacesField("Namespaces of the roles")

    def _init_roles(self, roles, grants) -> None:
        self.roles.choices = [(r.id, r.name) for r in roles]
        self.role_objects = {r.id: r for r in roles}
        self._grants = grants
        self.direct_roles: list = []

    def fill_direct_roles(self, attached) -> None:
        """Tick and fill the rows from stored (role, namespaces) pairs."""
        self.roles.data = [role.id for role, _ in attached]
        self.role_namespaces.data = {role.id: ", ".join(ns or []) for role, ns in attached}

    def validate_role_namespaces(self, field):
        from ..access import Grants
        from ..access.ceiling import direct_role_problem

        self.direct_roles = []
        problems = []
        for role_id, text in field.data.items():
            if len(text) > 2000:
                field.role_errors[role_id] = ["At most 2000 characters."]
        for role_id in self.roles.data or []:
            role = self.role_objects.get(role_id)
            if role is None:  # not offered: the checkbox field says so
                continue
            namespaces = namespace_list(field.data.get(role_id, ""))
            problem = field.role_errors.get(role_id, [None])[0] or direct_role_problem(
                self._grants or Grants(), role, namespaces)
            if problem:
                field.role_errors[role_id] = [problem]
                problems.append(problem if role.name in problem else f"{role.name}: {problem}")
            else:
                self.direct_roles.append((role, namespaces))
        if problems:
            raise ValidationError(" ".join(problems))


class InvitationForm(DirectRoleFields, FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=255)],
                       description="For you and other admins; the invitee does not see it.")
    expires = DateTimeLocalField(
        "Expires (UTC)", format="%Y-%m-%dT%H:%M",
        validators=[InputRequired("Choose when the invitation expires.")],
    )
    flow = SelectField("Flow", coerce=int,
                       validators=[InputRequired("Choose the enrollment flow.")],
                       description="The invitation works only on this flow.")
    attributes = TextAreaField(
        "Attributes", validators=[YamlObject()], render_kw={"rows": 6, "spellcheck": "false"},
        description="Optional YAML or JSON object. Keys that match a field (such as email or "
                    "name) pre-fill it and cannot be changed by the invitee; everything lands "
                    "in the new user's attributes.",
    )
    single_use = BooleanField("Single use", description="The link stops working after one enrollment.")
    max_uses = IntegerField(
        "Maximum uses", validators=[Optional(), NumberRange(min=1, max=1_000_000)],
        description="Optional. The link stops working after this many enrollments.",
    )
    allowed_domains = StringField(
        "Allowed email domains", validators=[Length(max=2000), DomainList()],
        description="Optional, e.g. example.com, example.org. Enrollment accepts only addresses "
                    "at these domains.",
    )
    groups = MultiCheckboxField("Groups", coerce=int,
                                description="Given to each person who enrolls with this invitation.")
    message = TextAreaField("Personal message", validators=[Length(max=2000)],
                            render_kw={"rows": 3},
                            description="Optional; included in the email.")
    submit = SubmitField("Save")

    def __init__(self, *args, flows=(), groups=(), roles=(), grants=None,
                 original_expiry: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flow.choices = [(f.id, f"{f.name} ({f.slug})") for f in flows]
        self.groups.choices = [(g.id, g.name) for g in groups]
        self._init_roles(roles, grants)
        self._original_expiry = original_expiry

    def validate_expires(self, field):
        _check_expiry(field, unchanged_from=self._original_expiry)

    @property
    def expires_at(self) -> datetime:
        return self.expires.data.replace(tzinfo=UTC)


# The create form's two modes (its tabs): the kind it posts, and the tab's name in ?mode=.
INVITATION_KINDS = {"link": "One link to share", "recipients": "Specific people"}
MODE_OF_KIND = {"link": "link", "recipients": "people"}


class NewInvitationForm(InvitationForm):
    """Creating: one link for a group, or to specific people (one invitation each, emailed).

    The page shows one mode at a time, chosen by tabs that are plain links; the form carries the
    mode in a hidden field, so it works without JavaScript and a post says which it is."""

    kind = HiddenField()
    to = TextAreaField("To", validators=[Length(max=20000), AddressList()], render_kw={"rows": 2},
                       description="One or more addresses, separated by commas or new lines. "
                                   "Each gets their own invitation, usable only with that address.")
    cc = StringField("CC", validators=[Length(max=2000), AddressList(10)])
    bcc = StringField("BCC", validators=[Length(max=2000), AddressList(10)])
    # Only on the instance's pages (/instance/invitations/): the views remove it elsewhere.
    grants_superuser = BooleanField(
        "Make them instance superadmins",
        description="Whoever enrolls with (or accepts) this invitation may do everything on "
                    "every tenant, as you may.")
    submit = SubmitField("Create invitation")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name.validators = [Length(max=255)]
        self.name.flags.required = False
        self.name.description = ("For you and other admins. Optional for specific people "
                                 "(their address is used).")
        if self.is_submitted() and self.kind.data not in INVITATION_KINDS:
            self.kind.data = "link"  # a POST without a choice (scripts, older clients): a link

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.kind.data == "recipients":
            if ok and not getattr(self.to, "addresses", []):
                self.to.errors.append("Enter at least one address.")
                ok = False
        elif not (self.name.data or "").strip():
            self.name.errors.append("Give the link a name so you can find it later.")
            ok = False
        return ok


class BulkInvitationForm(DirectRoleFields, FlaskForm):
    text = TextAreaField(
        "Addresses or CSV", render_kw={"rows": 10, "spellcheck": "false"},
        description="Paste one address per line (\"Name <address>\" works too), or CSV with a header "
                    "line: email, name, groups (separated by ;), attributes (a JSON object).",
    )
    upload = FileField("…or upload a CSV file", render_kw={"accept": ".csv,text/csv"})
    flow = SelectField("Flow", coerce=int, validators=[InputRequired("Choose the enrollment flow.")])
    expires = DateTimeLocalField("Expires (UTC)", format="%Y-%m-%dT%H:%M",
                                 validators=[InputRequired("Choose when the invitations expire.")])
    groups = MultiCheckboxField("Groups for everyone", coerce=int)
    message = TextAreaField("Personal message", validators=[Length(max=2000)], render_kw={"rows": 3})
    # Only on the instance's pages (/instance/invitations/): the views remove it elsewhere.
    grants_superuser = BooleanField(
        "Make them instance superadmins",
        description="Whoever enrolls with (or accepts) this invitation may do everything on "
                    "every tenant, as you may.")
    preview = SubmitField("Preview")
    confirm = SubmitField("Create invitations")

    def __init__(self, *args, flows=(), groups=(), roles=(), grants=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flow.choices = [(f.id, f"{f.name} ({f.slug})") for f in flows]
        self.groups.choices = [(g.id, g.name) for g in groups]
        self._init_roles(roles, grants)

    def validate_expires(self, field):
        _check_expiry(field)

    def validate_text(self, field):
        problem = bulk_size_problem(len((field.data or "").encode("utf-8")), "The pasted text")
        if problem:
            raise ValidationError(problem)


def bulk_size_problem(size: int, what: str) -> str | None:
    """Why a bulk CSV of this many bytes is refused (BULK_INVITE_MAX_BYTES), or None."""
    limit = current_app.config["BULK_INVITE_MAX_BYTES"]
    if size <= limit:
        return None
    shown = f"{limit / 1024 / 1024:g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} kB"
    return f"{what} is larger than {shown} ({limit:,} bytes); split it."


class ExpiryForm(FlaskForm):
    """Resend and extend: both ask for the new expiry."""

    expires = DateTimeLocalField("New expiry (UTC)", format="%Y-%m-%dT%H:%M",
                                 validators=[InputRequired("Choose the new expiry.")])
    submit = SubmitField("Confirm")

    def validate_expires(self, field):
        _check_expiry(field)

    @property
    def expires_at(self) -> datetime:
        return self.expires.data.replace(tzinfo=UTC)


class BulkActionForm(FlaskForm):
    action = SelectField("With the selected", choices={"revoke": "Revoke", "delete": "Delete"})
    ids = SelectMultipleField("Invitations", coerce=db_int, validate_choice=False)
    submit = SubmitField("Apply")


class DirectUserForm(FlaskForm):
    username = StringField("Username", validators=[
        DataRequired(), Length(max=150),
        Regexp(r"^[\w.@+-]+$", message="Use letters, digits and @ . + - _ only."),
    ])
    name = StringField("Name", validators=[Length(max=255)])
    email = StringField("Email", validators=[DataRequired(), Length(max=320), Email()],
                        render_kw={"type": "email"},
                        description="The link to set a password is sent here.")
    groups = MultiCheckboxField("Groups", coerce=int)
    sign_in_with = SelectField("Signs in with", default="", choices=[],
                               description="A source: SSO only, no password and no link; the "
                                           "account is linked at the first sign-in by the "
                                           "provider's verified email.")
    submit = SubmitField("Create user")

    def __init__(self, *args, groups=(), sources=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.groups.choices = [(g.id, g.name) for g in groups]
        self.sign_in_with.choices = {"": "A password (they get a link to set it)",
                                     **{str(s.id): f"{s.name} only (SSO)" for s in sources}}


class AddMemberForm(DirectRoleFields, FlaskForm):
    """A superadmin adds an existing account to this tenant (portal.tenants.add_existing_member)."""

    account = StringField("Username or email", validators=[DataRequired(), Length(max=320)],
                          description="An account that exists already (of any tenant).")
    groups = MultiCheckboxField("Groups", coerce=int)
    submit = SubmitField("Add to tenant")

    def __init__(self, *args, groups=(), roles=(), grants=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.groups.choices = [(g.id, g.name) for g in groups]
        self._init_roles(roles, grants)


class RoleForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=150)])
    description = StringField("Description", validators=[Length(max=500)])
    permissions = MultiCheckboxField("Permissions", choices=dict(PERMISSIONS),
                                     validators=[DataRequired("Choose at least one permission.")])
    namespaces = StringField(
        "Namespaces", validators=[Length(max=2000)],
        description="Optional, separated by commas. Limits the role to flows whose slug is a "
                    "namespace or starts with it and a dot or dash (\"sales\" covers sales.emea). "
                    "Empty: every flow.",
    )
    groups = MultiCheckboxField("Bound to groups", coerce=int)
    submit = SubmitField("Save role")

    def __init__(self, *args, groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.groups.choices = [(g.id, g.name) for g in groups]


class GroupForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=150)])
    is_superuser = BooleanField("Superuser group", description="Members may do everything.")
    submit = SubmitField("Save group")


class ConfirmForm(FlaskForm):
    """An empty form: its CSRF token is what protects a POST-only action."""

    submit = SubmitField("Confirm")


def _optional_int(value):
    return int(value) if value not in (None, "", "None") else None


class SourceForm(FlaskForm):
    """An OpenID Connect source. The client secret is write-only: never shown again; left
    blank on a change, the stored one is kept."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100)],
                       description='Shown as "Sign in with <name>".')
    slug = StringField("Slug", validators=[DataRequired(), Length(max=50)],
                       description="Part of the redirect URI: /source/oidc/<slug>/callback.")
    enabled = BooleanField("Enabled", default=True)
    issuer = StringField("Issuer URL", validators=[DataRequired(), Length(max=500)],
                         description="Its /.well-known/openid-configuration is fetched (and "
                                     "cached for an hour).")
    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255)])
    client_secret = PasswordField("Client secret", validators=[Length(max=2000)],
                                  description="Stored encrypted; never shown again. Leave blank "
                                              "to keep the stored one.")
    scopes = StringField("Scopes", default="openid email profile",
                         validators=[DataRequired(), Length(max=500)])
    claim_username = StringField("Username claim", default="preferred_username",
                                 validators=[Length(max=100)])
    claim_email = StringField("Email claim", default="email", validators=[Length(max=100)])
    claim_name = StringField("Name claim", default="name", validators=[Length(max=100)])
    claim_groups = StringField("Groups claim", validators=[Length(max=100)],
                               description="The claim holding the person's groups at the "
                                           "provider (e.g. groups); the group map below uses it.")
    group_map = TextAreaField(
        "Group map", validators=[Length(max=10000)],
        description="One line per group: provider group → portal group (-> works too), e.g. "
                    "“engineering → Staff”. The portal groups named here follow the provider: "
                    "added at enrollment and at each sign-in, taken away at sign-in when the "
                    "provider stops sending them. Other groups are never touched. A tenant's "
                    "source names that tenant's groups; an instance-wide one, groups of the "
                    "tenant the sign-in or invitation acts in.")
    use_userinfo = BooleanField("Read the userinfo endpoint", default=True)
    matching_mode = SelectField("Returning identities", choices=[])
    enrollment_flow_id = SelectField("Enrollment flow for new identities", coerce=_optional_int,
                                     choices=[])
    authoritative_fields = MultiCheckboxField(
        "Read-only in the enrollment flow", choices={"username": "Username", "email": "Email",
                                                     "name": "Name"},
        default=["email"], description="The provider is authoritative for these (the email "
                                       "is always read-only: it is what links the account).")
    show_on_login = BooleanField("Offer on sign-in and invitation pages", default=True)
    instance_wide = BooleanField("Instance-wide", default=True,
                                 description="Offered in every tenant. Unticked, the source "
                                             "belongs to this tenant: offered only in its flows "
                                             "and invitations, and managed by its admins.")
    submit = SubmitField("Save source")

    def __init__(self, *args, flows=(), **kwargs):
        from ..models import MatchingMode

        super().__init__(*args, **kwargs)
        self.matching_mode.choices = dict(MatchingMode.CHOICES)
        self.enrollment_flow_id.choices = {"": "— none: unknown identities are refused —",
                                           **{f.id: f"{f.slug} ({f.name})" for f in flows}}
