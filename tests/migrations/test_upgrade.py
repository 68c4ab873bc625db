"""An install of the previous release upgrades with nothing lost.

The database is built by `flask db upgrade 0006` (before session generations, TOTP devices and
recovery codes), filled with that schema's own SQL, as an install of the time would have it:
users with argon2id hashes (one at the production parameters), groups, an enrollment flow of
its own with stages, prompts and bindings, and invitations (valid, used, revoked). After
`flask db upgrade` to head, everything is used through HTTP: the old passwords sign in on
/auth/login (the seeded sign-in flow, created on first use), the valid link enrolls a new
person into the invitation's group, the used and revoked links are still refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Flow, Invitation, InvitationUse, User
from portal.security import passwords, tokens

from ..conftest import PRODUCTION_HASHER, TEST_PASSWORD, numbers_in, sign_in, submit
from ..helpers import insert_old_user, old_sql, signed_in, upgraded_from

OLD_REVISION = "0006"
SLUG = "staff-onboarding"
URL = f"/if/flow/{SLUG}/"
CREATED = datetime(2026, 11, 1, tzinfo=UTC)
NEW_PASSWORD = "violet-kettle-harbour-42"

# (name, field_key, label, type, order) and the two prompt pages, as 0006's seed wrote them.
PROMPTS = [
    ("staff-username", "username", "Username", "username", 0),
    ("staff-password", "password", "Password", "password", 1),
    ("staff-password-repeat", "password_repeat", "Password (repeat)", "password", 2),
    ("staff-name", "name", "Name", "text", 0),
    ("staff-email", "email", "Email", "email", 1),
]
# (stage name, type, options, order, prompts on the page). user write has no
# user_creation_mode: stages of the time did not know it; the default must keep enrolling.
BINDINGS = [
    ("staff-invitation", "invitation", {"continue_flow_without_invitation": False}, 5, []),
    ("staff-account", "prompt", {}, 10, ["staff-username", "staff-password", "staff-password-repeat"]),
    ("staff-details", "prompt", {}, 11, ["staff-name", "staff-email"]),
    ("staff-user-write", "user_write", {}, 20, []),
    ("staff-user-login", "user_login", {}, 100, []),
]
# (name, single_use, use_count, revoked) -> the link's token is kept for the test.
INVITATIONS = [("valid", True, 0, False), ("used", True, 1, False), ("revoked", False, 0, True)]


def _fill_0006(links: dict):
    """The rows an install at 0006 holds, written with that schema's SQL."""

    def fill(connection):
        admin = insert_old_user(connection, "root", PRODUCTION_HASHER.hash(TEST_PASSWORD))
        olga = insert_old_user(connection, "olga", passwords.hash_password(TEST_PASSWORD))
        groups = {}
        for name, superuser in (("admins", True), ("staff", False)):
            groups[name] = old_sql(
                connection, "INSERT INTO groups (name, is_superuser, attributes, created_at) "
                "VALUES (:name, :superuser, :attributes, :created) RETURNING id",
                name=name, superuser=superuser, attributes={}, created=CREATED).scalar_one()
        for user, group in ((admin, "admins"), (olga, "staff")):
            old_sql(connection, "INSERT INTO user_groups (user_id, group_id) VALUES (:u, :g)",
                    u=user, g=groups[group])

        flow = old_sql(
            connection, "INSERT INTO flows (slug, name, title, designation, authentication, "
            "created_at) VALUES (:slug, 'Staff onboarding', 'Join the staff', 'enrollment', "
            "'require_unauthenticated', :created) RETURNING id", slug=SLUG, created=CREATED,
        ).scalar_one()
        prompts = {
            name: old_sql(
                connection, 'INSERT INTO prompts (name, field_key, label, type, required, '
                'placeholder, initial_value, help_text, "order", choices, options) VALUES '
                "(:name, :key, :label, :type, true, :placeholder, '', '', :order, NULL, "
                ":options) RETURNING id", name=name, key=key, label=label, type=kind,
                placeholder=label, order=order, options={}).scalar_one()
            for name, key, label, kind, order in PROMPTS}
        for name, kind, options, order, page in BINDINGS:
            stage = old_sql(connection, "INSERT INTO stages (name, type, options) VALUES "
                            "(:name, :type, :options) RETURNING id",
                            name=name, type=kind, options=options).scalar_one()
            for prompt in page:
                old_sql(connection, "INSERT INTO prompt_stage_fields (stage_id, prompt_id) "
                        "VALUES (:s, :p)", s=stage, p=prompts[prompt])
            old_sql(connection, 'INSERT INTO flow_stage_bindings (flow_id, stage_id, "order", '
                    "condition, evaluate_on_plan, re_evaluate_policies) VALUES (:f, :s, :o, "
                    "NULL, false, true)", f=flow, s=stage, o=order)

        for name, single_use, use_count, revoked in INVITATIONS:
            salt = tokens.new_salt()
            token = tokens.derive_token("invitation", salt)
            invitation = old_sql(
                connection, "INSERT INTO invitations (name, token_salt, token_digest, expires_at, "
                "flow_id, attributes, single_use, max_uses, use_count, revoked_at, "
                "created_by_id, created_at, email, cc, bcc, message, allowed_domains) VALUES "
                "(:name, :salt, :digest, :expires, :flow, :attributes, :single, NULL, :uses, "
                ":revoked, :admin, :created, NULL, :empty, :empty, '', :empty) RETURNING id",
                name=name, salt=salt, digest=tokens.digest(token),
                expires=datetime.now(UTC) + timedelta(days=7), flow=flow, attributes={},
                single=single_use, uses=use_count,
                revoked=CREATED if revoked else None, admin=admin, created=CREATED,
                empty=[]).scalar_one()
            old_sql(connection, "INSERT INTO invitation_groups (invitation_id, group_id) "
                    "VALUES (:i, :g)", i=invitation, g=groups["staff"])
            if use_count:
                old_sql(connection, "INSERT INTO invitation_uses (invitation_id, user_id, "
                        "used_at) VALUES (:i, :u, :at)", i=invitation, u=olga, at=CREATED)
            links[name] = f"{URL}?itoken={token}"

    return fill


def _enroll(client, link: str):
    page = client.get(link, follow_redirects=True)
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (1, 2)
    page = submit(client, URL, {"username": "newcomer", "password": NEW_PASSWORD,
                                "password_repeat": NEW_PASSWORD})
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (2, 2)
    return submit(client, URL, {"name": "Nora Newcomer", "email": "nora@example.com"},
                  follow_redirects=False)


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_an_install_at_0006_upgrades_to_head_and_keeps_working(tmp_path):
    links: dict[str, str] = {}
    with upgraded_from(tmp_path, OLD_REVISION, _fill_0006(links)) as app:
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(User)) == 2
            assert db.session.scalar(select(func.count()).select_from(Invitation)) == 3

        # The old passwords, by username and by address; membership of a superuser group
        # still makes an admin, and an ordinary member is still refused the admin area.
        admin = signed_in(app, "root")
        assert admin.get("/admin/").status_code == 200
        member = signed_in(app, "olga@example.com")
        assert member.get("/account/").status_code == 200
        assert member.get("/admin/").status_code == 403
        stranger = app.test_client()
        refused = sign_in(stranger, "olga", "not-the-password")
        assert "The username or password is not right." in refused.get_data(as_text=True)
        assert stranger.get("/account/").status_code == 302

        # The used and the revoked links are refused as before; nothing was consumed.
        for name, status in (("used", 410), ("revoked", 410)):
            response = app.test_client().get(links[name], follow_redirects=True)
            assert response.status_code == status, name
        # The valid one enrolls a new person, into the invitation's group, once.
        newcomer = app.test_client()
        done = _enroll(newcomer, links["valid"])
        assert done.status_code == 302, done.get_data(as_text=True)
        with app.app_context():
            user = db.session.scalar(select(User).filter_by(username="newcomer"))
            assert [group.name for group in user.groups] == ["staff"]
            valid = db.session.scalar(select(Invitation).filter_by(name="valid"))
            assert valid.use_count == 1
            assert db.session.scalar(select(func.count()).select_from(InvitationUse)) == 2
        assert app.test_client().get(links["valid"], follow_redirects=True).status_code == 410
        assert signed_in(app, "newcomer", NEW_PASSWORD).get("/account/").status_code == 200

        # The old flow is untouched by the upgrade: its stages in their order.
        with app.app_context():
            flow = db.session.scalar(select(Flow).filter_by(slug=SLUG))
            assert [(b.order, b.stage.type) for b in flow.bindings] == [
                (order, kind) for _, kind, _, order, _ in BINDINGS]
