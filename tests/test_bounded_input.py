"""Bounded input: a few hostile bytes must not take the server's memory or time.

Attributes (invitation form, bulk CSV), blueprint imports, and the size of any request.
"""

from __future__ import annotations

import html as html_lib
import io
import re
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.invitations.attributes import parse_attributes
from portal.models import Invitation

from .conftest import submit
from .test_admin import _flow_id, _future


def billion_laughs(levels: int = 9, *, flow: bool = False) -> str:
    """The classic: each level holds nine aliases of the one before; 9**9 strings expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]")
    return "{" + ", ".join(lines) + "}" if flow else "\n".join(lines) + "\n"


def _textarea(html: str, name: str) -> str:
    found = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert found, f"no textarea {name}"
    return html_lib.unescape(found.group(1)).lstrip("\r\n")


# -- attributes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    (billion_laughs(), "Line 1, column 5: YAML anchors and aliases"),
    ("base: &b {team: red}\nother: *b\n", "Line 1, column 7: YAML anchors and aliases"),
    ("x: " + "[" * 30 + "]" * 30, "nested more than 20 levels deep"),
    ("x: [" + ",".join(["1"] * 6000) + "]", "more than 5000 values"),
    ("x: '" + "y" * 70_000 + "'", "Attributes are limited to 64 kB of text."),
])
def test_attributes_refuse_aliases_and_bound_depth_and_size(text, problem):
    started = time.perf_counter()
    with pytest.raises(ValueError) as refused:
        parse_attributes(text)
    assert time.perf_counter() - started < 2
    assert problem in str(refused.value)


def test_plain_attributes_still_parse():
    assert parse_attributes("team: red\ntags: [a, b]\nstart: 2030-01-02\n") == {
        "team": "red", "tags": ["a", "b"], "start": "2030-01-02"}
    assert parse_attributes('{"email": "j@example.com"}') == {"email": "j@example.com"}
    assert parse_attributes("") == {}


def test_a_billion_laughs_in_the_invitation_form_is_a_field_error(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    payload = billion_laughs()
    started = time.perf_counter()
    page = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "laughs", "expires": _future(), "flow": _flow_id(html),
        "attributes": payload,
    })
    assert time.perf_counter() - started < 2
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Line 1, column 5: YAML anchors and aliases (&amp;name, *name) are not allowed here" in text
    assert _textarea(text, "attributes") == payload  # what was typed is kept for correcting
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_a_billion_laughs_in_a_csv_row_is_that_rows_problem(app, client, auth, admin):
    laughs = billion_laughs(flow=True).replace('"', '""')
    csv = f'email,name,attributes\nfine@example.com,Fine,\nbad@example.com,Bad,"{laughs}"\n'
    auth.login()
    started = time.perf_counter()
    page = submit(client, "/admin/invitations/bulk", {
        "upload": (io.BytesIO(csv.encode()), "people.csv"), "flow": "1", "expires": _future(),
        "preview": "Preview"})
    assert time.perf_counter() - started < 2
    html = page.get_data(as_text=True)
    assert "Preview: 1 of 2 rows will be invited" in html
    row = re.search(r"<tr class=\"row-problem\">\s*<td>(\d+)</td><td>([^<]*)</td>.*?"
                    r'badge-expired">([^<]*)</span>', html, re.S)
    assert row is not None
    assert (row.group(1), row.group(2)) == ("3", "bad@example.com")
    assert html_lib.unescape(row.group(3)).startswith(
        "Bad attributes: Line 1, column 6: YAML anchors and aliases (&name, *name) are not allowed")
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0
