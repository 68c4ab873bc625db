"""Opening an invitation link: cheap, read-only, and checked again when the wizard starts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.invitations import service
from portal.models import FlowSession, Invitation, utcnow

from ..conftest import path_of
from ..helpers import add_invitations
from ..querycount import count_statements


def _flow_sessions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(FlowSession.id)))


def test_a_good_link_only_reads_until_the_wizard_opens(app, client, make_invitation):
    _, link = make_invitation()
    with count_statements(app) as statements:
        landing = client.get(path_of(link))
    assert landing.status_code == 302 and landing.headers["Location"] == "/if/flow/default-enrollment-flow/"
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements), statements
    assert _flow_sessions(app) == 0  # a link scanner or preview leaves nothing behind
    page = client.get(landing.headers["Location"])
    assert page.status_code == 200 and 'name="username"' in page.get_data(as_text=True)
    assert _flow_sessions(app) == 1


def test_landing_statements_do_not_depend_on_the_invitation_count(app, make_invitation):
    _, link = make_invitation()

    def landing() -> int:
        with count_statements(app) as statements:
            assert app.test_client().get(path_of(link)).status_code == 302
        return len(statements)

    before = landing()
    add_invitations(app, 20)
    assert landing() == before == 1


def test_an_invitation_revoked_after_the_link_was_opened_is_refused(app, client, make_invitation):
    invitation_id, link = make_invitation()
    landing = client.get(path_of(link))
    with app.app_context():
        service.update_invitation(db.session.get(Invitation, invitation_id), revoked_at=utcnow())
    page = client.get(landing.headers["Location"])
    assert page.status_code == 410 and "withdrawn" in page.get_data(as_text=True)


def test_a_bad_link_still_explains_itself_at_once(client, make_invitation):
    _, link = make_invitation(expires_in=-timedelta(days=1))
    response = client.get(path_of(link))
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert client.get("/if/flow/default-enrollment-flow/?itoken=nope").status_code == 404


def test_the_remembered_invitation_starts_one_wizard_only(app, client, make_invitation):
    """The note in the cookie is used once; afterwards the page needs the link again."""
    _, link = make_invitation()
    wizard = client.get(path_of(link)).headers["Location"]
    assert client.get(wizard).status_code == 200
    with client.session_transaction() as session:
        assert not session.get("invited")
        session["flows"] = {}  # the flow session is gone (expired, finished elsewhere)
    assert client.get(wizard).status_code == 403  # "An invitation is required"
