"""Invitation rules are enforced when the link is used, never by a clean-up job."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from portal import create_app
from portal.extensions import db
from portal.invitations import service
from portal.models import Flow, FlowAuthentication, FlowStageBinding, Invitation, Stage, User

from ..conftest import numbers_in, path_of, submit
from ..helpers import NEW_PASSWORD, complete_wizard

FLOW_URL = "/if/flow/default-enrollment-flow/"


def test_expired_invitation(client, make_invitation):
    _, link = make_invitation(expires_in=timedelta(seconds=-1))
    response = client.get(path_of(link))
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "This invitation has expired" in html and "send you a new invitation link" in html
    assert "Traceback" not in html


def test_invitation_expiring_mid_flow_is_refused_at_the_end(app, client, make_invitation):
    invitation_id, link = make_invitation()
    client.get(path_of(link))
    submit(client, FLOW_URL, {"username": "slow", "password": NEW_PASSWORD,
                              "password_repeat": NEW_PASSWORD})
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        invitation.expires_at = invitation.expires_at - timedelta(days=30)
        db.session.commit()
    response = submit(client, FLOW_URL, {"name": "Slow", "email": "slow@example.com"})
    assert response.status_code == 410
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(username="slow")) is None


def test_unknown_token(client):
    response = client.get(FLOW_URL + "?itoken=not-a-real-token")
    assert response.status_code == 404
    assert "This invitation link is not valid" in response.get_data(as_text=True)


def test_no_token_at_all(client):
    response = client.get(FLOW_URL)
    assert response.status_code == 403
    assert "An invitation is required" in response.get_data(as_text=True)


def test_deleted_invitation(app, client, make_invitation):
    invitation_id, link = make_invitation()
    with app.app_context():
        service.delete_invitation(db.session.get(Invitation, invitation_id))
    response = client.get(path_of(link))
    assert response.status_code == 404
    assert "deleted" in response.get_data(as_text=True)


def test_invitation_only_works_on_its_own_flow(app, client, make_invitation):
    """authentik's CVE-2022-23555: an invitation for flow A must not open flow B."""
    with app.app_context():
        other = Flow(slug="other-enrollment", name="Other", title="Other",
                     authentication=FlowAuthentication.REQUIRE_UNAUTHENTICATED)
        stage = db.session.scalar(select(Stage).filter_by(type="invitation"))
        other.bindings.append(FlowStageBinding(stage=stage, order=5))
        db.session.add(other)
        db.session.commit()
    _, link = make_invitation()
    response = client.get(path_of(link).replace("default-enrollment-flow", "other-enrollment"))
    assert response.status_code == 404
    assert "not valid here" in response.get_data(as_text=True)


def test_opening_the_link_does_not_consume_it(app, make_invitation):
    """Mail scanners open links; only finishing enrollment uses a single-use invitation."""
    invitation_id, link = make_invitation(single_use=True)
    for _ in range(3):
        assert app.test_client().get(path_of(link)).status_code == 302
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0


def test_single_use_cannot_be_reused(app, make_invitation):
    _, link = make_invitation(single_use=True)
    first = complete_wizard(app.test_client(), path_of(link), username="first")
    assert first.request.path == "/account/"
    response = app.test_client().get(path_of(link))
    assert response.status_code == 410
    assert "already been used" in response.get_data(as_text=True)


def test_single_use_finished_in_two_windows_makes_one_account(app, make_invitation):
    """Both windows reach the last page; only the first to finish gets an account."""
    _, link = make_invitation(single_use=True)
    a, b = app.test_client(), app.test_client()
    for client, name in ((a, "win-a"), (b, "win-b")):
        client.get(path_of(link))
        submit(client, FLOW_URL, {"username": name, "password": NEW_PASSWORD,
                                  "password_repeat": NEW_PASSWORD})
    assert submit(a, FLOW_URL, {"name": "A", "email": "a@example.com"}).request.path == "/account/"
    late = submit(b, FLOW_URL, {"name": "B", "email": "b@example.com"})
    assert late.status_code == 410
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id)).where(User.username.like("win-%"))) == 1


def test_concurrent_finish_of_a_single_use_invitation(app, make_invitation, tmp_path):
    """Threads, each with its own client and database session, finish at the same moment."""
    _, link = make_invitation(single_use=True)
    contenders = 6
    clients = []
    for index in range(contenders):
        client = app.test_client()
        client.get(path_of(link))
        submit(client, FLOW_URL, {"username": f"racer{index}", "password": NEW_PASSWORD,
                                  "password_repeat": NEW_PASSWORD})
        page = client.get(FLOW_URL).get_data(as_text=True)
        assert numbers_in(page, "Step {} of {}") == (2, 2)
        clients.append((client, page))

    barrier = threading.Barrier(contenders)
    statuses: list[int] = []

    def finish(client, page, index):
        import re

        from ..conftest import csrf_from

        data = {"csrf_token": csrf_from(page),
                "binding": re.search(r'name="binding" value="(\d+)"', page).group(1),
                "name": f"Racer {index}", "email": f"racer{index}@example.com"}
        barrier.wait()
        statuses.append(client.post(FLOW_URL, data=data).status_code)

    threads = [threading.Thread(target=finish, args=(c, p, i)) for i, (c, p) in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [302] + [410] * (contenders - 1)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id)).where(User.username.like("racer%"))) == 1
        assert db.session.scalar(select(Invitation)).use_count == 1


def test_multi_use_invitation_records_every_use(app, make_invitation):
    invitation_id, link = make_invitation(single_use=False)
    for name in ("multi1", "multi2"):
        assert complete_wizard(app.test_client(), path_of(link), username=name,
                               email=f"{name}@example.com").request.path == "/account/"
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.use_count == 2
        assert {use.user.username for use in invitation.uses} == {"multi1", "multi2"}


def test_database_copy_alone_yields_no_working_link(app, make_invitation, tmp_path):
    """Only a digest and a salt are stored; without SECRET_KEY they open nothing."""
    invitation_id, link = make_invitation()
    token = link.split("itoken=")[1]
    with app.app_context():
        row = db.session.execute(select(Invitation.__table__)).mappings().one()
        assert all(token not in str(value) for value in row.values())
        # Someone with the database but another SECRET_KEY cannot rebuild the link.
        other = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                            "SECRET_KEY": "another-key"})
        with other.app_context():
            rebuilt = service.invitation_token(db.session.get(Invitation, invitation_id))
            assert rebuilt != token
            assert service.find_by_token(rebuilt) is None
            db.session.remove()
            db.engine.dispose()
        assert len(token) >= 22  # >= 128 bits in URL-safe base64


def test_status_of(app, make_invitation):
    invitation_id, _ = make_invitation(single_use=True)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert service.status_of(invitation) is service.InvitationStatus.VALID
        invitation.use_count = 1
        assert service.status_of(invitation) is service.InvitationStatus.ACCEPTED
        invitation.single_use, invitation.max_uses, invitation.use_count = False, 3, 3
        assert service.status_of(invitation) is service.InvitationStatus.USED_UP
        invitation.use_count = 0
        invitation.expires_at = invitation.created_at - timedelta(seconds=1)
        assert service.status_of(invitation) is service.InvitationStatus.EXPIRED


def test_update_invitation_replaces_direct_roles_and_records_only_what_changed(app, admin):
    """The edit's one service: the roles as they are to be (None: untouched); the event names
    the fields that changed (a stored naive expiry read as UTC is no change) and the grants
    before and after."""
    from datetime import UTC, datetime

    from portal.models import AuditEvent, Role

    with app.app_context():
        auditor = Role(name="auditor", permissions=["audit:view"])
        editor = Role(name="editor", permissions=["flows:manage"], namespaces=["sales"])
        db.session.add_all([auditor, editor])
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        expiry = datetime(2099, 1, 1, tzinfo=UTC)
        invitation = service.create_invitation(name="team", flow=flow, expires_at=expiry,
                                               roles=[(auditor, ["hr"]), (editor, [])])
        service.update_invitation(invitation, name="team", expires_at=expiry,
                                  roles=[(editor, ["sales.emea"])])
        db.session.expire_all()
        invitation = db.session.get(Invitation, invitation.id)
        assert [(d.role.name, d.namespaces) for d in invitation.direct_roles] == [
            ("editor", ["sales.emea"])]
        service.update_invitation(invitation, name="renamed")  # roles untouched
        events = db.session.scalars(select(AuditEvent).filter_by(action="invitation.updated")
                                    .order_by(AuditEvent.id)).all()
        assert [e.detail for e in events] == [
            {"changed": ["roles"], "roles": {"before": [["auditor", ["hr"]], ["editor", []]],
                                             "after": [["editor", ["sales.emea"]]]}},
            {"changed": ["name"]},
        ]
        assert [(d.role.name, d.namespaces) for d in
                db.session.get(Invitation, invitation.id).direct_roles] == [("editor", ["sales.emea"])]
