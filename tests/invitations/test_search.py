"""The admin's search (portal.invitations.search) and the keyset pages of the list."""

from __future__ import annotations

import re

from sqlalchemy import select, text

from portal.extensions import db
from portal.invitations import service
from portal.invitations.search import FTS_TABLE
from portal.models import Flow, Invitation, User
from tests.helpers import existing_user


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="(?:/t/[a-z0-9-]+)?/admin/invitations/\d+">([^<]+)</a>', html)


def _create(app, admin, names_and_emails):
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        creator = db.session.get(User, admin)
        ids = [service.create_invitation(name=name, flow=flow, expires_at=None, created_by=creator,
                                         email=email).id for name, email in names_and_emails]
    return ids


def test_search_follows_renames_and_deletions(app, client, auth, admin):
    auth.login()
    first, second = _create(app, admin, [("Alpha team", None), ("Beta team", "ops@beta.example")])
    assert _names(client.get("/admin/invitations/?q=ALPHA").get_data(as_text=True)) == ["Alpha team"]
    assert _names(client.get("/admin/invitations/?q=ops@beta").get_data(as_text=True)) == ["Beta team"]
    with app.app_context():
        db.session.get(Invitation, first).name = "Gamma team"
        db.session.delete(db.session.get(Invitation, second))
        db.session.commit()
    assert _names(client.get("/admin/invitations/?q=alpha").get_data(as_text=True)) == []
    assert _names(client.get("/admin/invitations/?q=gamma").get_data(as_text=True)) == ["Gamma team"]
    assert _names(client.get("/admin/invitations/?q=beta").get_data(as_text=True)) == []
    # Shorter than a trigram, and FTS5's own syntax, are taken literally too.
    assert _names(client.get("/admin/invitations/?q=ga").get_data(as_text=True)) == ["Gamma team"]
    html = client.get('/admin/invitations/?q="gamma" OR *').get_data(as_text=True)
    assert _names(html) == [] and "No invitations match" in html


def test_sqlite_search_uses_the_fts5_table(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return
        sql = str(service.list_query(search="gamma").compile(db.engine))
        assert f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH" in sql
        assert db.session.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'invitations_fts_%' AND type = 'trigger'"
        )).scalar() == 3


def test_keyset_pages_walk_the_whole_list_both_ways(app, client, auth, admin):
    auth.login()
    _create(app, admin, [(f"page-{n:02d}", None) for n in range(60)])
    seen, path = [], "/admin/invitations/"
    pages = []
    while path:
        html = client.get(path).get_data(as_text=True)
        pages.append(html)
        seen += _names(html)
        found = re.search(r'href="([^"]*after=\d+[^"]*)" rel="next"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [f"page-{n:02d}" for n in range(59, -1, -1)]
    assert [len(_names(p)) for p in pages] == [25, 25, 10]
    back = re.search(r'href="([^"]*before=\d+[^"]*)" rel="prev"', pages[2]).group(1)
    assert _names(client.get(back.replace("&amp;", "&")).get_data(as_text=True)) == seen[25:50]
    oldest = client.get("/admin/invitations/?sort=created").get_data(as_text=True)
    assert _names(oldest)[:2] == ["page-00", "page-01"]
    assert client.get("/admin/invitations/?after=-5&before=x").status_code == 200


def test_created_by_choices_probe_the_creator_index(app, admin):
    """The list's "created by" choices ask, per account, whether it created a visible invitation.
    With only the tenant's index, SQLite's planner scanned every invitation of the tenant for
    each account that created none (minutes at a million rows): the probe must use
    ix_invitations_creator, with and without the admin's flows."""
    from bench.seed import seed_invitations

    for n in range(3):
        existing_user(app, f"member{n}")
    with app.app_context():
        seed_invitations(500)
        flow_id = db.session.scalar(select(Flow.id).order_by(Flow.id))
        for flow_ids in (None, {flow_id}):
            query = service.creators_query(flow_ids)
            assert [u.id for u in db.session.scalars(query)] == [admin]
            if db.engine.dialect.name != "sqlite":
                continue
            db.session.execute(text("ANALYZE"))
            compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = " / ".join(row[3] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            assert "ix_invitations_creator" in plan and "SCAN invitations" not in plan, plan
