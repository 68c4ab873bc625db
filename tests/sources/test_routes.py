"""The SSO round trip through the test client, against the real provider (tests/oidc):
portal.sources.routes and the flow pieces it drives."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Group, Invitation, SourceConnection, User

from ..conftest import TEST_PASSWORD, csrf_from, path_of
from ..oidc_provider import SLUG, log_in

ENROLL = "/if/flow/default-enrollment-flow/"
SIGN_IN = "/if/flow/default-authentication-flow/"


def _start_sso(client, page: str) -> str:
    """Press the "… with Test IdP" button on `page`: the provider's authorization URL."""
    html = client.get(page).get_data(as_text=True)
    form = re.search(r'<form method="post" action="(/source/oidc/[^"]+/start)">(.*?)</form>',
                     html, re.S)
    assert form is not None, "no SSO button on the page"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    fields["csrf_token"] = csrf_from(html)
    response = client.post(form.group(1), data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def _sso(client, page: str, login: str, **kwargs):
    """The whole round trip from `page` as `login`: the portal's answer to the callback."""
    back = log_in(_start_sso(client, page), login, **kwargs)
    return client.get(path_of(back))


def _fill(client, url: str, values: dict):
    """Submit the page at `url` with `values` (what a person types); the answer."""
    page = client.get(url).get_data(as_text=True)
    binding = re.search(r'name="binding" value="(\d+)"', page).group(1)
    return client.post(url, data={"csrf_token": csrf_from(page), "binding": binding, **values})


def _events(app, action: str) -> list[dict]:
    with app.app_context():
        return [e.detail for e in db.session.scalars(
            select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id))]


def _invite(app, make_invitation, **kwargs):
    with app.app_context():
        staff = Group(name="staff")
        db.session.add(staff)
        db.session.commit()
        staff_id = staff.id
    invitation_id, link = make_invitation(**kwargs)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        invitation.groups.append(db.session.get(Group, staff_id))
        db.session.commit()
    return invitation_id, link


def test_invitee_continues_with_sso_and_is_enrolled_with_the_invitations_groups(
        app, client, make_invitation, sso_source):
    invitation_id, link = _invite(app, make_invitation, single_use=True)
    client.get(path_of(link))
    response = _sso(client, ENROLL, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith(ENROLL)
    first = client.get(ENROLL).get_data(as_text=True)
    assert 'value="alice"' in first and 'type="password"' not in first  # no password to set
    assert "Continue with Test IdP" not in first  # offered until used
    assert _fill(client, ENROLL, {"username": "alice"}).status_code == 302
    second = client.get(ENROLL).get_data(as_text=True)
    assert re.search(r'value="alice@example.com"[^>]*readonly|readonly[^>]*value="alice@example'
                     r'.com"', second), "the provider's address is read-only"
    response = _fill(client, ENROLL, {"name": "Someone Else", "email": "forged@example.com"})
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="alice"))
        assert (user.email, user.name, user.password_hash) == (
            "alice@example.com", "Alice Liddell", None)
        assert [g.name for g in user.groups] == ["staff"]
        links = db.session.scalars(select(SourceConnection).filter_by(user_id=user.id)).all()
        assert [c.subject for c in links] == ["alice"]
        assert db.session.get(Invitation, invitation_id).use_count == 1
    assert client.get("/account/").status_code == 200  # signed in


def test_recipient_bound_invitation_refuses_another_address_and_stays_unused(
        app, client, make_invitation, sso_source):
    invitation_id, link = _invite(app, make_invitation, email="carol@example.com",
                                  single_use=True)
    client.get(path_of(link))
    response = _sso(client, ENROLL, "alice")
    assert response.status_code == 403
    assert "This invitation is for another address" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert db.session.scalar(select(func.count()).select_from(User)) == 1  # the admin
    assert _events(app, "sso.failed")[-1] == {"reason": "wrong_email"}
    # the right person, same browser, same invitation: it works
    response = _sso(client, ENROLL, "carol")
    assert response.status_code == 302


def test_unverified_email_is_refused(app, client, make_invitation, sso_source):
    invitation_id, link = _invite(app, make_invitation)
    client.get(path_of(link))
    response = _sso(client, ENROLL, "mallory")
    assert response.status_code == 403
    assert "not verified" in response.get_data(as_text=True)
    assert _events(app, "sso.failed")[-1] == {"reason": "unverified_email"}


def test_denied_consent_ends_on_a_clear_page(app, client, make_invitation, sso_source):
    _, link = _invite(app, make_invitation)
    client.get(path_of(link))
    response = _sso(client, ENROLL, "alice", consent=False)
    assert response.status_code == 400
    assert "Sign-in was cancelled" in response.get_data(as_text=True)
    assert _events(app, "sso.failed")[-1] == {"reason": "access_denied"}


def test_tampered_state_and_replayed_callback_are_refused(app, client, make_invitation,
                                                          sso_source):
    _, link = _invite(app, make_invitation)
    client.get(path_of(link))
    back = path_of(log_in(_start_sso(client, ENROLL), "alice"))
    tampered = re.sub(r"state=[^&]+", "state=forged", back)
    response = client.get(tampered)
    assert response.status_code == 400 and "not valid here" in response.get_data(as_text=True)
    # the forged try consumed this browser's expected state: start again, finish, replay
    back = path_of(log_in(_start_sso(client, ENROLL), "alice"))
    assert client.get(back).status_code == 302
    with client.session_transaction() as cookie:  # even with the state put back in the cookie
        cookie["sso_state"] = re.search(r"state=([^&]+)", back).group(1)
    response = client.get(back)
    assert response.status_code == 400
    assert "already completed" in response.get_data(as_text=True)
    assert [e["reason"] for e in _events(app, "sso.failed")] == ["state_mismatch", "state_used"]


def test_a_code_used_twice_is_refused_by_the_provider(app, client, make_invitation,
                                                      sso_source, monkeypatch):
    """The same code with a fresh attempt (as if the state check were passed): the provider
    refuses the second exchange, and the page says so."""
    from portal.sources import service

    _, link = _invite(app, make_invitation)
    client.get(path_of(link))
    back = path_of(log_in(_start_sso(client, ENROLL), "alice"))
    code = re.search(r"code=([^&]+)", back).group(1)
    assert client.get(back).status_code == 302
    with app.app_context():
        attempt = db.session.scalar(select(service.SSOAttempt).order_by(
            service.SSOAttempt.id.desc()).limit(1))
        attempt_id = attempt.id
    with app.test_request_context():
        attempt = db.session.get(service.SSOAttempt, attempt_id)
        try:
            service.finish(attempt, code=code, redirect_uri=f"http://portal.test/source/oidc/"
                                                            f"{SLUG}/callback")
        except service.SourceError as error:
            assert error.reason == "code_refused"
        else:
            raise AssertionError("a replayed code was accepted")


def test_existing_user_signs_in_with_sso_after_confirming_the_link(app, client, sso_source):
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        flow_stage = _identification_stage()
        flow_stage.options = {**flow_stage.options, "sources": [sso_source]}
        db.session.commit()
    response = _sso(client, SIGN_IN, "bob")
    assert response.status_code == 302 and "/confirm" in response.headers["Location"]
    page = client.get(path_of(response.headers["Location"])).get_data(as_text=True)
    assert "Link your Test IdP account?" in page
    response = client.post(path_of(response.headers["Location"]), data={
        "csrf_token": csrf_from(page), "answer": "link"})
    assert response.status_code == 302
    response = client.get(SIGN_IN)
    assert response.status_code == 302  # the flow finished: signed in
    assert client.get("/account/").status_code == 200
    with app.app_context():
        bob = db.session.scalar(select(User).filter_by(username="bob"))
        assert [c.subject for c in service.connections_of(bob)] == ["bob"]
    # next time: by subject, no question
    client.post("/auth/logout", data={"csrf_token": csrf_from(
        client.get("/account/").get_data(as_text=True))})
    response = _sso(client, SIGN_IN, "bob")
    assert response.status_code == 302 and response.headers["Location"].endswith(SIGN_IN)
    assert client.get(SIGN_IN).status_code == 302
    assert client.get("/account/").status_code == 200


def _identification_stage():
    from portal.models import Stage

    return db.session.scalar(select(Stage).filter_by(name="default-authentication-identification"))


def test_deactivated_account_cannot_sign_in_with_sso(app, client, sso_source):
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        user = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        source = db.session.get(service.OIDCSource, sso_source)
        service.link(user, source, service.oidc.Identity(subject="bob"), ip=None)
        user.active = False
        stage = _identification_stage()
        stage.options = {**stage.options, "sources": [sso_source]}
        db.session.commit()
    response = _sso(client, SIGN_IN, "bob")
    assert response.status_code == 403 and "deactivated" in response.get_data(as_text=True)
    assert client.get("/account/").status_code == 302  # not signed in
    assert _events(app, "sso.failed")[-1] == {"reason": "deactivated"}


def _offer_on_sign_in(source_id: int) -> None:
    stage = _identification_stage()
    stage.options = {**stage.options, "sources": [source_id]}
    db.session.commit()


def test_sso_only_user_created_directly_signs_in_and_is_linked_by_verified_email(
        app, client, sso_source, oidc_provider):
    from portal.auth.service import create_user_directly
    from portal.sources import service

    with app.app_context():
        source = db.session.get(service.OIDCSource, sso_source)
        create_user_directly(username="carol", email="Carol@Example.com", link_for=str,
                             lifetime=None, sso_source=source)
        _offer_on_sign_in(sso_source)
    response = client.get(SIGN_IN)
    page = response.get_data(as_text=True)
    assert "Sign in with Test IdP" in page
    # the button's redirect to the provider is allowed by the page's CSP, and only that
    origin = oidc_provider.issuer
    assert f"form-action 'self' {origin};" in response.headers["Content-Security-Policy"]
    response = _sso(client, SIGN_IN, "carol")
    assert response.status_code == 302 and response.headers["Location"].endswith(SIGN_IN)
    assert client.get(SIGN_IN).status_code == 302  # no password page: done, signed in
    assert client.get("/account/").status_code == 200
    with app.app_context():
        carol = db.session.scalar(select(User).filter_by(username="carol"))
        assert [c.subject for c in service.connections_of(carol)] == ["carol"]
    assert [e["source"] for e in _events(app, "sso.signed_in")] == [SLUG]


def test_unknown_identity_at_sign_in_without_enrollment_flow_is_refused(app, client,
                                                                        sso_source):
    with app.app_context():
        _offer_on_sign_in(sso_source)
    response = _sso(client, SIGN_IN, "alice")
    assert response.status_code == 403
    assert "not linked to an account here" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_the_provider_being_down_ends_on_a_clear_page(app, client, sso_source):
    from portal.sources import oidc, service

    with app.app_context():
        source = db.session.get(service.OIDCSource, sso_source)
        source.issuer = "http://127.0.0.1:9/"  # nothing listens on the discard port
        db.session.commit()
        oidc.forget(source.issuer)
        _offer_on_sign_in(sso_source)
    html = client.get(SIGN_IN).get_data(as_text=True)
    form = re.search(r'action="(/source/oidc/[^"]+/start)">(.*?)</form>', html, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    response = client.post(form.group(1), data={**fields, "csrf_token": csrf_from(html)})
    assert response.status_code == 502
    assert "The sign-in provider is not answering" in response.get_data(as_text=True)
    assert _events(app, "sso.failed")[-1] == {"reason": "provider_unreachable"}


def test_no_secret_code_or_token_reaches_the_logs(app, client, make_invitation, sso_source,
                                                  caplog, monkeypatch):
    """The whole round trip, every logger at DEBUG (urllib3, Authlib, the portal): neither the
    client secret nor the code, the state, the nonce or any token appears."""
    import logging

    from authlib.integrations.requests_client import OAuth2Session  # what oidc uses

    seen: dict[str, str] = {}
    original = OAuth2Session.fetch_token

    def spy(self, *args, **kwargs):
        token = original(self, *args, **kwargs)
        seen.update({k: v for k, v in token.items() if k in ("access_token", "id_token")})
        seen["code"] = kwargs["code"]
        seen["code_verifier"] = kwargs["code_verifier"]
        return token

    monkeypatch.setattr(OAuth2Session, "fetch_token", spy)
    caplog.set_level(logging.DEBUG)
    _, link = _invite(app, make_invitation)
    client.get(path_of(link))
    assert _sso(client, ENROLL, "alice").status_code == 302
    assert set(seen) == {"access_token", "id_token", "code", "code_verifier"}
    assert "urllib3" in {r.name.split(".")[0] for r in caplog.records}  # the log was on
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    from ..oidc_provider import CLIENT_SECRET

    for name, value in {"client secret": CLIENT_SECRET, **seen}.items():
        assert value not in text, f"the {name} is in the log"


def test_existing_account_accepting_through_sso_gets_no_second_account(
        app, client, make_invitation, sso_source):
    """The account found by its linked identity takes the invitation through the invitation
    service (grant_access: one use, its groups), is signed in, and no second account is made."""
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        service.link(bob, db.session.get(service.OIDCSource, sso_source),
                     service.oidc.Identity(subject="bob"), ip=None)
    invitation_id, link = _invite(app, make_invitation)
    client.get(path_of(link))
    response = _sso(client, ENROLL, "bob")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    assert client.get("/account/").status_code == 200  # signed in as bob
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2  # admin, bob
        assert db.session.get(Invitation, invitation_id).use_count == 1
        bob = db.session.scalar(select(User).filter_by(username="bob"))
        assert [g.name for g in bob.groups] == ["staff"]


def test_a_new_identity_at_sign_in_enrolls_through_the_sources_enrollment_flow(
        app, client, sso_source):
    """Unknown at sign-in: the source's enrollment flow, pre-filled from the claims (the email
    read-only), then the account exists, linked, signed in."""
    from portal.models import Flow, FlowDesignation, FlowStageBinding, Prompt, Stage
    from portal.sources import service

    with app.app_context():
        fields = [db.session.scalar(select(Prompt).filter_by(name=f"default-enrollment-field-{n}"))
                  for n in ("username", "name", "email")]
        flow = Flow(slug="sso-enroll", name="SSO enrollment", title="Join with SSO",
                    designation=FlowDesignation.ENROLLMENT)
        flow.bindings.extend([
            FlowStageBinding(stage=Stage(name="sso-about-you", type="prompt", options={},
                                         prompts=fields), order=10),
            FlowStageBinding(stage=Stage(name="sso-write", type="user_write", options={}),
                             order=20),
            FlowStageBinding(stage=Stage(name="sso-enroll-login", type="user_login",
                                         options={}), order=30)])
        db.session.add(flow)
        db.session.flush()
        db.session.get(service.OIDCSource, sso_source).enrollment_flow_id = flow.id
        _offer_on_sign_in(sso_source)
    response = _sso(client, SIGN_IN, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/if/flow/sso-enroll/")
    page = client.get("/if/flow/sso-enroll/").get_data(as_text=True)
    assert 'value="alice"' in page and 'value="Alice Liddell"' in page
    response = _fill(client, "/if/flow/sso-enroll/", {"username": "alice",
                                                      "email": "other@example.com"})
    assert response.status_code == 302
    assert client.get("/account/").status_code == 200
    with app.app_context():
        alice = db.session.scalar(select(User).filter_by(username="alice"))
        assert (alice.email, alice.password_hash) == ("alice@example.com", None)
        assert [c.subject for c in service.connections_of(alice)] == ["alice"]


# -- tenants: the invitation's tenant, groups and direct roles through SSO ----------------------


def _tenant_invitation(app, make_invitation, slug: str = "alpha", **kwargs) -> tuple[int, str]:
    """An invitation of tenant `slug` (created here) with a group of that tenant and a direct
    role limited to the namespace "eng"."""
    from portal import tenants
    from portal.models import Role

    with app.app_context():
        tenant = tenants.by_slug(slug) or tenants.create_tenant(name=slug.title(), slug=slug)
        tenants.use_tenant(tenant)
        group = Group(name=f"{slug}-crew", attributes={})
        role = Role(name=f"{slug}-editors", permissions=["invitations:view"])
        db.session.add_all([group, role])
        db.session.commit()
        group_id, role_id = group.id, role.id
    invitation_id, link = make_invitation(**kwargs)
    with app.app_context():
        role = db.session.get(Role, role_id)
        invitation = db.session.get(Invitation, invitation_id)
        invitation.tenant_id = tenants.by_slug(slug).id  # (make_invitation acts in the default)
        invitation.groups.append(db.session.get(Group, group_id))
        from portal.models import InvitationRole

        invitation.direct_roles.append(InvitationRole(role=role, namespaces=["eng"]))
        db.session.commit()
    return invitation_id, link


def _access_of(username: str) -> dict:
    from portal.models import MemberRole, Tenant, tenant_members

    user = db.session.scalar(select(User).filter_by(username=username))
    member_of = db.session.scalars(select(Tenant.slug).join(
        tenant_members, tenant_members.c.tenant_id == Tenant.id).where(
        tenant_members.c.user_id == user.id).order_by(Tenant.slug)).all()
    roles = {(db.session.get(Tenant, r.tenant_id).slug, r.role.name, tuple(r.namespaces or ()))
             for r in db.session.scalars(select(MemberRole).filter_by(user_id=user.id))}
    return {"tenants": member_of, "groups": sorted(g.name for g in user.groups), "roles": roles}


def test_an_invitee_enrolling_through_sso_lands_in_the_invitations_tenant(
        app, client, make_invitation, sso_source):
    """The enrollment's user write gives the new account the invitation's tenant, its group and
    its namespace-limited direct role (tenants.grant_invitation_access), as without SSO."""
    invitation_id, link = _tenant_invitation(app, make_invitation, single_use=True)
    client.get(path_of(link))
    assert _sso(client, ENROLL, "alice").status_code == 302
    assert _fill(client, ENROLL, {"username": "alice"}).status_code == 302
    assert _fill(client, ENROLL, {"name": "Alice"}).status_code == 302
    with app.app_context():
        assert _access_of("alice") == {"tenants": ["alpha"], "groups": ["alpha-crew"],
                                       "roles": {("alpha", "alpha-editors", ("eng",))}}
        assert db.session.get(Invitation, invitation_id).use_count == 1


def _bob_of_beta(app, sso_source) -> None:
    """bob: an account of tenant beta (a member, with a group of beta), linked to the provider."""
    from portal import tenants
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        bob.groups.append(Group(name="beta-crew", attributes={}))
        tenants.add_member(bob, beta)
        service.link(bob, db.session.get(service.OIDCSource, sso_source),
                     service.oidc.Identity(subject="bob"), ip=None)


def test_an_account_of_another_tenant_accepting_through_sso_joins_the_invitations_tenant(
        app, client, make_invitation, sso_source):
    _bob_of_beta(app, sso_source)
    invitation_id, link = _tenant_invitation(app, make_invitation, single_use=True)
    with app.app_context():
        users = db.session.scalar(select(func.count()).select_from(User))
    client.get(path_of(link))
    response = _sso(client, ENROLL, "bob")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == users  # no second
        assert _access_of("bob") == {"tenants": ["alpha", "beta"],
                                     "groups": ["alpha-crew", "beta-crew"],
                                     "roles": {("alpha", "alpha-editors", ("eng",))}}
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_a_recipient_bound_tenant_invitation_refuses_an_existing_account_of_another_address(
        app, client, make_invitation, sso_source):
    """bob's verified address is not the recipient's: refused, the invitation unused, bob not
    in alpha; the recipient herself then accepts."""
    _bob_of_beta(app, sso_source)
    invitation_id, link = _tenant_invitation(app, make_invitation, email="carol@example.com")
    client.get(path_of(link))
    response = _sso(client, ENROLL, "bob")
    assert response.status_code == 403
    assert "This invitation is for another address" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert _access_of("bob") == {"tenants": ["beta"], "groups": ["beta-crew"],
                                     "roles": set()}
    assert _events(app, "sso.failed")[-1] == {"reason": "wrong_email"}


def test_a_tenant_owned_source_is_offered_only_on_its_tenants_invitations(
        app, client, make_invitation, sso_source):
    """The provider's source owned by alpha: "Continue with" on alpha's invitation (and the
    round trip works), absent from beta's, and a forged start from beta's is refused."""
    from portal import tenants
    from portal.sources import service

    with app.app_context():
        tenants.create_tenant(name="Beta", slug="beta")
    _, alpha_link = _tenant_invitation(app, make_invitation)
    with app.app_context():
        db.session.get(service.OIDCSource, sso_source).tenant_id = tenants.by_slug("alpha").id
        db.session.commit()
    _, beta_link = _tenant_invitation(app, make_invitation, slug="beta")
    beta_client = app.test_client()
    beta_client.get(path_of(beta_link))
    page = beta_client.get(ENROLL).get_data(as_text=True)
    assert "Continue with Test IdP" not in page
    response = beta_client.post(f"/source/oidc/{SLUG}/start", data={
        "csrf_token": csrf_from(page), "flow": "default-enrollment-flow"})
    assert response.status_code == 404
    assert _events(app, "sso.failed")[-1] == {"reason": "source_elsewhere"}
    client.get(path_of(alpha_link))
    assert "Continue with Test IdP" in client.get(ENROLL).get_data(as_text=True)
    assert _sso(client, ENROLL, "alice").status_code == 302


# -- the group map: provider groups -> portal groups --------------------------------------------


@pytest.fixture
def changing_provider(tmp_path):
    """A provider of its own that reads its accounts from a file at each login: a test changes
    someone's groups there between two sign-ins, as a directory admin would."""
    from .. import oidc_provider as op

    op.skip_or_fail_if_missing()
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps(op.ACCOUNTS))
    provider = op.start(accounts_file=accounts)
    yield provider, accounts
    provider.stop()


def _groups_at_provider(accounts_file, login: str, groups: list[str]) -> None:
    from ..oidc_provider import ACCOUNTS

    accounts_file.write_text(json.dumps({**ACCOUNTS, login: {**ACCOUNTS[login],
                                                             "groups": groups}}))


def _mapped_source(issuer: str, group_map, tenant_id=None) -> int:
    from portal.sources import service

    from .. import oidc_provider as op

    return service.save_source(None, {
        "name": "Test IdP", "slug": op.SLUG, "issuer": issuer, "client_id": op.CLIENT_ID,
        "client_secret": op.CLIENT_SECRET, "scopes": "openid email profile groups",
        "claim_groups": "groups", "authoritative_fields": ["email"], "group_map": group_map,
        "tenant_id": tenant_id}, actor=None, ip=None).id


def _sign_out(client) -> None:
    client.post("/auth/logout", data={"csrf_token": csrf_from(
        client.get("/account/").get_data(as_text=True))})


def _groups_of(username: str) -> list[str]:
    user = db.session.scalar(select(User).filter_by(username=username))
    return sorted(g.name for g in user.groups)


def test_the_group_map_follows_the_providers_groups_at_enrollment_and_each_sign_in(
        app, client, make_invitation, changing_provider):
    """alice enrolls with the invitation's group "keep" and, through the map, "Staff" (the
    provider says "staff"); the directory moves her to "ops": at her next sign-in "Ops" is
    added and "Staff" taken away; then no group at all: "Ops" goes too. "keep" is not in the
    map: never touched. Each change is audited."""
    provider, accounts = changing_provider
    with app.app_context():
        db.session.add_all([Group(name="Staff"), Group(name="Ops"), Group(name="keep")])
        db.session.commit()
        source_id = _mapped_source(provider.issuer, "staff → Staff\nops -> Ops")
        _offer_on_sign_in(source_id)
        keep = db.session.scalar(select(Group).filter_by(name="keep")).id
    invitation_id, link = make_invitation(single_use=True)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        invitation.groups.append(db.session.get(Group, keep))
        db.session.commit()
    client.get(path_of(link))
    assert _sso(client, ENROLL, "alice").status_code == 302
    assert _fill(client, ENROLL, {"username": "alice"}).status_code == 302
    assert _fill(client, ENROLL, {"name": "Alice"}).status_code == 302
    with app.app_context():
        assert _groups_of("alice") == ["Staff", "keep"]
    _sign_out(client)
    _groups_at_provider(accounts, "alice", ["ops", "unmapped"])
    assert _sso(client, SIGN_IN, "alice").status_code == 302
    assert client.get(SIGN_IN).status_code == 302  # signed in
    with app.app_context():
        assert _groups_of("alice") == ["Ops", "keep"]
    _sign_out(client)
    _groups_at_provider(accounts, "alice", [])
    assert _sso(client, SIGN_IN, "alice").status_code == 302
    assert client.get(SIGN_IN).status_code == 302
    with app.app_context():
        assert _groups_of("alice") == ["keep"]
    events = _events(app, "sso.groups")
    assert [(e["added"], e["removed"]) for e in events] == [
        (["Staff"], []), (["Ops"], ["Staff"]), ([], ["Ops"])]
    # the same groups again: nothing changes, nothing is audited
    _sign_out(client)
    assert _sso(client, SIGN_IN, "alice").status_code == 302
    assert len(_events(app, "sso.groups")) == 3


def test_an_instance_wide_sources_map_names_groups_of_the_invitations_tenant(
        app, client, make_invitation, oidc_provider):
    """Both the default tenant and alpha have a group "Staff": alice, invited to alpha, gets
    alpha's (with the invitation's own group), not the default tenant's."""
    with app.app_context():
        db.session.add(Group(name="Staff"))
        db.session.commit()
        _mapped_source(oidc_provider.issuer, "staff → Staff")
    invitation_id, link = _tenant_invitation(app, make_invitation, single_use=True)
    with app.app_context():
        from portal import tenants

        db.session.add(Group(name="Staff", tenant_id=tenants.by_slug("alpha").id))
        db.session.commit()
    client.get(path_of(link))
    assert _sso(client, ENROLL, "alice").status_code == 302
    assert _fill(client, ENROLL, {"username": "alice"}).status_code == 302
    assert _fill(client, ENROLL, {"name": "Alice"}).status_code == 302
    with app.app_context():
        alice = db.session.scalar(select(User).filter_by(username="alice"))
        assert sorted((g.tenant_id, g.name) for g in alice.groups) == [
            (tenants.by_slug("alpha").id, "Staff"), (tenants.by_slug("alpha").id, "alpha-crew")]
        assert _access_of("alice")["tenants"] == ["alpha"]


def test_an_existing_account_accepting_through_sso_gets_the_mapped_groups(
        app, client, make_invitation, oidc_provider):
    """bob, linked already (the provider's "alice", in its group "staff"), accepts alpha's
    invitation through alpha's own source: the invitation's group and, through the source's
    map, alpha's "Staff"; no second account."""
    from portal import tenants
    from portal.auth.service import create_user
    from portal.sources import service

    invitation_id, link = _tenant_invitation(app, make_invitation, single_use=True)
    with app.app_context():
        alpha = tenants.by_slug("alpha")
        tenants.use_tenant(alpha)
        db.session.add(Group(name="Staff"))
        db.session.commit()
        source_id = _mapped_source(oidc_provider.issuer, "staff → Staff", tenant_id=alpha.id)
        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        service.link(bob, db.session.get(service.OIDCSource, source_id),
                     service.oidc.Identity(subject="alice"), ip=None)
        users = db.session.scalar(select(func.count()).select_from(User))
    client.get(path_of(link))
    response = _sso(client, ENROLL, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    with app.app_context():
        assert _access_of("bob")["groups"] == ["Staff", "alpha-crew"]
        assert db.session.scalar(select(func.count()).select_from(User)) == users
        assert db.session.get(Invitation, invitation_id).use_count == 1
        alpha_id = tenants.by_slug("alpha").id
    assert _events(app, "sso.groups") == [
        {"source": SLUG, "tenant_id": alpha_id, "added": ["Staff"], "removed": []}]


# -- an authorization code that expired at the provider -----------------------------------------


@pytest.fixture
def short_code_provider(app):
    """A provider of its own whose authorization codes live 3 seconds, and the source for it."""
    from .. import oidc_provider as op

    op.skip_or_fail_if_missing()
    provider = op.start(code_ttl=3)
    with app.app_context():
        source_id = _mapped_source(provider.issuer, "")
    yield source_id
    provider.stop()


def test_a_code_that_expired_at_the_provider_ends_on_a_clear_page_with_nothing_written(
        app, client, make_invitation, short_code_provider):
    """The person takes longer than the code lives (3 s here) between the provider's answer and
    the portal's exchange: the provider refuses the expired code; the page says to start again,
    the refusal is audited, and nothing was written (no account, no link, the invitation
    unused, nothing pre-filled). Starting again then works."""
    import time

    invitation_id, link = _invite(app, make_invitation, single_use=True)
    client.get(path_of(link))
    with app.app_context():
        users = db.session.scalar(select(func.count()).select_from(User))
    back = path_of(log_in(_start_sso(client, ENROLL), "alice"))
    time.sleep(4.2)
    response = client.get(back)
    assert response.status_code == 400
    assert "it may have expired or been used already" in response.get_data(as_text=True)
    assert _events(app, "sso.failed") == [{"reason": "code_refused"}]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == users
        assert db.session.scalar(select(func.count()).select_from(SourceConnection)) == 0
        assert db.session.get(Invitation, invitation_id).use_count == 0
    first = client.get(ENROLL).get_data(as_text=True)
    assert 'value="alice"' not in first and "Continue with Test IdP" in first
    response = _sso(client, ENROLL, "alice")  # in good time
    assert response.status_code == 302 and response.headers["Location"].endswith(ENROLL)
    assert 'value="alice"' in client.get(ENROLL).get_data(as_text=True)


# -- where a tenant's own source is offered -----------------------------------------------------


def test_a_tenant_owned_source_is_offered_on_its_tenants_flows_not_on_instance_wide_ones(
        app, client, sso_source):
    """The provider's source owned by alpha, and listed by the (shared) identification stage:
    the instance-wide sign-in page does not show it and refuses a forged start (audited); a
    sign-in flow owned by alpha, binding the same stages, shows it and signs bob in."""
    from portal import tenants
    from portal.models import Flow, FlowDesignation, FlowStageBinding, Stage
    from portal.sources import service

    with app.app_context():
        alpha = tenants.create_tenant(name="Alpha", slug="alpha")
        db.session.get(service.OIDCSource, sso_source).tenant_id = alpha.id
        _offer_on_sign_in(sso_source)
        flow = Flow(slug="alpha-sign-in", name="Alpha sign-in", title="Sign in to Alpha",
                    designation=FlowDesignation.AUTHENTICATION, tenant_id=alpha.id)
        db.session.add(flow)
        for order, name in ((10, "default-authentication-identification"),
                            (100, "default-authentication-login")):
            flow.bindings.append(FlowStageBinding(order=order, stage=db.session.scalar(
                select(Stage).filter_by(name=name))))
        db.session.commit()
        from portal.auth.service import create_user

        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        tenants.add_member(bob, alpha)
        service.link(bob, db.session.get(service.OIDCSource, sso_source),
                     service.oidc.Identity(subject="bob"), ip=None)
    page = client.get(SIGN_IN).get_data(as_text=True)
    assert "Sign in with Test IdP" not in page
    binding = re.search(r'name="binding" value="(\d+)"', page).group(1)
    response = client.post(f"/source/oidc/{SLUG}/start", data={
        "csrf_token": csrf_from(page), "flow": "default-authentication-flow",
        "binding": binding})
    assert response.status_code == 404
    assert _events(app, "sso.failed") == [{"reason": "source_elsewhere"}]
    alpha_sign_in = "/if/flow/alpha-sign-in/"
    assert "Sign in with Test IdP" in client.get(alpha_sign_in).get_data(as_text=True)
    response = _sso(client, alpha_sign_in, "bob")
    assert response.status_code == 302 and response.headers["Location"].endswith(alpha_sign_in)
    client.get(alpha_sign_in)
    assert client.get("/account/").status_code == 200  # signed in as bob
    assert [e["flow"] for e in _events(app, "sso.signed_in")] == ["alpha-sign-in"]
