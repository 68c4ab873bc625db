"""Accounts: authentication, first-admin setup and one-time action tokens. No HTTP here."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, or_, select, update

from ..extensions import db
from ..models import ActionToken, TokenPurpose, User, utcnow
from ..security import tokens
from ..security.passwords import hash_password, needs_rehash, verify_password


class AccountError(ValueError):
    """A rule about accounts was broken; the message is meant for the person."""


def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    return db.session.get(User, int(user_id))


def find_user(login: str) -> User | None:
    """By username (any case) or email address."""
    login = (login or "").strip()
    if not login:
        return None
    return db.session.scalar(
        select(User)
        .where(or_(func.lower(User.username) == login.lower(), func.lower(User.email) == login.lower()))
        .order_by(User.id)
        .limit(1)
    )


def authenticate(login: str, password: str) -> User | None:
    """The user these credentials belong to, if they are right and the account is active."""
    user = find_user(login)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


def record_login(user: User) -> None:
    user.last_login = utcnow()
    db.session.commit()


def username_exists(username: str) -> bool:
    return bool(db.session.scalar(
        select(func.count(User.id)).where(func.lower(User.username) == username.strip().lower())
    ))


def admin_exists() -> bool:
    return bool(db.session.scalar(select(func.count(User.id)).where(User.is_superuser.is_(True))))


def create_user(*, username: str, email: str, password: str, name: str = "",
                superuser: bool = False) -> User:
    if username_exists(username):
        raise AccountError(f"The username {username!r} is already taken.")
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=hash_password(password), is_superuser=superuser, attributes={})
    db.session.add(user)
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
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=hash_password(password), is_superuser=True, attributes={})
    db.session.add(user)
    db.session.commit()
    return user


def create_user_directly(*, username: str, email: str, name: str = "", groups=(),
                         created_by: User | None = None, ip: str | None = None,
                         link_for, lifetime: timedelta) -> tuple[User, str, int | None]:
    """Kestra's "create user (skip invitation)": the user exists at once, without a password,
    and gets a one-time link to set one. `link_for(token)` builds the absolute link.

    Returns the user, the link, and the id of the queued email (None: no mail server is set).
    """
    from ..audit import Action, record_event
    from ..mail import enqueue, mail_configured
    from ..mail.messages import set_password_email

    if username_exists(username):
        raise AccountError(f"The username {username!r} is already taken.")
    user = User(username=username.strip(), email=email.strip(), name=name.strip(),
                password_hash=None, attributes={}, groups=list(groups))
    db.session.add(user)
    db.session.flush()
    record_event(Action.USER_CREATED, actor=created_by, ip=ip, obj=user,
                 detail={"direct": True, "groups": [g.name for g in user.groups]})
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
    record_event(Action.PASSWORD_SET, actor=user, ip=ip, obj=user)
    db.session.commit()
    return user
