"""The number of SQL statements per request does not grow with the rows on the page."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.invitations import service
from portal.models import Flow, User

from .conftest import path_of
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
    assert _admin_list_statements(app, client, "?q=inv") <= full


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
