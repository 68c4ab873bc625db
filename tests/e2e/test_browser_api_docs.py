"""The API documentation page in a real browser: Swagger UI from the portal's own static files
renders the OpenAPI 3.1 document under the portal's Content-Security-Policy, and nothing is
fetched from anywhere else."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_docs_page_renders_the_spec_from_local_assets(page, live_server):
    foreign, errors = [], []
    page.on("request", lambda request: None if request.url.startswith(live_server)
            else foreign.append(request.url))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name="Invitation portal API")).to_be_visible()
    expect(page.get_by_text("/api/v1/invitations/{invitation_id}/resend").first).to_be_visible()
    assert foreign == []
    assert [e for e in errors if "Content Security Policy" in e] == []
