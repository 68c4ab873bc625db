"""Statuses, refusals, admin actions, bulk invitations, purge and the audit log."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.auth.service import create_user
from portal.extensions import db
from portal.flows.executor import load
from portal.invitations import service
from portal.models import AuditEvent, Flow, Group, Invitation, User, utcnow

from ..conftest import TEST_PASSWORD, csrf_from, numbers_in, path_of, sign_in, submit
from ..helpers import NEW_PASSWORD, complete_wizard, future_input


def _refusal_events(app) -> list[str]:
    with app.app_context():
        return [e.detail["reason"] for e in db.session.scalars(
            select(AuditEvent).filter_by(action="invitation.refused").order_by(AuditEvent.id))]


@pytest.mark.parametrize("setup, status, text, reason", [
    ({"expires_in": timedelta(seconds=-5)}, 410, "This invitation has expired", "expired"),
    ({"revoked": True}, 410, "This invitation was withdrawn", "revoked"),
    ({"max_uses": 2, "use_count": 2}, 410, "already been used", "used_up"),
    ({"single_use": True, "use_count": 1}, 410, "already been used", "used_up"),
    ({"flow_slug": "other-flow"}, 404, "not valid here", "wrong_flow"),
])
def test_each_refusal_is_shown_and_logged(app, client, make_invitation, setup, status, text, reason):
    setup = dict(setup)
    with app.app_context():
        db.session.add(Flow(slug="other-flow", name="Other", designation="enrollment"))
        db.session.commit()
    revoked, use_count = setup.pop("revoked", False), setup.pop("use_count", 0)
    invitation_id, link = make_invitation(**setup)
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        invitation.use_count = use_count
        invitation.revoked_at = utcnow() if revoked else None
        db.session.commit()
    path = path_of(link).replace("other-flow", "default-enrollment-flow")
    response = client.get(path, follow_redirects=True, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == status
    assert text in response.get_data(as_text=True)
    assert _refusal_events(app) == [reason]
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).filter_by(action="invitation.refused"))
        assert event.ip_address == "203.0.113.9" and event.object_id == invitation_id


def test_an_address_other_than_the_invited_one_is_refused(app, make_invitation):
    """The field is locked; were the flow's state to carry another address, nothing is written."""
    from portal.models import FlowSession

    invitation_id, link = make_invitation(email="right@example.com")
    client = app.test_client()
    client.get(path_of(link), follow_redirects=True)
    with app.app_context():
        flow_session = db.session.scalar(select(FlowSession))
        flow_session.prompt_data = {**flow_session.prompt_data, "email": "wrong@example.com"}
        db.session.commit()
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "mallory", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    page = submit(client, "/if/flow/default-enrollment-flow/", {"name": "M", "email": "x@example.com"})
    assert page.status_code == 403
    assert "This invitation is for someone else" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(username="mallory")) is None
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.use_count == 0
        assert service.email_problem(invitation, "WRONG@example.com") == "wrong_email"
        assert service.email_problem(invitation, "RIGHT@Example.com") is None
    assert _refusal_events(app) == ["wrong_email"]


def test_wrong_email_at_the_write_stage_is_denied(app, make_invitation):
    """If the address in the flow differs from the invited one, the user is not written."""
    from portal.flows.context import FlowContext
    from portal.flows.stages.user_write import UserWriteStage
    from portal.models import FlowSession, Stage

    invitation_id, _ = make_invitation(email="right@example.com")
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        flow_session = FlowSession(key_digest="x" * 64, flow=flow, invitation_id=invitation_id,
                                   token_supplied=True, plan=[], prompt_data={
                                       "username": "eve", "email": "eve@example.com"},
                                   fixed_fields=[], expires_at=utcnow() + timedelta(hours=1))
        db.session.add(flow_session)
        db.session.commit()
        stage = db.session.scalar(select(Stage).filter_by(name="default-enrollment-user-write"))
        result = UserWriteStage(stage).run(FlowContext(flow=flow, session=flow_session))
        assert result.title == "This invitation is for someone else"
        assert db.session.scalar(select(User).filter_by(username="eve")) is None
        assert db.session.get(Invitation, invitation_id).use_count == 0
        db.session.commit()
    assert _refusal_events(app) == ["wrong_email"]


def test_allowed_domains_are_enforced(app, make_invitation):
    _, link = make_invitation(allowed_domains=["Example.org"])
    client = app.test_client()
    page = complete_wizard(client, path_of(link), email="nia@example.com")
    html = page.get_data(as_text=True)
    assert "accepts only addresses at example.org" in html
    done = submit(client, "/if/flow/default-enrollment-flow/", {"name": "Nia", "email": "nia@example.org"})
    assert done.request.path == "/account/"
    assert _refusal_events(app) == ["email_domain"]


def test_open_link_counts_uses_and_records_each(app, client, auth, admin):
    auth.login()
    page = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "team", "flow": "1", "expires": future_input(), "max_uses": "3"})
    link = re.search(r'id="invitation-link" type="text" readonly value="([^"]+)"',
                     page.get_data(as_text=True)).group(1)
    for number in range(3):
        complete_wizard(app.test_client(), path_of(link), username=f"member{number}",
                        email=f"m{number}@example.com")
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    assert numbers_in(listing, "{} / {}") == (3, 3) and "Used up" in listing
    detail = client.get("/admin/invitations/1").get_data(as_text=True)
    assert all(f"member{n}" in detail for n in range(3))
    refused = app.test_client().get(path_of(link), follow_redirects=True)
    assert refused.status_code == 410


def test_list_filters_sort_and_paginate_without_n_plus_one(app, client, auth, admin, make_invitation):
    for number in range(30):
        make_invitation(name=f"bulk-{number:02d}", email=f"p{number}@example.com")
    revoked_id, _ = make_invitation(name="gone")
    make_invitation(name="old", expires_in=timedelta(seconds=-1))
    with app.app_context():
        db.session.get(Invitation, revoked_id).revoked_at = utcnow()
        db.session.commit()
    auth.login()
    assert "gone" in client.get("/admin/invitations/?status=revoked").get_data(as_text=True)
    expired = client.get("/admin/invitations/?status=expired").get_data(as_text=True)
    assert "old" in expired and "gone" not in expired and "bulk-01" not in expired
    found = client.get("/admin/invitations/?q=P7%40example").get_data(as_text=True)
    assert "bulk-07" in found and "bulk-08" not in found
    by_name = client.get("/admin/invitations/?sort=name").get_data(as_text=True)
    assert by_name.index("bulk-00") < by_name.index("bulk-01")
    assert numbers_in(by_name, "Page {} of {}") == (1, 2)
    page_two = client.get("/admin/invitations/?sort=name&page=2").get_data(as_text=True)
    assert "gone" in page_two and "old" in page_two

    from sqlalchemy import event

    statements = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        client.get("/admin/invitations/")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) < 15, statements  # constant, not one per row


def test_revoke_extend_duplicate_delete(app, client, auth, admin, make_invitation):
    invitation_id, link = make_invitation(name="act-on-me", email="a@example.com")
    auth.login()
    detail = f"/admin/invitations/{invitation_id}"
    page = submit(client, f"{detail}/extend", {"expires": "2099-05-01T12:00"})
    assert "expiry was extended" in page.get_data(as_text=True)
    duplicate = client.get(f"/admin/invitations/new?from={invitation_id}").get_data(as_text=True)
    assert 'value="act-on-me"' in duplicate and "a@example.com" in duplicate
    page = submit(client, f"{detail}/revoke", {}, page_url=detail)
    assert "Invitation revoked" in page.get_data(as_text=True)
    assert app.test_client().get(path_of(link), follow_redirects=True).status_code == 410
    page = submit(client, f"{detail}/resend", {"expires": "2099-05-01T12:00"})
    assert "revoked; create a new one" in page.get_data(as_text=True)
    assert client.post(f"{detail}/revoke").status_code == 400  # no CSRF token, no change
    submit(client, f"{detail}/delete", {})
    assert client.get(detail).status_code == 404
    with app.app_context():
        actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert [a for a in actions if a not in ("sign_in.succeeded", "invitation.created")] == [
            "invitation.extended", "invitation.revoked", "invitation.refused", "invitation.deleted"]


def test_bulk_revoke_and_delete(app, client, auth, admin, make_invitation):
    ids = [make_invitation(name=f"b{n}")[0] for n in range(4)]
    auth.login()
    page = submit(client, "/admin/invitations/bulk-action",
                  {"action": "revoke", "ids": [str(i) for i in ids[:2]]}, page_url="/admin/invitations/")
    assert numbers_in(page.get_data(as_text=True), "{} invitation(s) revoked") == 2
    page = submit(client, "/admin/invitations/bulk-action",
                  {"action": "delete", "ids": [str(i) for i in ids[2:]]}, page_url="/admin/invitations/")
    assert numbers_in(page.get_data(as_text=True), "{} invitation(s) deleted") == 2
    with app.app_context():
        left = db.session.scalars(select(Invitation).order_by(Invitation.id)).all()
        assert [i.id for i in left] == ids[:2] and all(i.revoked_at for i in left)


CSV_WITH_PROBLEMS = """email,name,groups,attributes
good@example.com,Good One,staff,"{""team"": ""blue""}"
not-an-address,Bad,,
GOOD@example.com,Again,,
taken@example.com,Existing,,
other@example.com,Other,nosuchgroup,
attrs@example.com,Attrs,,"[1, 2]"
fine@example.org,,staff;oslo,
"""


def test_bulk_csv_preview_shows_each_problem_and_creates_the_valid_rows(app, client, auth, admin):
    with app.app_context():
        create_user(username="taken", email="Taken@example.com", password=TEST_PASSWORD)
        db.session.add_all([Group(name="staff", attributes={}), Group(name="oslo", attributes={})])
        db.session.commit()
    auth.login()
    upload = {"upload": (io.BytesIO(CSV_WITH_PROBLEMS.encode()), "people.csv"), "flow": "1",
              "expires": future_input(), "preview": "Preview"}
    page = submit(client, "/admin/invitations/bulk", upload)
    html = page.get_data(as_text=True)
    # An address with an account is invited too (its owner accepts); the admin is told.
    assert numbers_in(html, "Preview: {} of {} rows will be invited") == (3, 7)
    for problem in ("Bad address", "Duplicate of line 2",
                    "Already a member of this tenant: will be asked to join",
                    "Unknown group (or not yours to give): nosuchgroup", "Bad attributes"):
        assert problem in html, problem
    text = re.search(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    import html as html_lib

    page = submit(client, "/admin/invitations/bulk", {
        "text": html_lib.unescape(text).lstrip("\n"), "flow": "1", "expires": future_input(),
        "confirm": "Create"})
    assert numbers_in(page.get_data(as_text=True), "{} invitations created") == 3
    with app.app_context():
        created = {i.email: i for i in db.session.scalars(select(Invitation))}
        assert set(created) == {"good@example.com", "taken@example.com", "fine@example.org"}
        assert created["good@example.com"].attributes == {"team": "blue"}
        assert created["good@example.com"].name == "Good One"
        assert [g.name for g in created["fine@example.org"].groups] == ["oslo", "staff"]
    # The same list again: everyone is now "already invited", nothing is created twice.
    again = submit(client, "/admin/invitations/bulk", {
        "text": "good@example.com\nfine@example.org", "flow": "1", "expires": future_input(),
        "preview": "Preview"})
    assert again.get_data(as_text=True).count("Already has a pending invitation") == 2


@pytest.mark.parametrize("content, message", [
    (b"email,phone\na@example.com,1\n", "Line 1: unknown column &#39;phone&#39;"),
    (b"email\na@example.com\n\xff\xfe\n", "Line 3: the file is not UTF-8"),
    (b"email,name\na@example.com,A,extra\n", "Line 2: 3 cells but the header has 2 columns"),
])
def test_a_bad_upload_is_rejected_whole(app, client, auth, admin, content, message):
    auth.login()
    page = submit(client, "/admin/invitations/bulk", {
        "upload": (io.BytesIO(content), "bad.csv"), "flow": "1", "expires": future_input(),
        "confirm": "Create"})
    html = page.get_data(as_text=True)
    assert "The upload was not used" in html and message in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_a_thousand_pasted_addresses_take_seconds(app, client, auth, admin):
    auth.login()
    addresses = "\n".join(f"person{n}@example.com" for n in range(1000))
    started = time.perf_counter()
    preview = submit(client, "/admin/invitations/bulk", {
        "text": addresses, "flow": "1", "expires": future_input(), "preview": "Preview"})
    previewed = time.perf_counter()
    assert numbers_in(preview.get_data(as_text=True), "Preview: {} of {} rows") == (1000, 1000)
    page = submit(client, "/admin/invitations/bulk", {
        "text": addresses, "flow": "1", "expires": future_input(), "confirm": "Create"})
    finished = time.perf_counter()
    assert numbers_in(page.get_data(as_text=True), "{} invitations created") == 1000
    print(f"\n1000 rows: preview {previewed - started:.2f}s, create {finished - previewed:.2f}s")
    assert finished - started < 20
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 1000


def test_purge_removes_long_expired_invitations(app, runner, make_invitation):
    old, _ = make_invitation(name="ancient", expires_in=timedelta(days=-40))
    recent, _ = make_invitation(name="recent", expires_in=timedelta(days=-3))
    live, _ = make_invitation(name="live")
    result = runner.invoke(args=["invitations", "purge", "--older-than", "P30D"])
    assert numbers_in(result.output, "Deleted {} invitation(s)") == 1
    with app.app_context():
        assert {i.id for i in db.session.scalars(select(Invitation))} == {recent, live}
    bad = runner.invoke(args=["invitations", "purge", "--older-than", "soon"])
    assert bad.exit_code != 0 and "ISO-8601" in bad.output
    assert old


def test_audit_log_records_sign_ins_and_exports_csv(app, client, auth, admin):
    """Sign-ins belong to no tenant: the instance's audit log (superadmins) has them."""
    sign_in(client, "admin", "wrong-password-here")
    auth.login()
    assert "<code>sign_in." not in client.get("/admin/audit/?action=sign_in").get_data(as_text=True)
    page = client.get("/instance/audit/?action=sign_in").get_data(as_text=True)
    assert "<code>sign_in.failed</code>" in page and "<code>sign_in.succeeded</code>" in page
    assert "127.0.0.1" in page
    only_failed = client.get("/instance/audit/?action=sign_in.failed").get_data(as_text=True)
    assert "<code>sign_in.failed</code>" in only_failed
    assert "<code>sign_in.succeeded</code>" not in only_failed
    export = client.get("/instance/audit/export.csv?action=sign_in")
    assert export.mimetype == "text/csv"
    lines = export.get_data(as_text=True).splitlines()
    assert lines[0].startswith("time,action,actor,ip_address")
    assert any(",sign_in.failed,,127.0.0.1,user,," in line and ",admin," in line for line in lines)
    assert any(",sign_in.succeeded,admin,127.0.0.1," in line for line in lines)


def test_audit_csv_defuses_spreadsheet_formulas(app, client, auth, admin):
    sign_in(client, "=HYPERLINK(1)", "whatever-password")
    auth.login()
    body = client.get("/instance/audit/export.csv").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in body


def test_record_event_is_the_api_for_other_features(app, admin):
    from portal.audit import Action, record_event

    with app.app_context():
        flow = db.session.scalar(select(Flow))
        actor = db.session.get(User, admin)
        record_event(Action.FLOW_IMPORTED, actor=actor, ip="198.51.100.7", obj=flow,
                     detail={"blueprint": "x.yaml"}, commit=True)
        event = db.session.scalar(select(AuditEvent).filter_by(action="flow.imported"))
        assert (event.actor_name, event.object_type, event.object_id, event.ip_address) == (
            "admin", "flow", flow.id, "198.51.100.7")


def test_set_password_link_is_shown_when_no_mail_server(app, client, auth, admin):
    auth.login()
    page = submit(client, "/admin/users/new", {"username": "dee", "email": "dee@example.com"})
    html = page.get_data(as_text=True)
    assert "No mail server is configured" in html
    link = re.search(r'id="set-password-link" type="text" readonly value="([^"]+)"', html).group(1)
    assert "/auth/set-password?token=" in link
    assert load is not None


def _bulk_in_slices(client, text: str, *, slice_size: int = 200) -> tuple[int, str]:
    """What the page's script does: the same form, a slice at a time, answered in JSON, adding up
    the slices' counts; returns the invitations created and the list page it then opens."""
    page = client.get("/admin/invitations/bulk").get_data(as_text=True)
    base = {"csrf_token": csrf_from(page), "text": text, "flow": "1", "expires": future_input(),
            "confirm": "1", "count": str(slice_size)}
    created = skipped = start = 0
    total = None
    while total is None or start < total:
        answer = client.post("/admin/invitations/bulk", data={
            **base, "start": str(start), "created_so_far": str(created),
            "skipped_so_far": str(skipped)}, headers={"Accept": "application/json"}).get_json()
        created += answer["created"]
        skipped += answer["skipped"]
        total = answer["total"]
        start += slice_size
    return created, client.get("/admin/invitations/").get_data(as_text=True)


def test_bulk_creates_in_slices_for_the_progress_bar(app, client, auth, admin):
    auth.login()
    addresses = "\n".join(f"slice{n}@example.com" for n in range(250)) + "\nslice0@example.com"
    created, listing = _bulk_in_slices(client, addresses)
    assert created == 250  # the repeated address is a duplicate, created once
    assert numbers_in(listing, "{} invitations created") == 250
    assert numbers_in(listing, "{} row(s) with a problem were skipped") == 1


def test_bulk_of_250_clean_addresses_creates_250_and_skips_none(app, client, auth, admin):
    """The second slice checks the whole list again: the first slice's rows are now "already
    invited", and must not be counted as skipped."""
    auth.login()
    created, listing = _bulk_in_slices(client, "\n".join(f"clean{n}@example.com" for n in range(250)))
    assert created == 250
    assert numbers_in(listing, "{} invitations created") == 250
    assert numbers_in(listing, "{} row(s) with a problem were skipped") is None
    assert "with a problem were skipped" not in listing
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 250


def test_bulk_in_slices_counts_each_kind_of_problem_once(app, client, auth, admin, make_invitation):
    with app.app_context():
        create_user(username="taken", email="member7@example.com", password=TEST_PASSWORD)
    make_invitation(name="earlier", email="member250@example.com")  # already has a pending one
    lines = [f"member{n}@example.com" for n in range(260)]  # 260 rows
    lines[3] = lines[150] = "not-an-address"  # two bad addresses, one in each slice
    lines[210] = lines[20]  # a duplicate in the second slice of a row the first slice created
    auth.login()
    created, listing = _bulk_in_slices(client, "\n".join(lines))
    # 260 rows: 2 bad, 1 duplicate, 1 already invited (member250); member7 has an account and
    # is invited like the others (they accept with it).
    assert created == 256
    assert numbers_in(listing, "{} invitations created") == 256
    assert numbers_in(listing, "{} row(s) with a problem were skipped") == 4
    assert "member7@example.com is already a member of this tenant; they will be asked to join." in listing
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 257  # + earlier


def test_pending_links_export_for_sending_by_hand(app, client, auth, admin, make_invitation):
    _, link = make_invitation(name="hand", email="hand@example.com")
    revoked_id, _ = make_invitation(name="withdrawn", email="gone@example.com")
    with app.app_context():
        db.session.get(Invitation, revoked_id).revoked_at = utcnow()
        db.session.commit()
    auth.login()
    export = client.get("/admin/invitations/links.csv")
    lines = export.get_data(as_text=True).splitlines()
    assert lines[0] == "name,email,expires_at,link"
    assert len(lines) == 2 and lines[1].startswith("hand,hand@example.com,")
    assert lines[1].endswith(path_of(link).split("?")[1])
