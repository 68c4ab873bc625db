"""API authentication: Bearer tokens, their scopes within the owner's grants, sessions for
reads only, no CSRF for tokens, per-token rate limits, and problem+json for every error."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import apitokens
from portal.extensions import db
from portal.models import ApiToken, User, utcnow

from ..conftest import sign_in
from ..helpers import api_token, bearer, make_member

API = "/api/v1/invitations/"


def test_no_token_is_401_with_a_challenge(client, admin):
    response = client.get(API)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_expired_and_revoked_tokens_are_401(client, app, admin):
    secret = api_token(app, "admin")
    assert client.get(API, headers=bearer(secret + "x")).status_code == 401
    assert client.get(API, headers={"Authorization": f"Basic {secret}"}).status_code == 401
    with app.app_context():
        token = db.session.scalar(select(ApiToken))
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get(API, headers=bearer(secret)).status_code == 401
    other = api_token(app, "admin", name="second")
    with app.app_context():
        user = db.session.get(User, admin)
        apitokens.revoke(db.session.scalar(select(ApiToken).filter_by(name="second")), actor=user)
    assert client.get(API, headers=bearer(other)).status_code == 401


def test_a_token_does_only_what_its_scopes_say(client, app, admin):
    secret = api_token(app, "admin", ("audit:view",))
    assert client.get(API, headers=bearer(secret)).status_code == 403
    assert client.get("/api/v1/audit-events/", headers=bearer(secret)).status_code == 200
    assert client.get("/api/v1/users/", headers=bearer(secret)).status_code == 403


def test_a_token_never_holds_more_than_its_owner(app, admin):
    make_member(app, "nina", permissions=["invitations:manage"])
    with app.app_context():
        nina = db.session.scalar(select(User).filter_by(username="nina"))
        for scope in ("users:manage", "superuser"):
            try:
                apitokens.issue(nina, name="x", scopes=[scope],
                                expires_at=utcnow() + timedelta(days=1))
            except apitokens.TokenError as exc:
                assert exc.field == "scopes"
            else:
                raise AssertionError(f"{scope} was granted")


def test_a_permission_lost_is_lost_on_the_token_too(client, app, admin):
    make_member(app, "nina", permissions=["invitations:manage"])
    secret = api_token(app, "nina", ("invitations:manage",))
    assert client.get(API, headers=bearer(secret)).status_code == 200
    with app.app_context():
        nina = db.session.scalar(select(User).filter_by(username="nina"))
        nina.groups.clear()
        db.session.commit()
    assert client.get(API, headers=bearer(secret)).status_code == 403


def test_deactivated_owner_token_stops(client, app, admin):
    make_member(app, "nina", permissions=["invitations:manage"])
    secret = api_token(app, "nina", ("invitations:manage",))
    narrow = bearer(api_token(app, "admin", ("users:manage",)))
    with app.app_context():
        nina_id = db.session.scalar(select(User.id).filter_by(username="nina"))
    # The ceiling with the token's grants: nina's group gives invitations:manage, which this
    # token does not carry, so it may not lock her out, although its owner could.
    refused = client.post(f"/api/v1/users/{nina_id}/deactivate", headers=narrow)
    assert refused.status_code == 403 and "nina-group" in refused.get_json()["detail"]
    wide = bearer(api_token(app, "admin", ("superuser",), name="wide"))
    assert client.post(f"/api/v1/users/{nina_id}/deactivate", headers=wide).status_code == 200
    assert client.get(API, headers=bearer(secret)).status_code == 401


def test_session_may_read_but_not_change(app, admin):
    client = app.test_client()
    sign_in(client)
    assert client.get(API).status_code == 200
    refused = client.post(API, json={"name": "x"})
    assert refused.status_code == 401 and "token" in refused.get_json()["detail"]


def test_token_requests_need_no_csrf_and_last_use_is_noted(client, app, admin):
    secret = api_token(app, "admin", ("invitations:manage",))
    assert client.post(API, json={"name": "x"}, headers=bearer(secret)).status_code == 201
    with app.app_context():
        assert db.session.scalar(select(ApiToken)).last_used_at is not None


def test_the_secret_is_stored_hashed(app, admin):
    secret = api_token(app, "admin")
    with app.app_context():
        token = db.session.scalar(select(ApiToken))
        assert secret not in (token.digest, token.prefix) and len(secret) >= 4 + 43
        assert secret.startswith(token.prefix)


def test_rate_limited_per_token(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, RATELIMIT_API="2 per minute")
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="admin", email="admin@example.com", password="x" * 20,
                    superuser=True)
    one, two = api_token(app, "admin"), api_token(app, "admin", name="other")
    client = app.test_client()
    responses = [client.get("/api/v1/me/", headers=bearer(one)) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    # Scripts can pace themselves: each answer says what is left of the token's budget.
    assert [r.headers.get("X-RateLimit-Remaining") for r in responses[:2]] == ["1", "0"]
    assert responses[0].headers["X-RateLimit-Limit"] == "2"
    limited = client.get("/api/v1/me/", headers=bearer(one))
    assert limited.mimetype == "application/problem+json"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert client.get("/api/v1/me/", headers=bearer(two)).status_code == 200
    # The tenant path shares the token's budget: no second allowance by naming the tenant.
    assert client.get("/api/v1/default/groups/", headers=bearer(one)).status_code == 429
    statuses = [client.get(path, headers=bearer(two)).status_code
                for path in ("/api/v1/default/groups/", "/api/v1/groups/")]
    assert statuses == [200, 429]


def test_bad_bodies_are_4xx_problems(client, app, admin):
    token = bearer(api_token(app, "admin"))
    cases = [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'{"name": 5}', "application/json", 422),
        (b'{"name": "x", "max_uses": 99999999999999999999999}', "application/json", 422),
        (b'{"name": "x", "expires_at": "99999-01-01"}', "application/json", 422),
        (b'{"name": "x\\u0000"}', "application/json", 422),
        (b'{"name": "x", "bogus": 1}', "application/json", 422),
    ]
    for body, kind, status in cases:
        response = client.post(API, data=body, content_type=kind, headers=token)
        assert (response.status_code, response.mimetype) == (status, "application/problem+json"), body
    huge = client.post(API, data=b"x" * (17 * 1024 * 1024), content_type="application/json",
                       headers=token)
    assert huge.status_code == 413 and huge.mimetype == "application/problem+json"
    assert client.get("/api/v1/invitations/99999999999999999999999", headers=token).status_code == 404
    assert client.put(API, headers=token).status_code == 405


def test_cli_creates_a_token(app, admin):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-tokens", "create", "--user", "admin", "--name", "cron",
                                 "--scope", "invitations:manage,audit:view"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("ptk_")
    assert app.test_client().get(API, headers=bearer(secret)).status_code == 200
    refused = runner.invoke(args=["api-tokens", "create", "--user", "admin", "--name", "x",
                                  "--scope", "nope"])
    assert refused.exit_code == 2


def test_me_and_my_pending_invitations(client, app, admin, make_invitation):
    make_invitation(name="for ada", email="ADMIN@example.com")
    make_invitation(name="someone else", email="other@example.com")
    token = bearer(api_token(app, "admin", ("audit:view",)))
    me = client.get("/api/v1/me/", headers=token).get_json()
    assert me["user"]["username"] == "admin" and me["token"]["scopes"] == ["audit:view"]
    # Only a verified address counts (anyone may type any address).
    assert client.get("/api/v1/me/invitations", headers=token).get_json() == []
    with app.app_context():
        from portal.auth.service import mark_email_verified

        ada = db.session.get(User, admin)
        mark_email_verified(ada, ada.email)
        db.session.commit()
    mine = client.get("/api/v1/me/invitations", headers=token).get_json()
    assert [(i["name"], i["tenant"]["slug"]) for i in mine] == [("for ada", "default")]


def test_an_unreachable_rate_limit_storage_still_serves_the_api(app_factory):
    """Redis down: the limiter falls back to counting in memory (or swallows its errors), and
    the counts an answer carries come from there; the API answers anyway."""
    app = app_factory(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="admin", email="admin@example.com", password="x" * 20,
                    superuser=True)
    token = api_token(app, "admin")
    from portal.extensions import limiter

    try:
        answer = app.test_client().get("/api/v1/me/", headers=bearer(token))
    finally:
        # The limiter is one object for every app of the process, and remembers a dead
        # storage: the next test's app must start counting in its own storage at once.
        limiter._storage_dead = False
    assert answer.status_code == 200 and answer.get_json()["user"]["username"] == "admin"
