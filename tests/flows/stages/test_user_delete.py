"""portal.flows.stages.user_delete: without HTTP (the confirmation, the last superuser, the
audit trail that outlives the account), then authentik's unenrollment example as imported."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.audit import Action
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service as invitations
from portal.models import AuditEvent, FlowAuthentication, Group, InvitationUse, User, utcnow

from ...blueprint_helpers import OPERATOR, blueprint_text, needs_blueprints
from ...conftest import TEST_PASSWORD, submit
from ...flowkit import answer, begin, flow_named, make_flow

CONFIRM = {"confirm": "y"}


def _delete_flow(app, slug="bye", authentication=FlowAuthentication.REQUIRE_AUTHENTICATED):
    make_flow(app, slug, [{"type": "user_delete", "name": f"{slug}-delete"}],
              authentication=authentication)


def _user(username="sam", **values) -> User:
    user = accounts.create_user(username=username, email=f"{username}@example.com",
                                password=TEST_PASSWORD, **values)
    return user


def test_the_page_asks_first_and_only_a_ticked_box_deletes(app):
    _delete_flow(app)
    with app.app_context():
        sam = _user()
        wizard = begin("bye", user=sam)
        page = wizard.step()
        assert page.kind == "page" and page.stage.type_name == "user_delete"
        assert page.form.account == sam  # the page names whose account goes
        again = answer(wizard, page, {})
        assert again.kind == "page" and again.errors == {"confirm": ["Tick this box to delete your account."]}
        assert db.session.get(User, sam.id) is not None


def test_confirming_deletes_the_account_signs_out_and_keeps_the_audit_trail(app):
    _delete_flow(app)
    with app.app_context():
        admin = _user("admin", superuser=True)
        sam = _user()
        sam_id = sam.id
        flow = flow_named("bye")
        invitation = invitations.create_invitation(name="joined", flow=flow, created_by=admin,
                                                   expires_at=utcnow() + timedelta(days=1))
        db.session.add(InvitationUse(invitation_id=invitation.id, user_id=sam_id))
        db.session.commit()
        wizard = begin("bye", user=sam)
        done = answer(wizard, wizard.step(), CONFIRM)
        assert done.kind == "done" and done.sign_out is True
        assert done.notices == [("success", "Your account has been deleted.")]
        db.session.expire_all()
        assert db.session.get(User, sam_id) is None
        [event] = db.session.scalars(select(AuditEvent).filter_by(action=Action.USER_DELETED)).all()
        # The event outlives the row: the link is gone (SET NULL), the name is kept.
        assert (event.actor_id, event.actor_name, event.object_id) == (None, "sam", sam_id)
        assert event.detail == {"username": "sam", "email": "sam@example.com", "flow": "bye"}
        [use] = db.session.scalars(select(InvitationUse)).all()
        assert (use.invitation_id, use.user_id) == (invitation.id, None)
        assert db.session.scalar(select(func.count(User.id))) == 1


def test_the_last_superuser_cannot_delete_themselves(app):
    _delete_flow(app)
    with app.app_context():
        root = _user("root", superuser=True)
        wizard = begin("bye", user=root, superuser=True)
        step = answer(wizard, wizard.step(), CONFIRM)
        assert (step.kind, step.title, step.status) == ("denied", "This account cannot be deleted", 403)
        assert "last superuser" in step.message and step.sign_out is False
        assert db.session.get(User, root.id) is not None
        assert db.session.scalars(select(AuditEvent).filter_by(action=Action.USER_DELETED)).all() == []
        # With another superuser (here through a superuser group) it may go.
        other = _user("other")
        other.groups.append(Group(name="admins", is_superuser=True, attributes={}))
        db.session.commit()
        wizard = begin("bye", user=root, superuser=True)
        assert answer(wizard, wizard.step(), CONFIRM).kind == "done"
        assert db.session.scalar(select(User.username)) == "other"


def test_without_an_account_there_is_nothing_to_delete(app):
    _delete_flow(app, "open-bye", FlowAuthentication.NONE)
    with app.app_context():
        wizard = begin("open-bye")
        step = answer(wizard, wizard.step(), CONFIRM)
        assert (step.kind, step.title) == ("denied", "There is no account to delete")


def test_it_deletes_the_pending_user_an_earlier_stage_noted(app):
    from portal.flows.context import note

    _delete_flow(app, "noted-bye", FlowAuthentication.NONE)
    with app.app_context():
        sam = _user()
        sam_id = sam.id
        wizard = begin("noted-bye")
        note(wizard.session, "pending_user_id", sam_id)
        db.session.commit()
        assert answer(wizard, wizard.step(), CONFIRM).kind == "done"
        db.session.expire_all()
        assert db.session.get(User, sam_id) is None


# -- authentik's flows-unenrollment.yaml, imported as it is, through the browser's requests ------


@needs_blueprints
def test_the_unenrollment_example_deletes_a_signed_in_account(app, client, auth, admin):
    from portal.flows.blueprints import import_blueprint

    with app.app_context():
        _user("sam")
    auth.login("sam")
    # No unenrollment flow yet (the portal seeds none): the account page offers no deletion.
    assert "Delete my account" not in client.get("/account/").get_data(as_text=True)
    with app.app_context():
        report = import_blueprint(blueprint_text("flows-unenrollment.yaml"), actor=OPERATOR)
        assert report.ok and report.of("skip") == [] and all(c.notes == [] for c in report.changes)
        sam_id = db.session.scalar(select(User.id).filter_by(username="sam"))
    account_page = client.get("/account/").get_data(as_text=True)
    assert 'href="/if/flow/default-unenrollment-flow/"' in account_page

    url = "/if/flow/default-unenrollment-flow/"
    page = client.get(url).get_data(as_text=True)
    assert "Delete your account" in page and "<strong>sam</strong>" in page
    with app.app_context():
        assert db.session.get(User, sam_id) is not None  # opening the page deletes nothing
    response = submit(client, url, CONFIRM, follow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    page = client.get("/auth/login", follow_redirects=True).get_data(as_text=True)
    assert "Your account has been deleted." in page
    assert client.get("/account/").status_code == 302  # signed out
    with app.app_context():
        assert db.session.get(User, sam_id) is None
        [event] = db.session.scalars(select(AuditEvent).filter_by(action=Action.USER_DELETED)).all()
        assert (event.actor_name, event.object_id, event.detail["flow"]) == (
            "sam", sam_id, "default-unenrollment-flow")
    # A visitor who is not signed in is refused by the flow's authentication, before any page.
    refused = client.get(url)
    assert refused.status_code == 403 and "Sign in required" in refused.get_data(as_text=True)
