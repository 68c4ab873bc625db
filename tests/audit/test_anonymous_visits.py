"""Anonymous visits write nothing; refused links are logged a bounded number of times; retention."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import AuditEvent, FlowSession, User, utcnow

from ..conftest import csrf_from, path_of
from ..flowkit import make_flow

FLOW = "/if/flow/default-enrollment-flow/"


def _rows(app) -> tuple[int, int]:
    """(flow sessions, audit events)."""
    with app.app_context():
        return (db.session.scalar(select(func.count(FlowSession.id))),
                db.session.scalar(select(func.count(AuditEvent.id))))


def _refusals(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(e.detail["reason"], e.ip_address) for e in db.session.scalars(
            select(AuditEvent).filter_by(action="invitation.refused").order_by(AuditEvent.id))]


def test_anonymous_gets_without_a_link_write_nothing(app, client):
    for _ in range(25):
        response = client.get(FLOW)
        assert response.status_code == 403
        assert "An invitation is required" in response.get_data(as_text=True)
    assert _rows(app) == (0, 0)


def test_an_open_flow_is_stored_on_its_first_post_only(app, client):
    url = make_flow(app, "open-survey", [{"type": "prompt", "name": "survey-page", "prompts": [
        {"field_key": "answer", "type": "text", "required": True}]}])
    for _ in range(10):
        page = client.get(url)
        assert page.status_code == 200 and 'name="answer"' in page.get_data(as_text=True)
    assert _rows(app) == (0, 0)
    html = page.get_data(as_text=True)
    binding = re.search(r'name="binding" value="(\d+)"', html).group(1)
    missing = client.post(url, data={"csrf_token": csrf_from(html), "binding": binding})
    assert missing.status_code == 200 and "This field is required." in missing.get_data(as_text=True)
    assert _rows(app) == (1, 0)  # the flow started with its first form
    done = client.post(url, data={"csrf_token": csrf_from(html), "binding": binding,
                                  "answer": "forty-two"}, follow_redirects=True)
    assert done.status_code == 200 and "Please correct" not in done.get_data(as_text=True)
    with app.app_context():
        flow_session = db.session.scalar(select(FlowSession))
        assert flow_session.finished_at is not None
        assert flow_session.prompt_data == {"answer": "forty-two"}
    assert _rows(app) == (1, 0)


def test_a_stage_that_writes_stores_the_session_first(app, client):
    """No page before the user write: the flow really starts on the GET (its session is
    stored), and the user write refuses, since nothing asked for a username."""
    url = make_flow(app, "instant", [{"type": "user_write", "name": "instant-write"}])
    response = client.get(url)
    assert response.status_code == 503
    assert "This sign-up page cannot create accounts yet" in response.get_data(as_text=True)
    with app.app_context():
        flow_session = db.session.scalar(select(FlowSession))
        assert flow_session.finished_at is not None and flow_session.user_id is None
        assert db.session.scalar(select(func.count(User.id))) == 0
    assert _rows(app)[0] == 1


def test_repeated_refused_links_are_logged_once_a_minute_per_address(app, client, make_invitation):
    _, link = make_invitation(expires_in=-timedelta(days=1))
    for _ in range(12):
        assert client.get(FLOW + "?itoken=nope").status_code == 404
        assert client.get(path_of(link)).status_code == 410
    assert _refusals(app) == [("unknown", "127.0.0.1"), ("expired", "127.0.0.1")]
    elsewhere = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(3):
        assert client.get(FLOW + "?itoken=nope", environ_base=elsewhere).status_code == 404
    assert _refusals(app)[2:] == [("unknown", "203.0.113.7")]
    with app.app_context():  # a minute later the same refusal is logged again
        db.session.execute(update(AuditEvent).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    assert client.get(FLOW + "?itoken=nope").status_code == 404
    assert _refusals(app)[3:] == [("unknown", "127.0.0.1")]
    assert len(_refusals(app)) == 4
    assert _rows(app)[0] == 0  # and no flow session for any of those refusals


def test_audit_purge_deletes_events_past_retention(app, runner):
    from portal.audit import Action, record_event

    with app.app_context():
        for age in (200, 91, 89, 1):
            event = record_event(Action.SIGN_IN_FAILED, object_type="user", object_repr=f"age-{age}")
            event.created_at = utcnow() - timedelta(days=age)
        db.session.commit()
    result = runner.invoke(args=["audit", "purge", "--older-than", "P90D"])
    assert result.exit_code == 0
    assert result.output == "Deleted 2 audit event(s) older than P90D.\n"
    with app.app_context():
        kept = sorted(db.session.scalars(select(AuditEvent.object_repr)))
    assert kept == ["age-1", "age-89"]
    bad = runner.invoke(args=["audit", "purge", "--older-than", "soon"])
    assert bad.exit_code != 0 and "ISO-8601" in bad.output


def test_the_invited_wizard_still_runs_end_to_end(app, client, make_invitation):
    from ..helpers import complete_wizard

    _, link = make_invitation()
    complete_wizard(client, path_of(link))
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 2  # the admin and the invitee
        assert db.session.scalar(select(func.count(FlowSession.id))) == 1
