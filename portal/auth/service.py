"""Accounts: authentication, sessions, first-admin setup and one-time action tokens. No HTTP here."""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select, update

from .. import tenants
from ..extensions import db
from ..models import ActionToken, Group, TokenPurpose, User, utcnow
from ..security import tokens
from ..security.passwords import hash_password, needs_rehash, verify_password


class AccountError(ValueError):
    """A rule about accounts was broken; the message is meant for the person. `field`: the
    field it is about when it is about what was typed (None: about the account itself)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


# -- sessions: when a sign-in stops being valid ---------------------------------------------


def load_user(session_id: str) -> User | None:
    """The user a sign-in session belongs to, while it is still theirs.

    The session carries "<id>:<generation>" (User.get_id). Raising the generation (end_sessions)
    makes every earlier session, and any copy of its cookie, load nobody; so does deactivating
    the account. A bare id, from before generations existed, is refused too.
    """
    user_id, _, generation = (session_id or "").partition(":")
    if not (user_id.isdigit() and generation.isdigit()) or len(session_id) > 40:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_generation != int(generation):
        return None
    return user


def session_expired(signed_in_at, seen_at, now: float, *, idle: timedelta,
                    absolute: timedelta) -> bool:
    """The idle and absolute timeouts (SESSION_IDLE_TIMEOUT, SESSION_ABSOLUTE_TIMEOUT).

    Times are seconds since the epoch. A session without them (one from before this rule, or
    one a remember-me cookie would make) has expired.
    """
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (signed_in_at, seen_at)):
        return True
    return now - seen_at > idle.total_seconds() or now - signed_in_at > absolute.total_seconds()


def end_sessions(user: User) -> None:
    """End every session of this user, on every device, at its next request.

    In the caller's transaction. Sign-out, "sign out everywhere", a password change or reset
    and deactivation all come here.
    """
    user.session_generation = (user.session_generation or 0) + 1


def end_pending_steps(user: User) -> None:
    """Deactivation also ends what was sent or started before it, in the caller's transaction:
    a verification link would activate the account again, a set-password link would set a
    password, and an unfinished flow would go on to sign the person in."""
    from ..models import FlowSession

    now = utcnow()
    db.session.execute(update(ActionToken).where(ActionToken.user_id == user.id,
                                                 ActionToken.used_at.is_(None)).values(used_at=now))
    db.session.execute(update(FlowSession).where(FlowSession.user_id == user.id,
                                                 FlowSession.finished_at.is_(None))
                       .values(finished_at=now))


# -- sign-in identifiers ----------------------------------------------------------------------

EMAIL_SHAPED = "@"


USER_FIELDS = ("username", "email")


def normalise_email(address: str | None) -> str:
    """An address as compared everywhere: NFKC (a fullwidth "＠" is an "@"), trimmed, casefolded."""
    return unicodedata.normalize("NFKC", (address or "").strip()).casefold()


def same_email(a: str | None, b: str | None) -> bool:
    """Two non-empty addresses that name the same mailbox (normalise_email)."""
    return bool(normalise_email(a)) and normalise_email(a) == normalise_email(b)


def verified_email(user: User | None) -> str | None:
    """The account's address if a verification proved it (and it has not changed since), else
    None. The one answer for "may this account act as the owner of that address"."""
    if user is None or not same_email(user.email, user.verified_email):
        return None
    return user.email


def mark_email_verified(user: User, address: str | None) -> None:
    """A proof of `address` arrived (a verification link opened, a recipient-bound invitation
    used): it counts for the account while its address is that one."""
    if same_email(user.email, address):
        user.verified_email = user.email


def find_user(login: str, *, by: tuple[str, ...] | list[str] = USER_FIELDS) -> User | None:
    """The one account a sign-in identifier names.

    With an "@" it is an email address: the account with that address (the oldest, should
    several share it), or only when no account has it, a legacy username that looks like one.
    Anything else is a username. So a username can never capture another person's address;
    username_problem keeps new usernames from trying. `by` narrows the lookup to the fields a
    sign-in page asks for (the identification stage's user_fields).
    """
    login = (login or "").strip().lower()
    if not login:
        return None
    if EMAIL_SHAPED in login and "email" in by:
        owner = db.session.scalar(
            select(User).where(func.lower(User.email) == login).order_by(User.id).limit(1)
        )
        if owner is not None:
            return owner
    if "username" not in by:
        return None
    return db.session.scalar(select(User).where(func.lower(User.username) == login).limit(1))


def sign_in_budget_key(login: str) -> str:
    """One failed-sign-in budget per account, whichever identifier names it.

    "user:<id>" for an account (its username and its address share it), else a digest of the
    typed text, so the limiter's store holds no identifiers.
    """
    user = find_user(login)
    if user is not None:
        return f"user:{user.id}"
    canonical = (login or "").strip().lower()
    return "login:" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def username_problem(username: str, email: str | None, *, account: User | None = None) -> str | None:
    """Why this username may not be given to an account with this address, or None.

    Every path that sets a username calls this (wizard, admin form, setup link, CLI). Pass
    email=None only where the address is not known yet; the user write checks again with it.
    `account`: the existing account being renamed (a flow that updates its user), whose own
    username does not count as taken.
    """
    username = (username or "").strip()
    # Compared in NFKC form: a fullwidth "＠" (U+FF20) or small "﹫" (U+FE6B) reads as "@" in
    # every list and mail, so "ceo＠example.com" is as email-shaped as the real thing.
    shown_as = unicodedata.normalize("NFKC", username)
    if (EMAIL_SHAPED in shown_as and email is not None
            and shown_as.casefold() != unicodedata.normalize("NFKC", email.strip()).casefold()):
        return "A username may contain @ only if it is the email address of this account."
    if username and username_exists(username, besides=account):
        return "This username is already taken."
    return None


def check_username(username: str, email: str | None) -> None:
    """username_problem, raised, for the services that create accounts."""
    problem = username_problem(username, email)
    if problem:
        raise AccountError(problem)


def authenticate(login: str, password: str) -> User | None:
    """The user these credentials belong to, if they are right and the account is active."""
    user = find_user(login)
    return user if check_password(user, password) else None


def check_password(user: User | None, password: str) -> bool:
    """The password is this active account's. Takes the same time for no account (a dummy hash
    is checked), so a caller that pretends unknown accounts exist reveals nothing by timing."""
    if not verify_password(user.password_hash if user else None, password):
        return False
    if not user.active:
        return False
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return True


def record_login(user: User) -> None:
    user.last_login = utcnow()
    db.session.commit()


def username_exists(username: str, *, besides: User | None = None) -> bool:
    besides_id = besides.id if besides is not None else None
    return bool(db.session.scalar(_username_count(), {
        "username": username.strip().lower(), "besides": -1 if besides_id is None else besides_id}))


@functools.cache
def _username_count():
    """Built once (every sign-up page's POST asks it): accounts with this username but one."""
    return select(func.count(User.id)).where(func.lower(User.username) == bindparam("username"),
                                             User.id != bindparam("besides"))


def admin_exists() -> bool:
    """Is there a superuser, by the account's flag or through a superuser group? (The setup
    link is offered only while there is none.)"""
    superuser = User.is_superuser.is_(True) | User.groups.any(Group.is_superuser.is_(True))
    return bool(db.session.scalar(select(func.count(User.id)).where(superuser)))


def create_user(*, username: str, email: str, password: str, name: str = "",
                superuser: bool = False) -> User:
    check_username(username, email)
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=hash_password(password), is_superuser=superuser, attributes={})
    db.session.add(user)
    tenants.add_member(user)  # of the current tenant (the default one outside an admin page)
    db.session.commit()
    return user


def issue_action_token(purpose: str, lifetime: timedelta, user: User | None = None) -> str:
    """A new one-time token; earlier unused tokens of the same purpose and user stop working."""
    now = utcnow()
    owner = ActionToken.user_id == user.id if user else ActionToken.user_id.is_(None)
    db.session.execute(
        update(ActionToken)
        .where(ActionToken.purpose == purpose, ActionToken.used_at.is_(None), owner)
        .values(used_at=now)
    )
    token = tokens.new_token()
    db.session.add(ActionToken(purpose=purpose, digest=tokens.digest(token), user=user,
                               expires_at=now + lifetime))
    db.session.commit()
    return token


def find_action_token(purpose: str, token: str | None) -> ActionToken | None:
    """The unused, unexpired token, or None."""
    if not token or len(token) > 200:
        return None
    row = db.session.scalar(select(ActionToken).filter_by(purpose=purpose, digest=tokens.digest(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def claim_action_token(row: ActionToken) -> bool:
    """Mark a token used inside the caller's transaction; only one of two racing requests wins."""
    claimed = db.session.execute(
        update(ActionToken).where(ActionToken.id == row.id, ActionToken.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return False
    return True


def complete_setup(token: str, *, username: str, email: str, name: str, password: str) -> User:
    """Create the first admin from a setup link, consuming it in the same transaction."""
    row = find_action_token(TokenPurpose.SETUP, token)
    if row is None or admin_exists() or not claim_action_token(row):
        raise AccountError("This setup link is no longer valid.")
    check_username(username, email)
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=hash_password(password), is_superuser=True, attributes={})
    db.session.add(user)
    tenants.add_member(user)
    db.session.commit()
    return user


def create_user_directly(*, username: str, email: str, name: str = "", groups=(),
                         created_by: User | None = None, ip: str | None = None,
                         link_for, lifetime: timedelta,
                         sso_source=None) -> tuple[User, str, int | None]:
    """Kestra's "create user (skip invitation)": the user exists at once, without a password,
    and gets a one-time link to set one. `link_for(token)` builds the absolute link.

    With `sso_source` the account is SSO-only (Kestra: "recommended only with third-party
    authentication such as SSO"): no password, no link; it is linked to its identity at the
    first sign-in with that source, by the provider's verified email.

    Returns the user, the link ("" when SSO-only), and the id of the queued email (None: no
    mail server is set, or SSO-only).
    """
    from ..audit import Action, record_event
    from ..mail import enqueue, mail_configured
    from ..mail.messages import set_password_email

    check_username(username, email)
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=None, attributes={}, groups=list(groups))
    db.session.add(user)
    tenants.add_member(user)
    db.session.flush()
    record_event(Action.USER_CREATED, actor=created_by, ip=ip, obj=user,
                 detail={"direct": True, "groups": [g.name for g in user.groups],
                         **({"sso_only": sso_source.slug} if sso_source is not None else {})})
    if sso_source is not None:
        from ..sources.service import add_sso_only

        add_sso_only(user, sso_source)
        db.session.commit()
        return user, "", None
    token = issue_action_token(TokenPurpose.SET_PASSWORD, lifetime, user=user)  # commits
    link = link_for(token)
    if not mail_configured():
        return user, link, None
    row = find_action_token(TokenPurpose.SET_PASSWORD, token)
    subject, text, html = set_password_email(user, link, created_by, row.expires_at)
    message = enqueue(user.email, subject, text, html)
    db.session.commit()
    return user, link, message.id


def set_password(token: str, password: str, *, ip: str | None = None) -> User:
    """Consume a set-password link and store the new password, in one transaction."""
    from ..audit import Action, record_event

    row = find_action_token(TokenPurpose.SET_PASSWORD, token)
    if row is None or row.user is None:
        raise AccountError("This link is no longer valid.")
    if not claim_action_token(row):
        raise AccountError("This link is no longer valid.")
    user = row.user
    user.password_hash = hash_password(password)
    end_sessions(user)  # a reset link is also how an account is recovered from someone else
    record_event(Action.PASSWORD_SET, actor=user, ip=ip, obj=user)
    db.session.commit()
    return user


def change_password(user: User, current: str, new: str, *, ip: str | None = None) -> None:
    """The signed-in person's own change; every session of theirs ends, and the caller signs
    the current one in again."""
    from ..audit import Action, record_event

    if not verify_password(user.password_hash, current):
        raise AccountError("Your current password is not right.")
    user.password_hash = hash_password(new)
    end_sessions(user)
    record_event(Action.PASSWORD_CHANGED, actor=user, ip=ip, obj=user)
    db.session.commit()


def sign_out_everywhere(user: User, *, ip: str | None = None) -> None:
    from ..audit import Action, record_event

    end_sessions(user)
    record_event(Action.SESSIONS_ENDED, actor=user, ip=ip, obj=user)
    db.session.commit()


def set_active(user: User, active: bool, *, actor: User, ip: str | None = None,
               grants=None) -> None:
    """Deactivate (or activate again) an account; deactivating ends its sessions at once.

    Nobody deactivates themselves (the last admin could lock everyone out), and nobody changes
    an account that holds more than they may give (access.account_change_refusal). `grants`:
    what the actor acts with when it is less than they hold (an API token's scopes).
    """
    from ..access import account_change_refusal, grants_for
    from ..audit import Action, record_event

    if user.id == actor.id:
        raise AccountError("You cannot deactivate your own account.")
    refusal = account_change_refusal(grants if grants is not None else grants_for(actor),
                                     user)  # the privilege ceiling
    if refusal:
        raise AccountError(refusal)
    if user.active == active:
        return
    user.active = active
    end_sessions(user)
    if not active:
        end_pending_steps(user)
    record_event(Action.USER_ACTIVATED if active else Action.USER_DEACTIVATED,
                 actor=actor, ip=ip, obj=user)
    db.session.commit()


def delete_account(user: User, *, ip: str | None = None, detail: dict | None = None) -> None:
    """Delete someone's own account (an unenrollment flow), in one transaction with its audit
    event: the event keeps the username as text and loses only the link to the row
    (audit_events.actor_id and invitation_uses.user_id are ON DELETE SET NULL). Their sessions
    end with the row. Never the last superuser: nobody could administer the portal after it."""
    from ..access import is_last_superuser
    from ..audit import Action, record_event

    if is_last_superuser(user):
        raise AccountError("This is the portal's last superuser account, so it cannot be deleted. "
                           "Make another account a superuser first.")
    record_event(Action.USER_DELETED, actor=user, ip=ip, obj=user,
                 detail={"username": user.username, "email": user.email, **(detail or {})})
    db.session.flush()
    db.session.delete(user)
    db.session.commit()


def update_account(user: User, *, actor: User, grants, ip: str | None = None,
                   name: str | None = None, email: str | None = None,
                   groups=None) -> dict:
    """Change someone's name, address or groups in the current tenant (None: unchanged);
    returns what changed, as recorded in the user.updated event.

    The ceiling first (access.account_change_refusal), then every group given must be one the
    actor may give; the account's groups of other tenants are kept. A new address is no longer
    verified (verified_email compares it) and must suit the username (username_problem).
    """
    from ..access import account_change_refusal, assignable_groups
    from ..audit import Action, record_event

    refusal = account_change_refusal(grants, user)
    if refusal:
        raise AccountError(refusal)
    changed: dict = {}
    if name is not None and name.strip() != (user.name or ""):
        changed["name"] = user.name = name.strip()
    if email is not None and email.strip() != (user.email or ""):
        problem = username_problem(user.username, email, account=user)
        if problem:
            raise AccountError(problem, field="email")
        changed["email"] = user.email = email.strip()
    if groups is not None:
        here = tenants.current_tenant().id
        allowed = {g.id for g in assignable_groups(grants)}
        for group in groups:
            if group.id not in allowed:
                raise AccountError(f"The group “{group.name}” grants more than you may give.")
        others = [g for g in user.groups if g.tenant_id != here]
        before = sorted(g.name for g in user.groups if g.tenant_id == here)
        user.groups = others + list(dict.fromkeys(groups))
        after = sorted(g.name for g in groups)
        if after != before:
            changed["groups"] = after
    if changed:
        record_event(Action.USER_UPDATED, actor=actor, ip=ip, obj=user, detail=changed)
    db.session.commit()
    return changed


def remove_from_tenant(user: User, *, actor: User, grants, ip: str | None = None) -> None:
    """Take someone out of the current tenant: its membership, its groups and the roles they
    hold directly there. The account stays (accounts are instance-wide); nobody removes
    themselves, and the ceiling holds as for deactivating (account_change_refusal)."""
    from ..access import account_change_refusal
    from ..audit import Action, record_event
    from ..models import MemberRole, tenant_members

    if user.id == actor.id:
        raise AccountError("You cannot remove your own account from the tenant.")
    refusal = account_change_refusal(grants, user)
    if refusal:
        raise AccountError(refusal)
    tenant = tenants.current_tenant()
    groups = sorted(g.name for g in user.groups if g.tenant_id == tenant.id)
    user.groups = [g for g in user.groups if g.tenant_id != tenant.id]
    db.session.execute(tenant_members.delete().where(tenant_members.c.user_id == user.id,
                                                     tenant_members.c.tenant_id == tenant.id))
    tenants.forget_answers()
    db.session.execute(delete(MemberRole).where(MemberRole.user_id == user.id,
                                                MemberRole.tenant_id == tenant.id))
    record_event(Action.USER_REMOVED, actor=actor, ip=ip, obj=user,
                 detail={"tenant": tenant.slug, "groups": groups})
    db.session.commit()
