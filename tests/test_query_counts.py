"""The number of SQL statements per request does not grow with the rows on the page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.invitations import service
from portal.models import Flow, User

from .conftest import numbers_in, path_of
from .helpers import add_invitations
from .querycount import count_statements


def _admin_list_statements(app, client, query: str = "") -> int:
    with count_statements(app) as statements:
        response = client.get(f"/admin/invitations/{query}")
    assert response.status_code == 200
    return len(statements)


def test_admin_list_statements_do_not_grow_with_rows(app, client, auth, admin):
    auth.login()
    add_invitations(app, 2)
    few = _admin_list_statements(app, client)  # the last page: no COUNT needed
    add_invitations(app, 28)
    full = _admin_list_statements(app, client)  # 25 rows by 14 different creators
    # A fixed handful: the page, its flows, creators and groups, the filter choices, the latest
    # email per row, the signed-in admin; never one per row.
    assert few <= full <= 10  # the first has no COUNT (its last page tells the total)
    assert _admin_list_statements(app, client, "?page=2") <= full
    # The first search of a process asks SQLite once whether it has the FTS5 table.
    _admin_list_statements(app, client, "?q=warm")
    assert _admin_list_statements(app, client, "?q=inv") <= full
    # Keyset pages cost the same however deep they are.
    with app.app_context():
        middle = db.session.scalars(select(service.Invitation.id).order_by(
            service.Invitation.id.desc()).offset(12)).first()
    assert _admin_list_statements(app, client, f"?after={middle}") <= full
    assert _admin_list_statements(app, client, f"?before={middle}") <= full


def test_search_finds_by_name_and_treats_wildcards_literally(app, client, auth, admin):
    auth.login()
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        creator = db.session.get(User, admin)
        for name in ("Team 100%", "Team 1000", "Other"):
            service.create_invitation(name=name, flow=flow, expires_at=None, created_by=creator)
    html = client.get("/admin/invitations/?q=team 100%").get_data(as_text=True)
    assert "Team 100%" in html and "Team 1000" not in html and "Other" not in html
    assert "No invitations match" in client.get("/admin/invitations/?q=nobody").get_data(as_text=True)


def test_bulk_created_invitations_have_working_links(app, client):
    from portal.invitations import bulk

    with app.app_context():
        flow = db.session.scalar(select(Flow))
        rows = bulk.check(bulk.parse("\n".join(f"bulk{n}@example.com" for n in range(50))),
                          flow_id=flow.id, assignable=[])
        created = bulk.create(rows, base_url="http://portal.test", email=False, created_by=None,
                              ip=None, flow=flow, expires_at=None)
        assert len(created) == 50
        invitation = db.session.scalar(select(service.Invitation).filter_by(email="bulk7@example.com"))
        link = service.invitation_link(invitation, "http://portal.test")
    page = client.get(path_of(link), follow_redirects=True)
    assert page.status_code == 200 and 'name="username"' in page.get_data(as_text=True)


ENROLLMENT = "/if/flow/default-enrollment-flow/"
# The whole default enrollment (link, first page, its POST, second page, the final POST that
# writes the account and signs in) stays within this many statements; see BENCHMARKS.md for
# what each request still costs.
ENROLLMENT_STATEMENT_BUDGET = 25
# The account page an enrollment lands on: its own lists, and the header's questions asked once.
ACCOUNT_PAGE_STATEMENTS = 14


def _form(html: str) -> dict:
    import re

    from .conftest import csrf_from

    return {"csrf_token": csrf_from(html),
            "binding": re.search(r'name="binding" value="(\d+)"', html).group(1)}


# Production counts every wizard POST against the rate limits, whose rules ask which stage the
# POST is for: that must not cost statements of its own (the tests' default has limits off).
@pytest.mark.parametrize("app", [{}, {"RATELIMIT_ENABLED": True}], indirect=True,
                         ids=["limits off", "limits on"])
def test_a_whole_enrollment_of_the_default_flow_sends_at_most_25_statements(
        app, client, make_invitation):
    _, link = make_invitation()
    per_request, writes = [], []

    def counted(send):
        with count_statements(app) as statements:
            response = send()
        per_request.append(len(statements))
        writes.append([s.split()[0] + " " + s.split()[2 if s.startswith(("INSERT", "DELETE")) else 1]
                       for s in statements if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE"))])
        return response

    landing = counted(lambda: client.get(path_of(link)))
    assert landing.status_code == 302
    first = counted(lambda: client.get(ENROLLMENT))
    password = "violet-kettle-harbour-42"
    sent = counted(lambda: client.post(ENROLLMENT, data={
        **_form(first.get_data(as_text=True)), "username": "counted", "password": password,
        "password_repeat": password}))
    assert sent.status_code == 302
    second = counted(lambda: client.get(ENROLLMENT))
    assert numbers_in(second.get_data(as_text=True), "Step {} of {}") == (2, 2)
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    commits = []

    def on_commit(_conn):
        commits.append(len(writes_so_far))

    writes_so_far: list[str] = []

    def on_write(_conn, _cursor, statement, *_args):
        if statement.lstrip().startswith(("INSERT", "UPDATE", "DELETE")):
            writes_so_far.append(statement.split()[0])

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "before_cursor_execute", on_write)
    try:
        done = counted(lambda: client.post(ENROLLMENT, data={
            **_form(second.get_data(as_text=True)), "name": "Cora Counted",
            "email": "cora@example.com"}))
    finally:
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "before_cursor_execute", on_write)
    # One transaction for the final write: every write but the sign-in's last-login stamp is
    # committed at once (the first commit of the request that has any writes before it).
    first_commit = next(n for n in commits if n > 0)
    assert first_commit == len(writes_so_far) - 1, (commits, writes_so_far)
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/")
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="counted"))
        assert user is not None and user.email == "cora@example.com"
    assert sum(per_request) <= ENROLLMENT_STATEMENT_BUDGET, per_request
    # The pages that only show a form read the flow (with its definition) and the session.
    assert per_request[3] == 2, per_request
    # No needless writes between pages: the link writes nothing, the first page writes the flow
    # session once, a page's POST updates it once; the final POST is the account's transaction.
    assert writes[:4] == [[], ["INSERT flow_sessions"], ["UPDATE flow_sessions"], []], writes
    assert writes[4].count("UPDATE invitations") == 1 and "INSERT users" in writes[4], writes
    # The new account joins the invitation's tenant in one INSERT (nothing to check first).
    assert writes[4].count("INSERT tenant_members") == 1, writes


def test_the_invitation_is_used_exactly_once_when_two_browsers_finish_it(app, make_invitation):
    """One transaction for the final write, and the guarded UPDATE still decides: a single-use
    link finished in two browsers makes one account and one use."""
    from portal.models import Invitation, InvitationUse

    invitation_id, link = make_invitation(single_use=True)
    browsers = [app.test_client(), app.test_client()]
    password = "violet-kettle-harbour-42"
    pages = []
    for n, browser in enumerate(browsers):
        browser.get(path_of(link))
        page = browser.get(ENROLLMENT)
        browser.post(ENROLLMENT, data={**_form(page.get_data(as_text=True)),
                                       "username": f"twin{n}", "password": password,
                                       "password_repeat": password})
        pages.append(browser.get(ENROLLMENT).get_data(as_text=True))
    results = [browser.post(ENROLLMENT, data={**_form(pages[n]), "name": f"Twin {n}",
                                              "email": f"twin{n}@example.com"})
               for n, browser in enumerate(browsers)]
    assert [r.status_code for r in results] == [302, 410]  # the second is told the link is used
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert db.session.scalar(select(func.count(InvitationUse.id))) == 1
        assert db.session.scalar(select(func.count(User.id)).where(User.username.like("twin%"))) == 1


def test_the_landing_reads_the_link_outside_a_transaction(app, client, make_invitation):
    """The landing's one SELECT runs in autocommit: on PostgreSQL a transaction around it cost
    a BEGIN and, when the pool took the connection back, a ROLLBACK (two round trips more than
    the query). The driver says, as the statement runs, whether a transaction is open."""
    from sqlalchemy import event

    _, link = make_invitation()
    in_transaction = []

    def note(conn, cursor, statement, parameters, context, executemany):
        driver = conn.connection.driver_connection
        in_transaction.append(
            driver.in_transaction if conn.dialect.name == "sqlite"
            else driver.info.transaction_status != driver.info.transaction_status.IDLE)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", note)
    try:
        response = client.get(path_of(link))
    finally:
        event.remove(engine, "after_cursor_execute", note)
    assert response.status_code == 302
    assert in_transaction == [False]


def test_the_account_page_asks_each_question_once(app, make_invitation):
    """Where an enrollment lands: the header, the navigation, the token form and the page all
    ask "which tenants", "the default tenant" and "what may this person do"; each is asked once
    per request (it was asked up to six times: 26 statements)."""
    from collections import Counter

    from .helpers import complete_wizard

    _, link = make_invitation()
    client = app.test_client()
    done = complete_wizard(client, path_of(link), username="lands", email="lands@example.com")
    assert done.request.path == "/account/"  # signed in, on the page measured below
    with count_statements(app) as statements:
        page = client.get("/account/")
    assert page.status_code == 200 and "lands" in page.get_data(as_text=True)
    repeated = {s: n for s, n in Counter(statements).items() if n > 1}
    assert repeated == {}, repeated
    assert len(statements) <= ACCOUNT_PAGE_STATEMENTS, statements


def test_the_rate_limits_ask_a_sign_in_only_for_the_budget_key(app_factory):
    """With limits on, the rules' own questions (which stage a POST is for, whose flow session
    it is) are answered from what the view loads anyway; only the sign-in budget's account
    lookup is theirs, once for each of the two POSTs (who, then the password)."""
    from portal.auth import service as accounts

    from .conftest import TEST_PASSWORD, sign_in

    counts = []
    for config in ({}, {"RATELIMIT_ENABLED": True}):
        app = app_factory(**config)  # one after the other: each starts from an empty schema
        with app.app_context():
            accounts.create_user(username="admin", email="admin@example.com",
                                 password=TEST_PASSWORD, superuser=True)
        client = app.test_client()
        with count_statements(app) as sent:
            signed_in = sign_in(client, "admin", TEST_PASSWORD)
        assert signed_in.status_code == 200 and client.get("/account/").status_code == 200
        counts.append(len(sent))
    assert counts[1] == counts[0] + 2, counts
