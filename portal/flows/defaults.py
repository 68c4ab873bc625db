"""The flows seeded on first start."""

from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Flow, FlowAuthentication, FlowDesignation, FlowStageBinding, Prompt, Stage

DEFAULT_ENROLLMENT_SLUG = "default-enrollment-flow"
# Not seeded: deleting one's own account is the admin's choice, as in authentik (whose example
# blueprint flows-unenrollment.yaml is not instantiated by default). Importing it adds the flow.
DEFAULT_UNENROLLMENT_SLUG = "default-unenrollment-flow"

# authentik's flows-enrollment-2-stage.yaml, plus an invitation stage in front.
_PROMPTS = [
    ("default-enrollment-field-username", "username", "Username", "username", 0),
    ("default-enrollment-field-password", "password", "Password", "password", 0),
    ("default-enrollment-field-password-repeat", "password_repeat", "Password (repeat)",
     "password", 1),
    ("default-enrollment-field-name", "name", "Name", "text", 0),
    ("default-enrollment-field-email", "email", "Email", "email", 1),
]
_PROMPT_STAGES = {
    "default-enrollment-prompt-first": [
        "default-enrollment-field-username", "default-enrollment-field-password",
        "default-enrollment-field-password-repeat",
    ],
    "default-enrollment-prompt-second": [
        "default-enrollment-field-name", "default-enrollment-field-email",
    ],
}
_BINDINGS = [
    ("default-enrollment-invitation", "invitation", {"continue_flow_without_invitation": False}, 5),
    ("default-enrollment-prompt-first", "prompt", {}, 10),
    ("default-enrollment-prompt-second", "prompt", {}, 11),
    ("default-enrollment-user-write", "user_write", {"user_creation_mode": "always_create"}, 20),
    ("default-enrollment-user-login", "user_login", {}, 100),
]


def _commit_instance_wide(flow: Flow) -> None:
    """Commit a seeded flow, its stages and their prompts as instance-wide (tenant_id NULL),
    usable by every tenant. The column's default names the current tenant on INSERT, so NULL
    is set after the flush."""
    db.session.flush()
    for binding in flow.bindings:
        for prompt in binding.stage.prompts:
            prompt.tenant_id = None
        binding.stage.tenant_id = None
    flow.tenant_id = None
    db.session.commit()


def _get_or_create(model, name: str, **values):
    obj = db.session.scalar(select(model).filter_by(name=name))
    if obj is None:
        obj = model(name=name, **values)
        db.session.add(obj)
    return obj


def _ensure_flow(slug: str, *, name: str, title: str, designation: str, bindings,
                 prompts=(), pages=None, authentication=FlowAuthentication.REQUIRE_UNAUTHENTICATED,
                 link=None) -> Flow:
    """The flow with this slug; created when there is none (an existing one is the admin's and
    stays as it is). `bindings` are (stage name, type, options, order); stages and prompts
    that exist by name are reused as they are. `prompts` are (name, field_key, label, type,
    order), put on the prompt stages `pages` names ({stage name: [prompt names]}); `link(flow)`
    ties the new flow to others once it has ids."""
    flow = db.session.scalar(select(Flow).filter_by(slug=slug))
    if flow is not None:
        return flow
    flow = Flow(slug=slug, name=name, title=title, designation=designation,
                authentication=authentication)
    db.session.add(flow)
    made = {
        prompt: _get_or_create(Prompt, prompt, field_key=key, label=label, type=kind,
                               required=True, placeholder=label, order=order)
        for prompt, key, label, kind, order in prompts
    }
    for stage_name, kind, options, order in bindings:
        stage = _get_or_create(Stage, stage_name, type=kind, options=options)
        if kind == "prompt" and not stage.prompts:
            stage.prompts = [made[p] for p in (pages or {})[stage_name]]
        flow.bindings.append(FlowStageBinding(stage=stage, order=order))
    db.session.flush()
    if link is not None:
        link(flow)
    _commit_instance_wide(flow)
    return flow


def ensure_default_enrollment_flow() -> Flow:
    """Create the default enrollment flow unless a flow with its slug exists (admins may edit it)."""
    return _ensure_flow(DEFAULT_ENROLLMENT_SLUG, name="Default enrollment Flow",
                        title="Welcome! Set up your account",
                        designation=FlowDesignation.ENROLLMENT, bindings=_BINDINGS,
                        prompts=_PROMPTS, pages=_PROMPT_STAGES)


DEFAULT_AUTHENTICATION_SLUG = "default-authentication-flow"

# authentik's default-authentication-flow: identification, then password, then user login.
_AUTHENTICATION_BINDINGS = [
    ("default-authentication-identification", "identification",
     {"user_fields": ["username", "email"], "pretend_user_exists": True,
      "show_matched_user": True}, 10),
    ("default-authentication-password", "password", {"failed_attempts_before_cancel": "5"}, 20),
    # A code from the person's authenticator, when they have one (skipped for everyone else).
    ("default-authentication-mfa-validation", "authenticator_validate",
     {"device_classes": ["totp", "static"], "not_configured_action": "skip"}, 30),
    ("default-authentication-login", "user_login", {"session_duration": "seconds=0"}, 100),
]


def ensure_default_authentication_flow() -> Flow:
    """Create the sign-in flow unless a flow with its slug exists (admins may edit it: add a
    consent, a deny with a condition, MFA). Called by `flask seed` (which `make run` and `make serve` run at
    start) and by /auth/login, so an install upgraded without seeding still has its sign-in page.
    Its identification links the recovery flow ("Forgot password?"), created with it."""
    return _ensure_flow(DEFAULT_AUTHENTICATION_SLUG, name="Default authentication flow",
                        title="Sign in", designation=FlowDesignation.AUTHENTICATION,
                        bindings=_AUTHENTICATION_BINDINGS,
                        link=lambda _flow: _link_from_sign_in(ensure_default_recovery_flow()))


DEFAULT_RECOVERY_SLUG = "default-recovery-flow"
_SIGN_IN_IDENTIFICATION = _AUTHENTICATION_BINDINGS[0][0]

# authentik's flows-recovery-email-verification.yaml: who (identification, never saying whether
# the account exists), a link to the account's address, the new password twice, written onto
# that account (never a new one), signed in.
_RECOVERY_PROMPTS = [
    ("default-recovery-field-password", "password", "Password", "password", 0),
    ("default-recovery-field-password-repeat", "password_repeat", "Password (repeat)",
     "password", 1),
]
_RECOVERY_BINDINGS = [
    ("default-recovery-identification", "identification",
     {"user_fields": ["email", "username"], "pretend_user_exists": True,
      "show_matched_user": False}, 10),
    ("default-recovery-email", "email",
     {"subject": "Reset your password", "template": "email/password_reset.html",
      "token_expiry": "minutes=30", "activate_user_on_success": False,
      "use_global_settings": True}, 20),
    ("Change your password", "prompt", {}, 30),
    ("default-recovery-user-write", "user_write", {"user_creation_mode": "never_create"}, 40),
    ("default-recovery-user-login", "user_login", {}, 100),
]


def _link_from_sign_in(recovery: Flow) -> None:
    """The seeded sign-in page's "Forgot password?" opens `recovery`, unless it links one."""
    sign_in = db.session.scalar(select(Stage).filter_by(name=_SIGN_IN_IDENTIFICATION))
    if sign_in is not None and not (sign_in.options or {}).get("recovery_flow"):
        sign_in.options = {**(sign_in.options or {}), "recovery_flow": recovery.id}


def ensure_default_recovery_flow() -> Flow:
    """Create the recovery flow ("Forgot password?") unless a flow with its slug exists. Created
    on an install whose sign-in flow was seeded earlier, it is linked from the seeded sign-in
    page unless that already links a recovery flow. Called by `flask seed` and with the sign-in
    flow."""
    return _ensure_flow(DEFAULT_RECOVERY_SLUG, name="Default recovery flow",
                        title="Reset your password", designation=FlowDesignation.RECOVERY,
                        bindings=_RECOVERY_BINDINGS, prompts=_RECOVERY_PROMPTS,
                        pages={"Change your password": [p[0] for p in _RECOVERY_PROMPTS]},
                        link=_link_from_sign_in)


DEFAULT_TOTP_SETUP_SLUG = "default-authenticator-totp-setup"


def ensure_default_authenticator_setup_flow() -> Flow:
    """The stage-configuration flow the account page's "Set up an authenticator" runs
    (authentik's default-authenticator-totp-setup), unless a flow with its slug exists."""

    def configures_itself(flow: Flow) -> None:
        stage = flow.bindings[0].stage
        stage.options = {**stage.options, "configure_flow": flow.id}

    return _ensure_flow(DEFAULT_TOTP_SETUP_SLUG, name="default-authenticator-totp-setup",
                        title="Set up an authenticator app",
                        designation=FlowDesignation.STAGE_CONFIGURATION,
                        authentication=FlowAuthentication.REQUIRE_AUTHENTICATED,
                        bindings=[("default-authenticator-totp-setup", "authenticator_totp",
                                   {"digits": "6", "friendly_name": ""}, 0)],
                        link=configures_itself)


def unenrollment_flow() -> Flow | None:
    """The flow the account page's "Delete my account" opens: authentik's default slug first,
    else the oldest flow designated for unenrollment; None when there is none."""
    return db.session.scalar(
        select(Flow).where(Flow.designation == FlowDesignation.UNENROLLMENT)
        .order_by((Flow.slug != DEFAULT_UNENROLLMENT_SLUG), Flow.id).limit(1))
