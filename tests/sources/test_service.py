"""portal.sources.service and portal.sources.oidc without a browser: the rules and the checks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import OIDCSource
from portal.sources import oidc, service

from ..conftest import TEST_PASSWORD
from ..helpers import insert_old_user, upgraded_from


@pytest.mark.parametrize(("issuer", "ok"), [
    ("https://accounts.google.com", True), ("http://127.0.0.1:8080/realms/x", True),
    ("http://idp.example.com", False), ("ftp://idp.example.com", False), ("", False),
    ("https://idp.example.com/?x=1", True),
])
def test_issuer_rule(issuer, ok):
    assert (service.issuer_problem(issuer) is None) is ok


def test_claim_mapping_reads_only_a_real_true_as_verified():
    source = OIDCSource(claim_username="preferred_username", claim_email="mail",
                        claim_name="name", claim_groups="roles")
    identity = oidc.map_claims(source, {"sub": 42, "mail": " a@example.com ", "name": "A",
                                        "email_verified": "yes", "roles": ["x", 3]})
    assert (identity.subject, identity.email, identity.email_verified, identity.groups) == (
        "42", "a@example.com", False, ["x"])
    assert oidc.map_claims(source, {"sub": "1", "email_verified": True}).email_verified


def test_discovery_is_cached_and_checks_its_issuer(app, oidc_provider):
    with app.app_context():
        first = oidc.discover(oidc_provider.issuer, refresh=True)
        assert oidc.discover(oidc_provider.issuer) is first  # from the cache
        with pytest.raises(oidc.ProviderError) as error:
            oidc.discover(oidc_provider.issuer + "/other")
        assert error.value.reason in {"issuer_mismatch", "provider_unreachable"}


def test_a_private_ca_bundle_is_what_requests_verify_with(app_factory, tmp_path, monkeypatch):
    import requests

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    app = app_factory(OIDC_CA_BUNDLE=str(bundle))
    seen = {}

    def fake_get(url, **kwargs):
        seen.update(kwargs)
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(requests, "get", fake_get)  # oidc imports requests when first used
    with app.app_context(), pytest.raises(oidc.ProviderError):
        oidc.discover("https://idp.example.com", refresh=True)
    assert seen["verify"] == str(bundle)


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migration_0009_keeps_existing_users_who_then_link_an_identity(tmp_path):
    from portal.auth.service import authenticate
    from portal.security.passwords import hash_password

    old_install = upgraded_from(
        tmp_path, "0008", lambda c: insert_old_user(c, "old", hash_password(TEST_PASSWORD)))
    with old_install as app, app.app_context():
        old = authenticate("old", TEST_PASSWORD)
        assert old is not None and service.connections_of(old) == []
        source = service.save_source(None, {
            "name": "IdP", "slug": "idp", "issuer": "https://idp.example.com",
            "client_id": "c", "client_secret": "s"}, actor=None, ip=None)
        service.link(old, source, oidc.Identity(subject="s-1"), ip=None)
        assert [c.subject for c in service.connections_of(old)] == ["s-1"]
        assert db.session.scalar(select(OIDCSource.slug)) == "idp"


def _id_token(key, **claims) -> str:
    import time

    from joserfc import jwt as jose_jwt

    now = int(time.time())
    payload = {"iss": "https://idp.test", "aud": "portal", "sub": "u1", "iat": now,
               "exp": now + 300, "nonce": "n-1", **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jose_jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key)


@pytest.mark.parametrize(("claims", "reason"), [
    ({}, None),
    ({"aud": "someone-else"}, "id_token_invalid"),
    ({"iss": "https://evil.test"}, "id_token_invalid"),
    ({"exp": 1_000_000}, "id_token_invalid"),
    ({"nonce": "another"}, "id_token_invalid"),
    ({"nonce": None}, "id_token_invalid"),
])
def test_the_id_token_checks(app, monkeypatch, claims, reason):
    """Signature, iss, aud, exp and nonce: each wrong one refuses the sign-in."""
    from joserfc.jwk import KeySet, RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    keys = KeySet([key])
    monkeypatch.setattr(oidc, "_keys", lambda *a, **k: keys)
    source = OIDCSource(issuer="https://idp.test", client_id="portal")
    document = {"issuer": "https://idp.test", "jwks_uri": "https://idp.test/jwks"}
    token = _id_token(key, **claims)
    with app.app_context():
        if reason is None:
            assert oidc._checked_id_token(source, document, token, nonce="n-1",
                                          access_token=None)["sub"] == "u1"
        else:
            with pytest.raises(oidc.ProviderError) as error:
                oidc._checked_id_token(source, document, token, nonce="n-1", access_token=None)
            assert error.value.reason == reason


def test_an_id_token_signed_by_another_key_is_refused(app, monkeypatch):
    from joserfc.jwk import KeySet, RSAKey

    theirs = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    ours = KeySet([RSAKey.generate_key(2048, parameters={"kid": "k1"})])
    monkeypatch.setattr(oidc, "_keys", lambda *a, **k: ours)
    source = OIDCSource(issuer="https://idp.test", client_id="portal")
    document = {"issuer": "https://idp.test", "jwks_uri": "https://idp.test/jwks"}
    with app.app_context(), pytest.raises(oidc.ProviderError) as error:
        oidc._checked_id_token(source, document, _id_token(theirs), nonce="n-1",
                               access_token=None)
    assert error.value.reason == "id_token_signature"


def test_the_authorization_request_uses_pkce_s256_state_and_nonce(app, oidc_provider):
    from urllib.parse import parse_qs, urlsplit

    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    source = OIDCSource(issuer=oidc_provider.issuer, client_id="portal",
                        scopes="openid email")
    with app.app_context():
        auth = oidc.authorization(source, "secret", "http://portal.test/cb")
    query = parse_qs(urlsplit(auth.url).query)
    assert query["response_type"] == ["code"] and query["scope"] == ["openid email"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [create_s256_code_challenge(auth.code_verifier)]
    assert query["state"] == [auth.state] and query["nonce"] == [auth.nonce]
    assert len(auth.state) >= 43 and len(auth.nonce) >= 43  # 256 bits, url-safe
    assert "secret" not in auth.url


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_a_source_at_0009_tenants_stays_instance_wide_after_the_upgrade(tmp_path):
    """Revision 0014_sso_tenant adds a nullable tenant_id: an existing source keeps working,
    instance-wide, with its sealed secret."""
    from portal.models import utcnow
    from portal.security import sealing

    from ..helpers import old_sql

    def fill(connection):
        old_sql(connection, "INSERT INTO oidc_sources (name, slug, enabled, issuer, client_id, "
                "client_secret_sealed, scopes, claim_username, claim_email, claim_name, "
                "claim_groups, use_userinfo, matching_mode, authoritative_fields, show_on_login, "
                "created_at) VALUES ('Old', 'old', true, 'https://idp.example.com', 'c', :secret, "
                "'openid', 'preferred_username', 'email', 'name', '', true, 'email_link', :fields,"
                " true, :now)", secret=sealing.seal(service.SECRET_LABEL, "s3cret"),
                fields=[], now=utcnow())

    with upgraded_from(tmp_path, "0009_tenants", fill) as app, app.app_context():
        old = service.by_slug("old")
        assert old.tenant_id is None and service.client_secret(old) == "s3cret"
        assert [s.slug for s in service.sources_shown()] == ["old"]


def _two_tenants_and_sources():
    from portal import tenants

    alpha = tenants.create_tenant(name="Alpha", slug="alpha")
    beta = tenants.create_tenant(name="Beta", slug="beta")
    made = {}
    for slug, tenant in (("wide", None), ("alpha-idp", alpha), ("beta-idp", beta)):
        made[slug] = service.save_source(None, {
            "name": slug, "slug": slug, "issuer": "https://idp.example.com", "client_id": slug,
            "client_secret": "s", "scopes": "openid", "tenant_id": tenant.id if tenant else None,
        }, actor=None, ip=None)
    return alpha, beta, made


def test_a_tenant_owned_source_is_offered_only_in_its_tenant(app):
    with app.app_context():
        alpha, beta, made = _two_tenants_and_sources()
        assert [s.slug for s in service.sources_shown()] == ["wide"]
        assert [s.slug for s in service.sources_shown(tenant=alpha)] == ["alpha-idp", "wide"]
        assert [s.slug for s in service.sources_shown(tenant=beta.id)] == ["beta-idp", "wide"]
        assert service.offered_in(made["wide"], None) and service.offered_in(made["wide"], beta.id)
        assert service.offered_in(made["alpha-idp"], alpha.id)
        assert not service.offered_in(made["alpha-idp"], beta.id)
        assert not service.offered_in(made["alpha-idp"], None)


def test_a_tenant_owned_source_matches_by_email_only_accounts_of_its_tenant_alone(app):
    """alpha's provider may vouch for alpha's people, never for an account that is also
    somewhere else (or a superadmin): that would hand alpha's admin the other tenant's account."""
    from portal import tenants
    from portal.auth.service import create_user

    with app.app_context():
        alpha, beta, made = _two_tenants_and_sources()
        tenants.use_tenant(alpha)  # accounts created here are alpha's
        only_alpha = create_user(username="ann", email="ann@example.com", password=TEST_PASSWORD)
        tenants.add_member(only_alpha, alpha)
        both = create_user(username="bo", email="bo@example.com", password=TEST_PASSWORD)
        tenants.add_member(both, alpha)
        tenants.add_member(both, beta)
        root = create_user(username="root", email="root@example.com", password=TEST_PASSWORD,
                           superuser=True)
        tenants.add_member(root, alpha)
        db.session.commit()

        def found(source, email):
            return service.match(source, oidc.Identity(subject=email, email=email,
                                                       email_verified=True)).how

        assert found(made["alpha-idp"], "ann@example.com") == "email"
        assert found(made["alpha-idp"], "bo@example.com") == "none"
        assert found(made["alpha-idp"], "root@example.com") == "none"
        assert found(made["beta-idp"], "ann@example.com") == "none"
        assert found(made["wide"], "bo@example.com") == "email"  # instance-wide: as before


# -- the group map -------------------------------------------------------------------------------


def test_group_map_lines_are_read_and_their_problems_named_by_line():
    pairs, problems = service.parse_group_map(
        "staff → Staff\n\n  eng -> Engineering  \nops => Ops\nstaff → Staff\nno arrow\n→ Staff")
    assert pairs == [["staff", "Staff"], ["eng", "Engineering"], ["ops", "Ops"]]
    assert problems == ["Line 6: write “provider group → portal group”.",
                        "Line 7: write “provider group → portal group”."]
    assert service.format_group_map(pairs) == "staff → Staff\neng → Engineering\nops → Ops"
    assert service.parse_group_map(service.format_group_map(pairs)) == (pairs, [])


def test_sync_touches_only_the_mapped_groups_of_its_tenant(app):
    """alice holds "Staff" of the default tenant and of beta, and "keep" (unmapped). A sign-in
    through a map of the default tenant, the provider sending nothing: only the default
    tenant's "Staff" goes. Adding and removing are the same call's two halves."""
    from portal import tenants
    from portal.auth.service import create_user
    from portal.models import Group

    with app.app_context():
        default = tenants.default_tenant()
        beta = tenants.create_tenant(name="Beta", slug="beta")
        staff, keep = Group(name="Staff", tenant_id=default.id), Group(name="keep",
                                                                       tenant_id=default.id)
        beta_staff = Group(name="Staff", tenant_id=beta.id)
        alice = create_user(username="alice", email="alice@example.com", password=TEST_PASSWORD)
        alice.groups.extend([staff, keep, beta_staff])
        source = OIDCSource(name="IdP", slug="idp", issuer="https://idp.example.com",
                            client_id="c", group_map=[["staff", "Staff"], ["ops", "Ops"]])
        db.session.add(source)
        db.session.commit()
        assert service.sync_groups(alice, source, ["staff"], default.id, ip=None,
                                   remove=True) == ([], [])
        assert service.sync_groups(alice, source, [], default.id, ip=None,
                                   remove=False) == ([], [])  # only adds
        assert service.sync_groups(alice, source, [], default.id, ip=None,
                                   remove=True) == ([], ["Staff"])
        db.session.commit()
        assert sorted((g.tenant_id, g.name) for g in alice.groups) == [
            (default.id, "keep"), (beta.id, "Staff")]
        assert service.sync_groups(alice, source, ["staff", "ops"], default.id, ip=None,
                                   remove=True) == (["Staff"], [])  # no "Ops" here: skipped


def test_only_a_superadmin_maps_groups_for_an_instance_wide_source(app):
    from portal.access import Grants

    with app.app_context():
        plain = Grants()
        assert service.group_map_refusal(plain, [["a", "b"]], None) == (
            "Only a superadmin may map groups for an instance-wide source.")
        assert service.group_map_refusal(plain, [], None) is None
