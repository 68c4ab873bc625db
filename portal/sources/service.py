"""OIDC sources and linked identities: the rules, with no HTTP in them.

A round trip: `begin` records an SSOAttempt (state digest, nonce, sealed PKCE verifier, and what
the trip is for: a flow session, or linking a signed-in account) and returns the provider's
address; the callback `take`s the attempt exactly once (a guarded UPDATE: a replayed or forged
state finds nothing), `oidc.complete` checks the code and the ID token, and then one of
`apply_to_flow` / `link` decides what the identity does. Every refusal is a SourceError with a
reason (audited) and words for the person; nothing is written before the identity is checked.

Which tenant: a source is instance-wide (tenant_id NULL) or owned by one tenant. `offered_in`
is the one rule of where a source may be used: an instance-wide one anywhere, a tenant's own
only in flows and invitations of that tenant (`sources_shown` lists by it, `begin` refuses by
it). A tenant-owned source links an existing account by email only when that account belongs
to its tenant alone (`match`): a tenant's provider never vouches for anyone else.

Groups: a source's group map ("provider group → portal group" pairs) makes the portal groups it
names follow the provider's groups claim, in one tenant (`group_map_tenant_id`): added at
enrollment, at accepting and at each sign-in, and taken away at each sign-in when the provider
stops sending them (`sync_groups`). What a map may name is weighed against the privilege ceiling
of the admin saving it (`group_map_refusal`), before and after the change.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import Action, record_event
from ..extensions import db
from ..flows.context import note, noted
from ..models import (
    FlowDesignation,
    FlowSession,
    Group,
    MatchingMode,
    OIDCSource,
    SourceConnection,
    SSOAttempt,
    User,
    utcnow,
)
from ..security import sealing, tokens
from . import oidc

SECRET_LABEL = b"portal.sources.client_secret"
VERIFIER_LABEL = b"portal.sources.code_verifier"
SSO_NOTE = "sso"  # the flow session's note of the identity a provider vouched for
CONFIRM_NOTE = "sso_confirm"  # an existing account found by email, waiting for the person's yes
PREFILLED = ("username", "email", "name")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


class SourceError(Exception):
    """The round trip ends here: `reason` for the audit log, title and message for the page."""

    def __init__(self, reason: str, title: str, message: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.title, self.message, self.status = reason, title, message, status


PROVIDER_WORDS = {
    "provider_unreachable": ("The sign-in provider is not answering",
                             "Try again in a few minutes, or use another way to sign in.", 502),
    "access_denied": ("Sign-in was cancelled",
                      "The provider says you did not allow the sign-in. Nothing was changed.", 400),
    "code_refused": ("Sign-in did not complete",
                     "The provider did not accept this sign-in (it may have expired or been "
                     "used already). Start again.", 400),
}


def provider_error(exc: oidc.ProviderError) -> SourceError:
    title, message, status = PROVIDER_WORDS.get(exc.reason, (
        "Sign-in did not complete",
        "The answer from the sign-in provider could not be checked. Start again, or ask an "
        "administrator to look at the source's settings.", 400))
    return SourceError(exc.reason, title, message, status)


# -- sources (admin) ----------------------------------------------------------------------------


def issuer_problem(issuer: str) -> str | None:
    """An issuer is an https URL (http only to this machine's loopback, for development)."""
    parts = urlsplit(issuer or "")
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
        return None
    if parts.query or parts.fragment:
        return "An issuer has no query or fragment."
    return "Use the provider's https address, e.g. https://accounts.google.com."


def source_problems(values: dict, *, source: OIDCSource | None = None,
                    grants=None) -> dict[str, list[str]]:
    """Field errors for an admin's source form (the one home of these rules). `grants`: the
    saving admin's, weighed against the group map (None only for trusted callers: tests, and
    `save_source`'s own callers that checked already)."""
    errors: dict[str, list[str]] = {}
    slug = str(values.get("slug") or "")
    if not SLUG.match(slug):
        errors["slug"] = ["Lower-case letters, digits and dashes; it is part of the redirect URI."]
    else:
        taken = db.session.scalar(select(OIDCSource.id).where(OIDCSource.slug == slug))
        if taken is not None and (source is None or taken != source.id):
            errors["slug"] = ["Another source has this slug."]
    if problem := issuer_problem(str(values.get("issuer") or "")):
        errors["issuer"] = [problem]
    if "openid" not in str(values.get("scopes") or "").split():
        errors["scopes"] = ["The scopes must include openid."]
    if source is None and not values.get("client_secret"):
        errors["client_secret"] = ["Enter the client secret the provider gave you."]
    unknown = set(values.get("authoritative_fields") or []) - set(PREFILLED)
    if unknown:
        errors["authoritative_fields"] = ["Choose among username, email and name."]
    pairs, problems = parse_group_map(values.get("group_map"))
    if pairs and not str(values.get("claim_groups") or "").strip():
        problems.append("Name the groups claim first: without it every mapped group would be "
                        "taken away at each sign-in.")
    if not problems and grants is not None:
        refusal = group_map_refusal(grants, pairs, values.get("tenant_id"), before=source)
        problems += [refusal] if refusal else []
    if problems:
        errors["group_map"] = problems
    return errors


# -- the group map (provider groups -> portal groups) ------------------------------------------

ARROW = re.compile(r"\s*(?:→|->|=>)\s*")


def parse_group_map(value) -> tuple[list[list[str]], list[str]]:
    """The [provider group, portal group] pairs of an admin's lines ("staff → Staff"; "->" and
    "=>" work too), or of a stored list; and the problems found, by line."""
    if isinstance(value, list):
        return [[str(p), str(g)] for p, g in value], []
    pairs: list[list[str]] = []
    problems: list[str] = []
    for number, line in enumerate(str(value or "").splitlines(), 1):
        if not line.strip():
            continue
        parts = ARROW.split(line.strip(), maxsplit=1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            problems.append(f"Line {number}: write “provider group → portal group”.")
        elif len(parts[0]) > 200 or len(parts[1]) > 100:
            problems.append(f"Line {number}: a group name is too long.")
        elif [parts[0].strip(), parts[1].strip()] not in pairs:
            pairs.append([parts[0].strip(), parts[1].strip()])
    return pairs, problems


def format_group_map(pairs) -> str:
    """The admin form's lines for stored pairs."""
    return "\n".join(f"{provider} → {group}" for provider, group in pairs or [])


def _groups_named(names, tenant_id: int) -> dict[str, Group]:
    names = set(names)
    if not names:
        return {}
    return {g.name: g for g in db.session.scalars(select(Group).where(
        Group.tenant_id == tenant_id, Group.name.in_(names)))}


def group_map_refusal(grants, pairs, tenant_id: int | None, *,
                      before: OIDCSource | None = None) -> str | None:
    """Why this admin may not save a source whose map names these groups; None if they may.

    The privilege ceiling (portal.access.ceiling): every portal group the map names, before and
    after the change, must be one they may assign (so a map beyond them is read-only to them,
    like a flow). A tenant's source names groups of that tenant, which must exist. An
    instance-wide source (superadmins only) names groups looked up in the tenant each sign-in
    acts in: nothing to look up on save."""
    from ..access import CeilingError, ensure_within_ceiling

    weighed: list[tuple[str, Group]] = []
    if before is not None and before.tenant_id is not None and before.group_map:
        found = _groups_named((g for _, g in before.group_map), before.tenant_id)
        weighed += [("This source's group map", g) for g in found.values()]
    if tenant_id is not None and pairs:
        found = _groups_named((g for _, g in pairs), tenant_id)
        missing = sorted({g for _, g in pairs} - set(found))
        if missing:
            return f"No group named “{missing[0]}” in this tenant."
        weighed += [("This source's group map", found[g]) for _, g in pairs]
    elif tenant_id is None and pairs and not grants.superuser:
        return "Only a superadmin may map groups for an instance-wide source."
    try:
        ensure_within_ceiling(grants, weighed)
    except CeilingError as error:
        return str(error)
    return None


def group_map_tenant_id(source: OIDCSource, flow_session: FlowSession | None) -> int:
    """The tenant whose groups a source's map names: the source's own; for an instance-wide
    source, the tenant the flow acts in (its invitation's, else its flow's), else the default
    one (where an instance-wide flow's new accounts land too)."""
    if source.tenant_id is not None:
        return source.tenant_id
    tenant_id = flow_session_tenant_id(flow_session)
    if tenant_id is not None:
        return tenant_id
    from ..tenants import default_tenant

    return default_tenant().id


def sync_groups(user: User, source: OIDCSource, provider_groups, tenant_id: int, *,
                ip: str | None, remove: bool) -> tuple[list[str], list[str]]:
    """Make the groups `source`'s map names (in tenant `tenant_id`) follow the provider's
    groups: add those it sends; with `remove`, take away those it no longer sends. Groups the
    map does not name are never touched. In the caller's transaction; audited when anything
    changed. Returns the names (added, removed).

    Enrollment and accepting an invitation only add (`remove` False): the invitation's own
    groups are not taken away in the step that gives them; each sign-in then follows the
    provider."""
    from ..models import Tenant
    from ..tenants import add_member

    pairs = source.group_map or []
    if not pairs:
        return [], []
    managed = _groups_named((g for _, g in pairs), tenant_id)
    sent = {str(g) for g in provider_groups or []}
    wanted = {name for provider, name in pairs if provider in sent and name in managed}
    held = {g.name for g in user.groups if g.tenant_id == tenant_id}
    added = sorted(n for n in wanted if n not in held)
    removed = sorted(n for n in managed if n not in wanted and n in held) if remove else []
    for name in added:
        user.groups.append(managed[name])
    for name in removed:
        user.groups.remove(managed[name])
    if added:
        add_member(user, db.session.get(Tenant, tenant_id))
    if added or removed:
        record_event(Action.SSO_GROUPS, actor=user, ip=ip, obj=user, detail={
            "source": source.slug, "tenant_id": tenant_id, "added": added, "removed": removed})
    return added, removed


FIELDS = ("name", "slug", "enabled", "issuer", "client_id", "scopes", "claim_username",
          "claim_email", "claim_name", "claim_groups", "use_userinfo", "matching_mode",
          "enrollment_flow_id", "authoritative_fields", "show_on_login", "tenant_id")


def save_source(source: OIDCSource | None, values: dict, *, actor: User | None,
                ip: str | None, grants=None) -> OIDCSource:
    """Create or change a source. A blank client secret on a change keeps the stored one.
    With `grants`, the group map is weighed against the admin's ceiling here too (CeilingError):
    no caller saves a map beyond the admin who saves it."""
    from ..access import CeilingError

    if "group_map" in values:
        pairs, problems = parse_group_map(values["group_map"])
        if problems:
            raise ValueError(problems[0])
        tenant_id = values.get("tenant_id", source.tenant_id if source else None)
        refusal = grants is not None and group_map_refusal(grants, pairs, tenant_id,
                                                           before=source)
        if refusal:
            raise CeilingError(None, "This source", refusal)
    source = source or OIDCSource()
    for key in FIELDS:
        if key in values:
            setattr(source, key, values[key])
    if "group_map" in values:
        source.group_map = pairs
    if values.get("client_secret"):
        source.client_secret_sealed = sealing.seal(SECRET_LABEL, values["client_secret"])
    db.session.add(source)
    db.session.flush()
    oidc.forget(source.issuer)
    record_event(Action.SOURCE_SAVED, actor=actor, ip=ip, obj=source,
                 detail={"slug": source.slug, "issuer": source.issuer,  # never the secret
                         "group_map": source.group_map or []})
    db.session.commit()
    return source


def delete_source(source: OIDCSource, *, actor: User | None, ip: str | None) -> None:
    record_event(Action.SOURCE_DELETED, actor=actor, ip=ip, obj=source,
                 detail={"slug": source.slug})
    db.session.delete(source)
    db.session.commit()


def client_secret(source: OIDCSource) -> str:
    return sealing.unseal(SECRET_LABEL, source.client_secret_sealed)


def by_slug(slug: str) -> OIDCSource | None:
    return db.session.scalar(select(OIDCSource).where(OIDCSource.slug == slug))


def all_sources(tenant=None) -> list[OIDCSource]:
    """Every source a tenant's pages may use (the current tenant's): the instance-wide ones and
    its own (the choices of "create user directly" and of a stage's sources option)."""
    from ..tenants import current_tenant

    tenant = tenant or current_tenant()
    return list(db.session.scalars(select(OIDCSource).where(_offered_clause(tenant.id))
                                   .order_by(OIDCSource.name)))


def _offered_clause(tenant_id: int | None):
    if tenant_id is None:
        return OIDCSource.tenant_id.is_(None)
    return or_(OIDCSource.tenant_id.is_(None), OIDCSource.tenant_id == tenant_id)


def offered_in(source: OIDCSource, tenant_id: int | None) -> bool:
    """May `source` be used in a flow (or invitation) of tenant `tenant_id` (None: an
    instance-wide flow without an invitation)? Instance-wide sources anywhere; a tenant's own
    only in that tenant."""
    return source.tenant_id is None or source.tenant_id == tenant_id


def only_offered(sources, tenant_id: int | None) -> list[OIDCSource]:
    """Of the sources a stage lists, those `offered_in` a flow of this tenant: an instance-wide
    flow's page never shows a tenant's source, even when its stage names one (its button would
    only be refused)."""
    return [s for s in sources if s is not None and offered_in(s, tenant_id)]


def flow_session_tenant_id(flow_session: FlowSession | None) -> int | None:
    """The tenant a flow session acts in: its invitation's, else its flow's (None when the
    flow is instance-wide)."""
    if flow_session is None:
        return None
    invitation = flow_session_invitation(flow_session)
    if invitation is not None:
        return invitation.tenant_id
    return flow_session.flow.tenant_id if flow_session.flow is not None else None


def sources_for_admin(tenant, *, superadmin: bool) -> list[OIDCSource]:
    """The sources a tenant's admin page lists: the tenant's own, and for a superadmin the
    instance-wide ones too."""
    owned = OIDCSource.tenant_id == tenant.id
    where = or_(owned, OIDCSource.tenant_id.is_(None)) if superadmin else owned
    return list(db.session.scalars(select(OIDCSource).where(where).order_by(OIDCSource.name)))


def source_for_admin(source_id, tenant, *, superadmin: bool) -> OIDCSource | None:
    """The source with this id if this admin page may manage it (else None): one of the
    tenant's own, or (superadmins) an instance-wide one."""
    source = db.session.get(OIDCSource, source_id)
    if source is None:
        return None
    if source.tenant_id == tenant.id or (source.tenant_id is None and superadmin):
        return source
    return None


def sources_shown(tenant=None) -> list[OIDCSource]:
    """The enabled sources offered on sign-in and invitation pages of `tenant` (a Tenant, its
    id, or None for an instance-wide page): instance-wide ones, and that tenant's own."""
    tenant_id = getattr(tenant, "id", tenant)
    return list(db.session.scalars(select(OIDCSource).where(
        OIDCSource.enabled.is_(True), OIDCSource.show_on_login.is_(True),
        _offered_clause(tenant_id)).order_by(OIDCSource.name)))


def may_link(user: User, source: OIDCSource) -> bool:
    """May this person link an identity at `source` to their account? An enabled source that is
    instance-wide, or owned by a tenant they are a member of (the account page's choices, and
    the check of a "Link" press, whatever source id it names)."""
    if not source.enabled:
        return False
    return source.tenant_id is None or source.tenant_id in _member_tenant_ids(user)


def linkable_sources(user: User) -> list[OIDCSource]:
    """The sources the account page offers to link: shown ones `may_link` allows."""
    member_of = _member_tenant_ids(user)
    return list(db.session.scalars(select(OIDCSource).where(
        OIDCSource.enabled.is_(True), OIDCSource.show_on_login.is_(True),
        or_(OIDCSource.tenant_id.is_(None), OIDCSource.tenant_id.in_(member_of or {0})))
        .order_by(OIDCSource.name)))


def _member_tenant_ids(user: User) -> set[int]:
    from ..models import tenant_members

    return set(db.session.scalars(select(tenant_members.c.tenant_id).where(
        tenant_members.c.user_id == user.id)))


def sources_by_ids(ids) -> list[OIDCSource]:
    wanted = [int(i) for i in ids or [] if str(i).isdigit()]
    if not wanted:
        return []
    found = {s.id: s for s in db.session.scalars(
        select(OIDCSource).where(OIDCSource.id.in_(wanted), OIDCSource.enabled.is_(True)))}
    return [found[i] for i in wanted if i in found]


# -- the round trip -----------------------------------------------------------------------------


def begin(source: OIDCSource, *, redirect_uri: str, purpose: str,
          flow_session: FlowSession | None = None, user: User | None = None,
          binding_id: int | None = None) -> tuple[str, str]:
    """Record the attempt and return (the provider's authorization URL, the state)."""
    elsewhere = (flow_session is not None and not offered_in(
        source, flow_session_tenant_id(flow_session))) or (
        purpose == "link" and (user is None or not may_link(user, source)))
    if elsewhere:
        raise SourceError("source_elsewhere", "This sign-in option does not exist",
                          "Go back and choose another way to sign in.", 404)
    try:
        auth = oidc.authorization(source, client_secret(source), redirect_uri)
    except oidc.ProviderError as exc:
        raise provider_error(exc) from None
    except sealing.SealError:
        raise SourceError("secret_unreadable", "This sign-in option is misconfigured",
                          "Ask an administrator to enter the source's client secret again.",
                          503) from None
    now = utcnow()
    # Attempts a day past their expiry are of no use, even to the audit log: gone.
    db.session.execute(delete(SSOAttempt).where(SSOAttempt.expires_at < now - timedelta(days=1)))
    attempt = SSOAttempt(
        state_digest=tokens.digest(auth.state), source_id=source.id, purpose=purpose,
        nonce=auth.nonce, code_verifier_sealed=sealing.seal(VERIFIER_LABEL, auth.code_verifier),
        flow_session_id=flow_session.id if flow_session is not None else None,
        user_id=user.id if user is not None else None, created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["SSO_ATTEMPT_LIFETIME"]),
    )
    if binding_id is not None and flow_session is not None:
        note(flow_session, "sso_binding", binding_id)
    db.session.add(attempt)
    db.session.commit()
    return auth.url, auth.state


def take(state: str | None, expected_state: str | None) -> SSOAttempt:
    """The attempt this callback answers, consumed: exactly once, only in the browser that
    began it (its signed cookie holds the state), and only before it expires."""
    if not state or not expected_state or not hmac.compare_digest(state, expected_state):
        raise SourceError("state_mismatch", "This sign-in link is not valid here",
                          "It was not started in this browser, or it was changed. Start the "
                          "sign-in again.")
    digest = tokens.digest(state)
    taken = db.session.execute(
        update(SSOAttempt)
        .where(SSOAttempt.state_digest == digest, SSOAttempt.used_at.is_(None),
               SSOAttempt.expires_at > utcnow())
        .values(used_at=utcnow())
    ).rowcount
    db.session.commit()
    attempt = db.session.scalar(select(SSOAttempt).where(SSOAttempt.state_digest == digest))
    if taken != 1 or attempt is None:
        raise SourceError("state_used", "This sign-in was already completed",
                          "Each sign-in can be finished once. Start again if you need to.")
    return attempt


def finish(attempt: SSOAttempt, *, code: str | None, redirect_uri: str) -> oidc.Identity:
    """The identity the provider vouches for in this attempt (ProviderError mapped)."""
    if not code:
        raise SourceError("no_code", "Sign-in did not complete",
                          "The provider sent no authorization code. Start again.")
    try:
        verifier = sealing.unseal(VERIFIER_LABEL, attempt.code_verifier_sealed)
        return oidc.complete(attempt.source, client_secret(attempt.source), redirect_uri,
                             code=code, nonce=attempt.nonce, code_verifier=verifier)
    except oidc.ProviderError as exc:
        raise provider_error(exc) from None
    except sealing.SealError:
        raise SourceError("secret_unreadable", "This sign-in option is misconfigured",
                          "Ask an administrator to enter the source's client secret again.",
                          503) from None


def record_failure(reason: str, *, source: OIDCSource | None, ip: str | None,
                   user: User | None = None) -> None:
    """A failed round trip in the audit log (its own transaction: nothing else was written)."""
    db.session.rollback()
    record_event(Action.SSO_FAILED, actor=user, ip=ip, object_type="oidc_source",
                 object_repr=source.slug if source is not None else "(unknown)",
                 detail={"reason": reason}, commit=True)


# -- accounts and identities --------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return (email or "").strip().casefold()


def connection_for(source: OIDCSource, subject: str) -> SourceConnection | None:
    return db.session.scalar(select(SourceConnection).where(
        SourceConnection.source_id == source.id, SourceConnection.subject == subject))


def connections_of(user: User) -> list[SourceConnection]:
    return list(db.session.scalars(select(SourceConnection).where(
        SourceConnection.user_id == user.id).order_by(SourceConnection.created_at)))


@dataclass
class Match:
    user: User | None
    how: str  # "linked" | "sso_only" (link now) | "email" (ask the person first) | "none"


def match(source: OIDCSource, identity: oidc.Identity) -> Match:
    """The account an identity belongs to: by subject once linked; an SSO-only account
    created for this address (linked now); else, by verified email when the source allows it,
    an account the person must confirm; else none."""
    linked = connection_for(source, identity.subject)
    if linked is not None:
        return Match(linked.user, "linked")
    if not identity.email or not identity.email_verified:
        return Match(None, "none")
    email = normalise_email(identity.email)
    owner = db.session.scalar(select(User).where(func.lower(User.email) == email)
                              .order_by(User.id).limit(1))
    if owner is None:
        return Match(None, "none")
    if source.tenant_id is not None and not _only_in(owner, source.tenant_id):
        return Match(None, "none")
    waiting = db.session.scalar(select(SourceConnection).where(
        SourceConnection.user_id == owner.id, SourceConnection.source_id == source.id,
        SourceConnection.subject.is_(None)))
    if waiting is not None:
        return Match(owner, "sso_only")
    if source.matching_mode == MatchingMode.EMAIL_LINK:
        return Match(owner, "email")
    return Match(None, "none")


def _only_in(user: User, tenant_id: int) -> bool:
    """Is `user` an account of this tenant alone (a member of no other tenant, no group of
    another tenant, not a superadmin)? Only such accounts may be matched by email by a source
    the tenant owns."""
    from ..access import is_superuser
    from ..models import tenant_members

    elsewhere = db.session.scalar(select(func.count()).select_from(tenant_members).where(
        tenant_members.c.user_id == user.id, tenant_members.c.tenant_id != tenant_id))
    if elsewhere or any(g.tenant_id != tenant_id for g in user.groups):
        return False
    return not is_superuser(user)


def link(user: User, source: OIDCSource, identity: oidc.Identity, *, ip: str | None,
         commit: bool = True) -> SourceConnection:
    """Link an identity to an account (filling in an SSO-only account's waiting link)."""
    existing = connection_for(source, identity.subject)
    if existing is not None:
        if existing.user_id != user.id:
            raise SourceError("linked_elsewhere", "This account is linked to someone else",
                              f"Your {source.name} account already signs in to another account "
                              "here. Unlink it there first.", 409)
        return existing
    connection = db.session.scalar(select(SourceConnection).where(
        SourceConnection.user_id == user.id, SourceConnection.source_id == source.id))
    if connection is not None and connection.subject not in (None, identity.subject):
        raise SourceError("other_identity_linked", "Another identity is linked already",
                          f"Your account is linked to a different {source.name} identity. "
                          "Unlink it first.", 409)
    if connection is None:
        connection = SourceConnection(user_id=user.id, source_id=source.id)
        db.session.add(connection)
    connection.subject = identity.subject
    connection.last_used_at = utcnow()
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise SourceError("linked_elsewhere", "This account is linked to someone else",
                          "Try again; if it persists, ask an administrator.", 409) from None
    record_event(Action.SSO_LINKED, actor=user, ip=ip, obj=user, detail={"source": source.slug})
    if commit:
        db.session.commit()
    return connection


def add_sso_only(user: User, source: OIDCSource) -> SourceConnection:
    """An account created directly to sign in with `source` only: linked at its first sign-in
    by the provider's verified email (the subject is unknown until then)."""
    connection = SourceConnection(user_id=user.id, source_id=source.id, subject=None)
    db.session.add(connection)
    return connection


def can_unlink(user: User, connection: SourceConnection) -> bool:
    """Not the last way to sign in: a password, or another linked identity, remains."""
    if user.password_hash:
        return True
    others = [c for c in connections_of(user) if c.id != connection.id and c.subject]
    return bool(others)


def unlink(user: User, connection_id: int, *, ip: str | None) -> str:
    """Unlink one of the user's identities; the source's name. SourceError if refused."""
    connection = db.session.get(SourceConnection, connection_id)
    if connection is None or connection.user_id != user.id:
        raise SourceError("not_found", "Nothing to unlink", "That identity is not linked.", 404)
    if not can_unlink(user, connection):
        raise SourceError("last_way", "This is your only way to sign in",
                          "Set a password or link another identity before unlinking this one.",
                          409)
    name = connection.source.name
    record_event(Action.SSO_UNLINKED, actor=user, ip=ip, obj=user,
                 detail={"source": connection.source.slug})
    db.session.delete(connection)
    db.session.commit()
    return name


# -- the identity in a flow ---------------------------------------------------------------------


def sso_identity(session: FlowSession) -> dict | None:
    """The identity a provider vouched for in this flow session, if any."""
    value = noted(session, SSO_NOTE)
    return value if isinstance(value, dict) else None


def signed_in_here(ctx) -> bool:
    """The SSO round trip began on this binding (an identification or source stage) and found
    the account: that stage is done, and the person is authenticated."""
    identity = sso_identity(ctx.session)
    return bool(identity and identity.get("user_id") and ctx.binding is not None
                and noted(ctx.session, "sso_binding") == ctx.binding.id)


@dataclass
class Outcome:
    # "continue" (to the flow) | "confirm" (ask before linking) | "enroll" (a new flow) |
    # "accepted" (an existing account took the invitation: sign it in)
    kind: str
    flow_slug: str = ""
    session_key: str | None = None  # "enroll": the new flow session this browser continues
    user_id: int | None = None  # "accepted": the existing account that took the invitation


def apply_to_flow(flow_session: FlowSession, source: OIDCSource, identity: oidc.Identity, *,
                  ip: str | None) -> Outcome:
    """What the identity does in the flow the person came from; SourceError when refused.

    An invitation's (or an open enrollment's) flow: a new identity fills the prompts, read-only
    where the provider is authoritative, and enrolls; the recipient-bound and domain rules of
    the invitation apply to the provider's verified address. Any other flow (sign-in, a source
    stage): the identity's account becomes the flow's authenticated pending user."""
    from ..invitations.service import domain_message, email_problem

    flow = flow_session.flow
    invitation = flow_session.invitation_id is not None
    enrolling = invitation or flow.designation == FlowDesignation.ENROLLMENT
    found = match(source, identity)
    if found.user is not None and not found.user.active:
        raise SourceError("deactivated", "This account is deactivated",
                          "It cannot sign in. Ask an administrator for help.", 403)
    if enrolling:
        if not identity.email or not identity.email_verified:
            raise SourceError("unverified_email", "Your email address is not verified",
                              f"{source.name} did not confirm your email address, so it cannot "
                              "be used to accept this invitation. Verify it there, or continue "
                              "without single sign-on.", 403)
        if invitation:
            invite = flow_session_invitation(flow_session)
            problem = email_problem(invite, identity.email)
            if problem == "wrong_email":
                raise SourceError("wrong_email", "This invitation is for another address",
                                  f"The address {source.name} gave us is not the one the "
                                  "invitation was sent to. Sign in there with the invited "
                                  "address, or continue without single sign-on.", 403)
            if problem == "domain":
                raise SourceError("email_domain", "This address is not accepted here",
                                  domain_message(invite), 403)
        if found.user is not None:
            return accept_as_existing(found, flow_session, source, identity, ip=ip)
        _prefill(flow_session, source, identity)
        db.session.commit()
        return Outcome("continue", flow.slug)
    return sign_in(found, flow_session, source, identity, ip=ip)


def flow_session_invitation(flow_session: FlowSession):
    from ..models import Invitation

    return db.session.get(Invitation, flow_session.invitation_id) \
        if flow_session.invitation_id else None


def accept_as_existing(found: Match, flow_session, source, identity, *, ip) -> Outcome:
    """An identity that already has an account came to accept an invitation: it never gets a
    second account. The invitation's access goes to that account through the invitation
    service of "existing users accept an invitation" (issue 11 part B: `grant_access`, which
    checks, consumes one use and applies the groups in one transaction); this module writes no
    groups itself. An account found only by email is linked after the person confirms."""
    if found.how == "email":
        note(flow_session, CONFIRM_NOTE, {"source_id": source.id, "subject": identity.subject,
                                          "user_id": found.user.id, "email": identity.email,
                                          "groups": identity.groups})
        db.session.commit()
        return Outcome("confirm", flow_session.flow.slug)
    return _grant(found.user, flow_session, source, identity, ip=ip)


def _grant(user: User, flow_session, source, identity, *, ip) -> Outcome:
    from ..invitations import service as invitations

    invitation = flow_session_invitation(flow_session)
    result = invitations.grant_access(user, invitation, flow=flow_session.flow, ip=ip)
    if not isinstance(result, invitations.Granted):
        raise SourceError(f"accept_{result.reason}", result.title, result.message,
                          result.status)
    link(user, source, identity, ip=ip, commit=False)
    sync_groups(user, source, identity.groups, group_map_tenant_id(source, flow_session), ip=ip,
                remove=False)
    flow_session.finished_at = utcnow()  # the invitation is used: this flow has nothing left
    record_event(Action.SSO_SIGNED_IN, actor=user, ip=ip, obj=user,
                 detail={"source": source.slug, "flow": flow_session.flow.slug,
                         "accepted": invitation.id})
    db.session.commit()
    return Outcome("accepted", flow_session.flow.slug, user_id=user.id)


def _prefill(flow_session: FlowSession, source: OIDCSource, identity: oidc.Identity) -> None:
    from ..flows.stages.email import VERIFIED

    username = identity.username or identity.email.split("@", 1)[0]
    values = {"username": username, "email": identity.email, "name": identity.name}
    data = dict(flow_session.prompt_data or {})
    fixed = set(flow_session.fixed_fields or [])
    authoritative = set(source.authoritative_fields or []) | {"email"}
    for key, value in values.items():
        if key in fixed or not value:
            continue  # the invitation's own fixed values win
        data[key] = value
        if key in authoritative:
            fixed.add(key)
    flow_session.prompt_data = data
    flow_session.fixed_fields = sorted(fixed)
    note(flow_session, SSO_NOTE, {"source_id": source.id, "subject": identity.subject,
                                  "email": identity.email, "groups": identity.groups})
    note(flow_session, VERIFIED, identity.email)  # the provider verified it: no email link


def sign_in(found: Match, flow_session, source, identity, *, ip) -> Outcome:
    flow = flow_session.flow
    if found.how == "email":
        note(flow_session, CONFIRM_NOTE, {"source_id": source.id, "subject": identity.subject,
                                          "user_id": found.user.id, "email": identity.email,
                                          "groups": identity.groups})
        db.session.commit()
        return Outcome("confirm", flow.slug)
    if found.user is None:
        return enroll(flow_session, source, identity, ip=ip)
    link(found.user, source, identity, ip=ip, commit=False)
    authenticate(flow_session, source, identity, found.user, ip=ip)
    return Outcome("continue", flow.slug)


def authenticate(flow_session, source, identity, user: User, *, ip) -> None:
    from ..flows.context import PENDING_USER

    note(flow_session, PENDING_USER, user.id)
    note(flow_session, "authenticated", True)
    note(flow_session, "shown_as", user.username)
    note(flow_session, SSO_NOTE, {"source_id": source.id, "subject": identity.subject,
                                  "user_id": user.id})
    sync_groups(user, source, identity.groups, group_map_tenant_id(source, flow_session), ip=ip,
                remove=True)
    record_event(Action.SSO_SIGNED_IN, actor=user, ip=ip, obj=user,
                 detail={"source": source.slug, "flow": flow_session.flow.slug})
    db.session.commit()


def confirm_link(flow_session: FlowSession, *, ip: str | None) -> Outcome:
    """The person said yes: link the identity to the account found by email, and go on."""
    pending = noted(flow_session, CONFIRM_NOTE)
    source = db.session.get(OIDCSource, pending.get("source_id")) if isinstance(
        pending, dict) else None
    user = db.session.get(User, pending.get("user_id")) if source is not None else None
    if source is None or user is None or not user.active:
        raise SourceError("confirm_expired", "Nothing to confirm",
                          "Start the sign-in again.", 400)
    identity = oidc.Identity(subject=pending["subject"], email=pending.get("email", ""),
                             email_verified=True, groups=list(pending.get("groups") or []))
    note(flow_session, CONFIRM_NOTE, None)
    if flow_session.invitation_id is not None:
        return _grant(user, flow_session, source, identity, ip=ip)
    link(user, source, identity, ip=ip, commit=False)
    authenticate(flow_session, source, identity, user, ip=ip)
    return Outcome("continue", flow_session.flow.slug)


def enroll(flow_session, source, identity, *, ip) -> Outcome:
    """A new identity at a sign-in: the source's enrollment flow, pre-filled from the claims."""
    from ..flows import executor

    flow = source.enrollment_flow
    if flow is None:
        raise SourceError("no_account", "No account here yet",
                          f"Your {source.name} identity is not linked to an account here. "
                          "Ask for an invitation.", 403)
    if not identity.email or not identity.email_verified:
        raise SourceError("unverified_email", "Your email address is not verified",
                          f"{source.name} did not confirm your email address.", 403)
    new_session, key = executor.start(
        flow, None, current_user=None,
        lifetime=current_app.config["FLOW_SESSION_LIFETIME_DELTA"], store=False)
    _prefill(new_session, source, identity)
    db.session.add(new_session)
    db.session.commit()
    return Outcome("enroll", flow.slug, session_key=key)


def link_new_user(ctx, user: User) -> None:
    """After the flow's user write created an account: link the identity that enrolled it
    (same transaction). Called by the stage registry's after-user-created hook."""
    identity = sso_identity(ctx.session)
    if not identity or identity.get("user_id"):
        return
    source = db.session.get(OIDCSource, identity.get("source_id"))
    if source is None:
        return
    db.session.add(SourceConnection(user_id=user.id, source_id=source.id,
                                    subject=identity["subject"], last_used_at=utcnow()))
    record_event(Action.SSO_LINKED, actor=user, ip=ctx.client_ip, obj=user,
                 detail={"source": source.slug, "enrolled": True})
    sync_groups(user, source, identity.get("groups"), group_map_tenant_id(source, ctx.session),
                ip=ctx.client_ip, remove=False)
