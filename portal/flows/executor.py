"""Load a flow session, run the current stage, advance, finish."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, delete, inspect, select
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..invitations import service as invitations
from ..invitations.service import Refusal, find_by_digest, find_by_token
from ..models import (
    Flow,
    FlowAuthentication,
    FlowDesignation,
    FlowSession,
    FlowStageBinding,
    User,
    utcnow,
)
from ..security import tokens
from . import planner
from .context import FlowContext, noted
from .planner import bindings_of
from .stages import Deny, Retry, StageType, stage_type_for
from .stages.invitation import record_refusal


@dataclass
class Step:
    """What the web layer shows next: a page of the wizard, the end, or a refusal."""

    kind: str  # "page" | "done" | "denied" | "accept" | "accepted" | "declined"
    stage: StageType | None = None
    form: object = None
    binding_id: int | None = None
    number: int = 0
    count: int = 0
    errors: dict = field(default_factory=dict)
    title: str = ""
    message: str = ""
    status: int = 200
    login_user_id: int | None = None
    login_lifetime: timedelta | None = None  # see FlowContext.login_lifetime
    next_path: str | None = None  # where the visitor wanted to go (a same-site path)
    user_id: int | None = None
    notices: list[tuple[str, str]] = field(default_factory=list)  # (category, text) to show
    sign_out: bool = False  # the web layer signs the browser out (the account was deleted)
    # "accept": the invitation a signed-in person is asked to accept, and that person's id
    # (user_id). On a page: the visitor may say "I already have an account" (sign in, come back).
    invitation: object = None
    offers_sign_in: bool = False
    invitation_id: int | None = None  # on the first page: the invitation it was opened with


def start(
    flow: Flow, token: str | None, *, current_user: User | None, lifetime: timedelta,
    token_digest: str | None = None, store: bool = True,
) -> tuple[FlowSession, str]:
    """Begin a flow for a visitor, with the invitation of a link (its token, or its digest once
    the link was checked). Opening a link never consumes the invitation.

    With `store=False` the session is planned but not written: a visitor who only opens the
    flow's page (or a crawler, or a flood of GETs) leaves no row behind. The executor stores it
    when the flow really starts: before a stage that needs it, or on the first POST."""
    now = utcnow()
    key = tokens.new_token()
    invitation = find_by_token(token) if token else find_by_digest(token_digest)
    session = FlowSession(
        key_digest=tokens.digest(key),
        flow=flow,
        token_supplied=bool(token or token_digest),
        invitation_id=invitation.id if invitation else None,
        prompt_data={},
        fixed_fields=[],
        position=0,  # set here: column defaults apply only when the row is written
        created_at=now,
        expires_at=now + lifetime,
    )
    # The invitation just read, kept with the session: its stages need it, and the identity
    # map alone would not keep it loaded.
    set_committed_value(session, "invitation", invitation)
    ctx = FlowContext(flow=flow, session=session,
                      current_user_id=current_user.id if current_user else None)
    session.plan = planner.plan(flow, ctx)
    if store:
        _store(session)
    return session, key


# Expired flow sessions are cleared by about one store in this many: the table stays bounded
# (a row lives FLOW_SESSION_LIFETIME) without a DELETE on every enrollment's first page.
# 0: never (the tests' setting, so the work a request does is the same on every run).
CLEANUP_ONE_IN = 32


def _store(session: FlowSession) -> None:
    """Write a new flow session (and, now and then, clear expired ones while at it)."""
    if CLEANUP_ONE_IN and secrets.randbelow(CLEANUP_ONE_IN) == 0:
        db.session.execute(delete(FlowSession).where(FlowSession.expires_at < utcnow()))
    db.session.add(session)
    db.session.commit()


def hand_off(session: FlowSession) -> str:
    """A new key for this flow session, returned once; the old key stops working.

    How a flow session survives a sign-in (which starts a fresh cookie): the invitee's flow is
    handed to the sign-in's `next` under a new key, and taken back with `load` + `hand_off`
    again afterwards, so the key that travelled in the address works once. The invitation
    stays in this server-side row; nothing in an address names it."""
    key = tokens.new_token()
    session.key_digest = tokens.digest(key)
    db.session.commit()
    return key


def load(key: str | None, flow: Flow) -> FlowSession | None:
    """The visitor's unexpired, unfinished session for this flow, if any."""
    if not key:
        return None
    # The invitation and what it grants in the same query: its stages and the user write read
    # them (its tenant, groups and direct roles).
    session = db.session.scalars(_session_by_key(), {"digest": tokens.digest(key)}).unique().first()
    if (
        session is None
        or session.flow_id != flow.id
        or session.finished_at is not None
        or session.expires_at <= utcnow()
    ):
        return None
    return session


@functools.cache
def _session_by_key():
    """Built once, with its cache key: every wizard request asks it."""
    return (select(FlowSession).where(FlowSession.key_digest == bindparam("digest"))
            .options(*invitations.grant_loads(FlowSession.invitation)))


class FlowExecutor:
    def __init__(self, session: FlowSession, *, current_user: User | None = None,
                 superuser: bool = False, base_url: str = "", client_ip: str | None = None) -> None:
        """`superuser`: the visitor's grants make them a superuser (by their own flag or a group);
        the caller knows, and flows that require a superuser need it. `base_url`: where links in
        emails point (the web layer passes portal.urls.base_url())."""
        self.session = session
        self.stored = not inspect(session).transient  # see start(store=False)
        self.on_store: Callable[[], None] | None = None  # the web layer remembers the key then
        self.superuser = superuser and current_user is not None
        self.flow = session.flow
        self.ctx = FlowContext(
            flow=self.flow, session=session,
            current_user_id=current_user.id if current_user else None,
            base_url=base_url, client_ip=client_ip,
        )
        planned = set(session.plan or [])
        self._bindings = {b.id: b for b in bindings_of(self.flow) if b.id in planned}

    # -- public -----------------------------------------------------------------------------

    def step(self) -> Step:
        """Advance through stages that need no page, and describe where the invitee is."""
        return self._with_notices(self._step())

    def _with_notices(self, step: Step) -> Step:
        # The progress made in this request (positions passed, values noted) is written once,
        # here, rather than after each stage: one UPDATE of the flow session, not one per stage.
        db.session.commit()
        step.notices, self.ctx.notices = [*self.ctx.notices, *step.notices], []
        step.sign_out = step.sign_out or self.ctx.sign_out
        return step

    def _step(self) -> Step:
        if self.accepting:
            return self._acceptance()
        denied = self._check_authentication()
        if denied:
            return self._deny(denied)
        while True:
            binding = self._current_binding()
            if binding is None:
                return self._finish()
            self.ctx.binding = binding
            if not planner.applies_when_reached(binding, self.ctx):
                self._advance()
                continue
            stage = stage_type_for(binding.stage)
            if stage.needs_stored_session:
                self.store()
            if stage.interactive and stage.already_done(self.ctx):
                self._advance()
                continue
            if stage.interactive:
                entered = stage.enter(self.ctx)
                if isinstance(entered, Deny):
                    return self._deny(entered)
                if entered is not None:  # Next: nothing to ask on this page
                    self._advance()
                    continue
                errors = self.session.errors or {}
                form = stage.form(self.ctx)
                if errors:  # sent back here by a later stage
                    for key, messages in errors.items():
                        if key in form._fields:
                            form[key].errors = list(messages)
                    self.session.errors = None
                    db.session.commit()
                return self._page(stage, form, binding, errors)
            result = stage.run(self.ctx)
            if isinstance(result, Deny):
                return self._deny(result)
            if isinstance(result, Retry):
                if not self._send_back(result):
                    return self._deny(Deny("Something went wrong",
                                           "; ".join(sum(result.errors.values(), [])), 400))
                continue
            self._advance()

    def submit(self, binding_id: int | None, formdata) -> Step:
        """Handle a page's POST; a stale page (another tab, the back button) just re-shows.

        The flow's authentication is checked before the stage sees the form, as step() checks
        it before a page: a copied cookie whose sign-in ended (or a demoted admin) still holds
        the flow session, and must not get a form taken (terms recorded, answers stored)."""
        if self.accepting:
            self.store()
            return self._with_notices(self._decide(formdata))
        denied = self._check_authentication()
        if denied:
            return self._deny(denied)
        self.store()
        binding = self._current_binding()
        if binding is None or binding.id != binding_id:
            return self.step()
        self.ctx.binding = binding
        stage = stage_type_for(binding.stage)
        if not stage.interactive:
            return self.step()
        entered = stage.enter(self.ctx)  # the same check as before its page
        if isinstance(entered, Deny):
            return self._with_notices(self._deny(entered))
        if entered is not None:
            self._advance()
            return self.step()
        form = stage.form(self.ctx, formdata=formdata)
        result = stage.submit(self.ctx, form)
        if isinstance(result, Retry):
            for key, messages in result.errors.items():
                if key in form._fields:
                    form[key].errors = list(messages)
            db.session.commit()
            return self._with_notices(self._page(stage, form, binding, result.errors))
        if isinstance(result, Deny):
            return self._with_notices(self._deny(result))
        self._advance()
        return self.step()

    def refusal(self) -> Step | None:
        """The flow's authentication refused (and the flow ended), for a stage's own action
        such as "send again": the same check as before a page or a form."""
        denied = self._check_authentication()
        return self._deny(denied) if denied else None

    def current_stage(self) -> StageType | None:
        """The stage the invitee is on, with the context set, for stage-specific actions."""
        binding = self._current_binding()
        if binding is None:
            return None
        self.ctx.binding = binding
        return stage_type_for(binding.stage)

    def store(self) -> None:
        """The flow has really started: write its session, if that was left for now."""
        if not self.stored:
            _store(self.session)
            self.stored = True
            if self.on_store is not None:
                self.on_store()

    # -- an existing account accepts the invitation ----------------------------------------------

    @property
    def accepting(self) -> bool:
        """A signed-in person opened an invitation link of a sign-up flow: instead of a second
        account (or "sign out first") they are asked to accept it with the account they have."""
        return (self.ctx.current_user_id is not None and self.session.token_supplied
                and self._makes_accounts())

    def _makes_accounts(self) -> bool:
        """A sign-up flow for people without an account. A flow for signed-in people (required
        authentication) runs as built: its stages decide what an invitation does there."""
        return (self.flow.designation == FlowDesignation.ENROLLMENT
                and self.flow.authentication in (FlowAuthentication.REQUIRE_UNAUTHENTICATED,
                                                 FlowAuthentication.NONE))

    def _acceptance(self) -> Step:
        """"Join … as …?" with what the invitation gives, or why it cannot be accepted."""
        user = db.session.get(User, self.ctx.current_user_id)
        refusal = invitations.acceptance_refusal(self.ctx.invitation, user, flow=self.flow)
        if refusal:
            return self._refuse(refusal)
        return Step(kind="accept", invitation=self.ctx.invitation, user_id=user.id,
                    title=self.flow.title or self.flow.name)

    def _decide(self, formdata) -> Step:
        """The acceptance page's POST: Accept grants and consumes a use (once), Decline records
        the no; either ends this flow session. Anything else shows the page again."""
        decision = formdata.get("decision") if formdata is not None else None
        user = db.session.get(User, self.ctx.current_user_id)
        invitation = self.ctx.invitation
        if decision not in ("accept", "decline") or invitation is None:
            return self._acceptance()
        if decision == "decline":
            invitations.decline(user, invitation, ip=self.ctx.client_ip)
            self._end()
            return Step(kind="declined", user_id=user.id, notices=[(
                "info", f"You declined the invitation “{invitation.name}”. Nothing was changed.")])
        result = invitations.grant_access(user, invitation, flow=self.flow, ip=self.ctx.client_ip)
        if isinstance(result, Refusal):
            return self._refuse(result)
        self._end()
        return Step(kind="accepted", user_id=user.id, invitation=invitation, notices=[(
            "success", f"You accepted the invitation “{invitation.name}”." + (
                " You are now in " + ", ".join(g.name for g in result.groups) + "."
                if result.groups else ""))])

    def _refuse(self, refusal: Refusal) -> Step:
        record_refusal(self.ctx, refusal.reason)
        return self._deny(Deny(refusal.title, refusal.message, refusal.status))

    def _end(self) -> None:
        self.session.finished_at = utcnow()
        db.session.commit()

    def offers_sign_in(self) -> bool:
        """An anonymous visitor on an invitation's sign-up flow may sign in with the account
        they have instead, and come back to accept (see hand_off)."""
        return (self.ctx.current_user_id is None and self.session.invitation_id is not None
                and self._makes_accounts())

    # -- internals --------------------------------------------------------------------------

    def _current_binding(self) -> FlowStageBinding | None:
        plan = self.session.plan or []
        while self.session.position < len(plan):
            binding = self._bindings.get(plan[self.session.position])
            if binding is not None:
                return binding
            self.session.position += 1  # the binding was removed since planning
        return None

    def _advance(self) -> None:
        self.session.position += 1  # committed with the step (see _with_notices)

    def _interactive_positions(self) -> list[int]:
        positions = []
        for index, binding_id in enumerate(self.session.plan or []):
            binding = self._bindings.get(binding_id)
            if binding is not None and stage_type_for(binding.stage).interactive:
                positions.append(index)
        return positions

    def _page(self, stage, form, binding, errors) -> Step:
        positions = self._interactive_positions()
        number = sum(1 for p in positions if p <= self.session.position)
        return Step(kind="page", stage=stage, form=form, binding_id=binding.id,
                    number=number, count=len(positions), errors=errors,
                    title=self.flow.title or self.flow.name,
                    offers_sign_in=number == 1 and self.offers_sign_in(),
                    invitation_id=self.session.invitation_id if number == 1 else None)

    def _send_back(self, retry: Retry) -> bool:
        """Return to the latest earlier page that asks for one of the fields in error."""
        plan = self.session.plan or []
        for index in range(self.session.position - 1, -1, -1):
            binding = self._bindings.get(plan[index])
            if binding is None:
                continue
            if stage_type_for(binding.stage).field_keys() & set(retry.errors):
                self.session.position = index
                self.session.errors = retry.errors
                db.session.commit()
                return True
        return False

    def _deny(self, deny: Deny) -> Step:
        self.session.finished_at = utcnow()
        db.session.commit()
        return Step(kind="denied", title=deny.title, message=deny.message, status=deny.status)

    def _finish(self) -> Step:
        self.session.finished_at = utcnow()
        db.session.commit()
        return Step(kind="done", login_user_id=self.ctx.login_user_id,
                    login_lifetime=self.ctx.login_lifetime, next_path=noted(self.session, "next"),
                    user_id=self.session.user_id, title=self.flow.title or self.flow.name)

    def _check_authentication(self) -> Deny | None:
        signed_in = self.ctx.current_user_id is not None
        rule = self.flow.authentication
        if rule == FlowAuthentication.REQUIRE_UNAUTHENTICATED and signed_in:
            return Deny("You are already signed in",
                        "Sign out first, then open the invitation link again.", 403)
        if rule in (FlowAuthentication.REQUIRE_AUTHENTICATED,
                    FlowAuthentication.REQUIRE_SUPERUSER) and not signed_in:
            return Deny("Sign in required", "Sign in first, then open this page again.", 403)
        if rule == FlowAuthentication.REQUIRE_SUPERUSER and not self.superuser:
            return Deny("Administrators only", "This page is only for administrators.", 403)
        return None
