"""The source stage (portal.flows.stages.source) inside a flow of its own: "Continue with
<source>", the provider, back, done."""

from __future__ import annotations

import re

from portal.extensions import db
from portal.models import Flow, FlowDesignation, FlowStageBinding, Stage

from ...conftest import TEST_PASSWORD, csrf_from, path_of
from ...oidc_provider import log_in


def test_a_source_stage_signs_in_a_linked_account(app, client, sso_source):
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        service.link(bob, db.session.get(service.OIDCSource, sso_source),
                     service.oidc.Identity(subject="bob"), ip=None)
        flow = Flow(slug="sso-sign-in", name="SSO sign-in", title="Sign in with your company",
                    designation=FlowDesignation.AUTHENTICATION)
        flow.bindings.extend([
            FlowStageBinding(stage=Stage(name="via-idp", type="source",
                                         options={"source": sso_source}), order=10),
            FlowStageBinding(stage=Stage(name="sso-login", type="user_login", options={}),
                             order=20)])
        db.session.add(flow)
        db.session.commit()
    html = client.get("/if/flow/sso-sign-in/").get_data(as_text=True)
    assert "Continue with Test IdP" in html
    action = re.search(r'action="(/source/oidc/[^"]+/start)">(.*?)</form>', html, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', action.group(2)))
    response = client.post(action.group(1), data={**fields, "csrf_token": csrf_from(html)})
    back = client.get(path_of(log_in(response.headers["Location"], "bob")))
    assert back.headers["Location"].endswith("/if/flow/sso-sign-in/")
    done = client.get("/if/flow/sso-sign-in/")
    assert done.status_code == 302
    assert client.get("/account/").status_code == 200
