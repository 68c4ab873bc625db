"""User write stage: creates the user, applies the invitation and consumes it, in one transaction."""

from __future__ import annotations

import logging
import re

from sqlalchemy.exc import IntegrityError, OperationalError

from ... import tenants
from ...audit import Action, record_event
from ...auth.service import end_sessions, mark_email_verified, username_problem
from ...extensions import db
from ...invitations.service import REFUSALS, domain_message, email_problem, redeem, refusal_for
from ...models import InvitationUse, User, UserType
from ..context import is_private, noted
from . import registry
from .base import Deny, Next, Retry, StageType
from .email import VERIFIED, is_verified
from .invitation import record_refusal
from .options import BOOL, CHOICE, GROUP, TEXT, Option, OptionError

log = logging.getLogger(__name__)

# prompt_data keys that are columns of User; everything else becomes an attribute.
USER_FIELDS = ("username", "name", "email")
LOCK_RETRIES = 5
USER_CREATION_MODES = (("always_create", "Always create a new user"),
                       ("create_when_required", "Create a user when there is none"),
                       ("never_create", "Never create a user; update the pending one"))
PATH = re.compile(r"^$|^(?!.*(^|/)\.\.?(/|$))[\w.-]+(/[\w.-]+)*$")


def _check_path(value) -> None:
    if not PATH.match(str(value)):
        raise OptionError("Use a path such as users/internal.")


class UserWriteStage(StageType):
    type_name = "user_write"
    label = "User write"
    description = "Creates the account from the answers and consumes the invitation."
    model = "authentik_stages_user_write.userwritestage"
    declared_options = (
        Option("user_creation_mode", CHOICE, "User creation", default="always_create",
               choices=USER_CREATION_MODES,
               help="Update: the account the flow found (identification) or the signed-in "
                    "person. Never create suits recovery (a new password) and profile flows."),
        Option("create_users_as_inactive", BOOL, "Create users as inactive", default=False,
               help="They cannot sign in until activated (e.g. by an email verification stage)."),
        Option("create_users_group", GROUP, "Add new users to group", assigns=True),
        Option("user_type", CHOICE, "User type", default=UserType.INTERNAL,
               choices=tuple((c, c.capitalize()) for c in UserType.CHOICES),
               unknown_choice="is not a portal user type; new users become internal"),
        Option("user_path_template", TEXT, "User path", default="", max_length=255,
               validate=_check_path,
               help="Where new users are filed, e.g. users/internal/engineering. Default: users."),
    )

    def run(self, ctx) -> Next | Retry | Deny:
        if ctx.session.user_id is not None:  # already written (e.g. a reload after a crash)
            return Next()
        # One transaction for the whole final write: this page's answers and progress, the
        # invitation's guarded UPDATE, the user, its use, the audit events. (No commit before:
        # SQLite opens the transaction at its first write, so no read snapshot is held before
        # the write lock is taken.) A rollback below would drop the answers with the rest, so
        # they are put back each time; the retry and the page it sends to still have them.
        answers = _answers(ctx.session)
        mode = self.options.get("user_creation_mode") or "always_create"
        # authentik's modes: always a new account; the pending one when there is one; or only
        # ever the pending one (a recovery flow's new password must never become a new account).
        pending = ctx.pending_user() if mode != "always_create" else None
        if pending is None and mode == "never_create":
            return Deny("There is no account to update",
                        "This page changes an existing account, and it does not know which one. "
                        "Start again from the beginning (sign in, or ask for a recovery link).",
                        400)
        for _ in range(LOCK_RETRIES):
            try:
                return (self._update(ctx, pending, answers) if pending is not None
                        else self._write(ctx, answers))
            except OperationalError as exc:  # SQLite "database is locked": try again
                _rollback_keeping(ctx.session, answers)
                log.warning("user write retried after %s", type(exc).__name__)
        return Deny("Please try again", "The server is busy; reload this page to try again.", 503)

    def _write(self, ctx, answers: dict) -> Next | Retry | Deny:
        if not str(ctx.prompt_data.get("username", "") or "").strip():
            # Nothing asked for a username (a flow whose only stage writes, or a GET before any
            # answer): refuse before the invitation or a nameless account is written.
            return Deny("This sign-up page cannot create accounts yet",
                        "It does not ask for a username. The administrator needs to add a "
                        "username field to this flow.", 503)
        session = ctx.session
        invitation_id = session.invitation_id
        problem = email_problem(ctx.invitation, ctx.prompt_data.get("email"))
        if problem == "domain":
            record_refusal(ctx, "email_domain")
            db.session.commit()
            return Retry({"email": [domain_message(ctx.invitation)]})
        if problem == "wrong_email":
            refusal = REFUSALS["wrong_email"]
            record_refusal(ctx, refusal.reason)
            return Deny(refusal.title, refusal.message, refusal.status)
        problem = username_problem(str(ctx.prompt_data.get("username", "")),
                                   str(ctx.prompt_data.get("email", "") or ""))
        if problem:  # also checked on the prompt page; here with the address known for sure
            return Retry({"username": [problem]})
        if invitation_id is not None and not redeem(invitation_id, ctx.flow.id):
            _rollback_keeping(session, answers)
            refusal = refusal_for(ctx.invitation, ctx.flow, token_supplied=True) or REFUSALS["used up"]
            record_refusal(ctx, refusal.reason)
            return Deny(refusal.title, refusal.message, refusal.status)
        if invitation_id is None and session.token_supplied:
            refusal = REFUSALS["unknown"]
            return Deny(refusal.title, refusal.message, refusal.status)

        # The access the invitation carries (loaded before the new user exists: no autoflush).
        invitation = ctx.invitation
        if invitation is not None:
            list(invitation.groups), [d.role for d in invitation.direct_roles]  # noqa: B018
        user = build_user(ctx.prompt_data, self.options)
        user.password_hash = session.password_hash
        user.groups.extend(self.assigned_groups())
        if is_verified(session) or (invitation is not None and invitation.email):
            # An email stage confirmed this address earlier in the flow, or the invitation was
            # addressed to it (email_problem held it to that address): it is proven.
            mark_email_verified(user, noted(session, VERIFIED) or invitation.email)
        db.session.add(user)
        if invitation_id is not None:
            db.session.add(InvitationUse(invitation_id=invitation_id, user=user))
        try:
            db.session.flush()
        except IntegrityError:
            _rollback_keeping(session, answers)
            return Retry({"username": ["This username was taken a moment ago; choose another."]})
        tenants.grant_invitation_access(user, invitation, flow=ctx.flow, new_account=True)
        session.user_id = user.id
        session.password_hash = None  # the hash now lives on the user only
        ctx.set_pending_user(user)  # later stages (user login, consent) act on this account
        registry.after_user_created(ctx, user)  # e.g. consent attaches its records
        ip = ctx.client_ip
        record_event(Action.USER_CREATED, actor=user, ip=ip, obj=user,
                     detail={"flow": ctx.flow.slug, "groups": [g.name for g in user.groups]})
        if ctx.invitation is not None:
            record_event(Action.INVITATION_USED, actor=user, ip=ip, obj=ctx.invitation,
                         detail={"user": user.username})
        # Committed with the flow's step (FlowExecutor), in this same transaction: the rest of
        # the flow's progress (the sign-in stage, the end) is written with it, in one UPDATE.
        return Next()

    def _update(self, ctx, user: User, answers: dict) -> Next | Retry | Deny:
        """Write the answers onto the pending account: its username, name, email, attributes and
        password (what the flow asked for). A new password ends the account's sessions, as every
        password change does; a signed-in visitor's own browser is signed in again at the end.
        Groups and the invitation are for new accounts only (authentik's create_users_group)."""
        if not user.active:
            return Deny("This account is deactivated",
                        "It cannot be changed here. Ask an administrator for help.", 403)
        data = ctx.prompt_data
        username = str(data.get("username", "") or "").strip() or user.username
        email = str(data.get("email", "") or "").strip() if "email" in data else user.email
        if (username, email) != (user.username, user.email):
            problem = username_problem(username, email, account=user)
            if problem:
                return Retry({"username": [problem]})
        changed = sorted(k for k in ("username", "name", "email")
                         if k in data and str(data[k] or "").strip() != getattr(user, k))
        user.username, user.email = username, email
        if "name" in data:
            user.name = str(data.get("name") or "")
        extra = build_user(data, self.options).attributes
        if extra:
            attributes = dict(user.attributes or {})
            _merge(attributes, extra)
            user.attributes = attributes
            changed.append("attributes")
        ip = ctx.client_ip
        if ctx.session.password_hash:
            user.password_hash = ctx.session.password_hash
            ctx.session.password_hash = None  # the hash now lives on the user only
            end_sessions(user)  # whoever held a session (maybe the reason for a recovery) is out
            signed_in = ctx.current_user_id == user.id
            record_event(Action.PASSWORD_CHANGED if signed_in else Action.PASSWORD_SET,
                         actor=user, ip=ip, obj=user, detail={"flow": ctx.flow.slug})
            if signed_in:
                ctx.login_user_id = user.id  # this browser stays signed in; the others end
        if changed:
            record_event(Action.USER_UPDATED, actor=user, ip=ip, obj=user,
                         detail={"flow": ctx.flow.slug, "fields": changed})
        try:
            db.session.flush()
        except IntegrityError:
            _rollback_keeping(ctx.session, answers)
            return Retry({"username": ["This username was taken a moment ago; choose another."]})
        ctx.session.user_id = user.id
        ctx.set_pending_user(user)
        db.session.commit()
        return Next()


# What the flow session holds in memory before the final write (this request's answers, its
# progress): put back after a rollback, which would otherwise reset them to the stored row.
_KEPT = ("prompt_data", "fixed_fields", "position", "errors", "password_hash")


def _answers(session) -> dict:
    return {key: getattr(session, key) for key in _KEPT}


def _rollback_keeping(session, answers: dict) -> None:
    db.session.rollback()
    for key, value in answers.items():
        setattr(session, key, value)


def build_user(prompt_data: dict, options: dict) -> User:
    """A new user from the collected values: known fields to columns, the rest to attributes."""
    attributes: dict = {}
    for key, value in prompt_data.items():
        if key in USER_FIELDS or is_private(key):
            continue
        if key == "attributes" and isinstance(value, dict):
            _merge(attributes, value)
        elif key.startswith("attributes."):
            _set_path(attributes, key.removeprefix("attributes.").split("."), value)
        else:
            attributes[key] = value
    user_type = options.get("user_type", UserType.INTERNAL)
    return User(
        username=str(prompt_data.get("username", "")).strip(),
        name=str(prompt_data.get("name", "") or ""),
        email=str(prompt_data.get("email", "") or ""),
        attributes=attributes,
        active=not options.get("create_users_as_inactive", False),
        type=user_type if user_type in UserType.CHOICES else UserType.INTERNAL,
        path=options.get("user_path_template") or "users",
    )


def _merge(target: dict, source: dict) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _set_path(target: dict, parts: list[str], value) -> None:
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
