"""Helpers shared by the tests: one home, so no test module imports from another.

Shared fixtures live in conftest.py.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.auth import service as accounts
from portal.auth.service import create_user
from portal.extensions import db
from portal.invitations import service
from portal.models import Flow, Group, Role

from .conftest import TEST_PASSWORD, csrf_from, numbers_in, path_of, submit
from .flowkit import make_flow
from .mailserver import SmtpServer, text_of


def flow_option_id(html: str) -> str:
    return re.search(r'<option [^>]*value="(\d+)"', html).group(1)


def future_input(days=3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


IMPORT = "/admin/flows/import"


def upload_blueprint(client, *, text: str | None = None, filename: str = "blueprint.yaml", content=None):
    page = client.get(IMPORT).get_data(as_text=True)
    data: dict = {"csrf_token": csrf_from(page)}
    if content is not None:
        data["file"] = (io.BytesIO(content), filename)
    if text is not None:
        data["text"] = text
    return client.post(IMPORT, data=data, content_type="multipart/form-data")


NEW_PASSWORD = "violet-kettle-harbour-42"


def complete_wizard(client, link_path, *, username="newbie", name="Nia Newbie",
                    email="nia@example.com"):
    """Open the link and fill both prompt pages; returns the last response."""
    page = client.get(link_path, follow_redirects=True)
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (1, 2)
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": username, "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (2, 2), page.get_data(as_text=True)
    return submit(client, "/if/flow/default-enrollment-flow/", {"name": name, "email": email})


def make_member(app, username: str, *, permissions=(), namespaces=(), superuser_group=False) -> None:
    """A user whose only access is one group with one role."""
    with app.app_context():
        user = create_user(username=username, email=f"{username}@example.com", password=TEST_PASSWORD)
        group = Group(name=f"{username}-group", attributes={}, is_superuser=superuser_group)
        if permissions:
            group.roles.append(Role(name=f"{username}-role", permissions=list(permissions),
                                    namespaces=list(namespaces)))
        user.groups.append(group)
        db.session.commit()


def one_prompt_flow(app, **prompt) -> str:
    prompt.setdefault("field_key", "answer")
    return make_flow(app, "probe", [{"type": "prompt", "name": "probe-page", "prompts": [prompt]}])


def post(client, url, data, *, files=None):
    """Open the page (starting the flow), then post it as the browser would."""
    html = client.get(url).get_data(as_text=True)
    binding = re.search(r'name="binding" value="(\d+)"', html).group(1)
    payload = {"csrf_token": csrf_from(html), "binding": binding, **data, **(files or {})}
    return client.post(url, data=payload, follow_redirects=True,
                       content_type="multipart/form-data" if files else None)


def file_flow(app, **options):
    return one_prompt_flow(app, type="file", required=True,
                           options={"max_size": 1024, "allowed_types": [".pdf", "image/*"], **options})


def upload(name: str, content: bytes):
    return {"answer": (io.BytesIO(content), name)}


def signed_in(app, login="admin", password=TEST_PASSWORD):
    from .conftest import sign_in

    client = app.test_client()
    response = sign_in(client, login, password, follow_redirects=False)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def replaying_client(client):
    """A thief's browser holding a copy of the cookie (it keeps what the server sends back)."""
    thief = client.application.test_client()
    thief.set_cookie("session", client.get_cookie("session", domain="portal.test").value,
                     domain="portal.test")
    return thief


ENROLLMENT_URL = "/if/flow/default-enrollment-flow/"


class Inbox(SmtpServer):
    """The shared test SMTP server, read as a list of messages with their verification link."""

    @property
    def messages(self):
        return [message for _, message in super().messages]

    def link(self, index=-1) -> str:
        text = text_of(self.messages[index])
        return re.search(r"http://\S+/stage/\d+/verify\?token=\S+", text).group(0)


def reach_email_stage(app, client):
    client.get(path_of(app.config["TEST_LINK"]))
    submit(client, ENROLLMENT_URL, {"username": "verifier", "password": NEW_PASSWORD,
                                    "password_repeat": NEW_PASSWORD})
    return submit(client, ENROLLMENT_URL, {"name": "Vera", "email": "vera@example.com"})


def invitation_flow_id(client) -> str:
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    return re.search(r'<select[^>]*name="flow".*?<option [^>]*value="(\d+)"', html, re.S).group(1)


def add_invitations(app, count: int) -> None:
    """Invitations by different creators, so a lazy load per row would show."""
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        for n in range(count):
            creator = accounts.create_user(username=f"creator{n}-{count}", email=f"c{n}@example.com",
                                           password=TEST_PASSWORD) if n % 2 else None
            service.create_invitation(name=f"inv {count}-{n}", flow=flow, expires_at=None,
                                      created_by=creator)


def api_token(app, username: str = "admin", scopes=("superuser",), name: str = "script",
              days: int = 30) -> str:
    """An API token's secret for this user (through the service, as the account page makes it)."""
    from portal import apitokens
    from portal.models import User, utcnow

    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        _token, secret = apitokens.issue(user, name=name, scopes=list(scopes),
                                         expires_at=utcnow() + timedelta(days=days))
        return secret


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}
