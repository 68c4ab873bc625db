"""The flow editor through its HTML forms, CSRF on: flows, bindings, stages, prompts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Flow, FlowStageBinding, Prompt, Stage


@pytest.fixture
def editor(client, auth, admin):
    auth.login()
    return client


def _ids(app, model, **filters):
    with app.app_context():
        return db.session.scalar(select(model.id).filter_by(**filters))


def test_every_editor_page_renders(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    pages = ["/admin/flows/", "/admin/flows/new", f"/admin/flows/{flow_id}",
             f"/admin/flows/{flow_id}/edit", f"/admin/flows/{flow_id}/bindings/new",
             "/admin/stages/", "/admin/stages/new", "/admin/prompts/", "/admin/prompts/new"]
    from portal.flows.stages import STAGE_TYPES

    pages += [f"/admin/stages/new/{kind}" for kind in STAGE_TYPES]
    with app.app_context():
        pages += [f"/admin/stages/{s.id}/edit" for s in db.session.scalars(select(Stage))]
        pages += [f"/admin/prompts/{p.id}/edit" for p in db.session.scalars(select(Prompt))]
        pages += [f"/admin/flows/{flow_id}/bindings/{b.id}/edit"
                  for b in db.session.scalars(select(FlowStageBinding))]
    for page in pages:
        response = editor.get(page)
        assert response.status_code == 200, page
        assert 'href="/admin/flows/"' in response.get_data(as_text=True)
