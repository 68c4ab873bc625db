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

from .conftest import TEST_PASSWORD, submit
from .helpers import flow_option_id, future_input


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


@pytest.mark.parametrize("text, problem", [
    ("n: .inf", "n: numbers must be finite (not .inf or .nan)."),
    ("deep: {n: [1, .nan]}", "deep.n.1: numbers must be finite (not .inf or .nan)."),
    ("n: 1.0e+999", "n: numbers must be finite"),
    ('t: "a\\0b"', "t: text may not contain NUL characters."),
    ('"k\\0": 1', "The key 'k\\x00': text may not contain NUL characters."),
    ('t: "\\ud800"', "t: text contains a character that is not valid Unicode."),
    ("n: " + "9" * 5000, "Line 1, column 4: numbers are limited to 19 digits."),
    ("n: 0x" + "f" * 20_000, "Line 1, column 4: numbers are limited to 19 digits."),
    ("n: " + ":".join(["59"] * 3000), "Line 1, column 4: numbers are limited to 19 digits."),
    ("n: 9223372036854775808", "numbers are limited to 19 digits."),
])
def test_attributes_refuse_what_json_columns_cannot_hold(text, problem):
    """Valid YAML that PostgreSQL's JSON refuses (a 400 instead of a field error) or that
    cannot be written out as UTF-8 or as a number's text."""
    with pytest.raises(ValueError) as refused:
        parse_attributes(text)
    assert problem in str(refused.value)
    assert parse_attributes("n: 9223372036854775807\nf: 1.5e+300") == {
        "n": 9223372036854775807, "f": 1.5e300}


def test_a_nan_attribute_in_the_invitation_form_is_a_field_error(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    page = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "nan", "expires": future_input(), "flow": flow_option_id(html),
        "attributes": "score: .nan"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "score: numbers must be finite (not .inf or .nan)." in text
    assert _textarea(text, "attributes") == "score: .nan"
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


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
        "kind": "link", "name": "laughs", "expires": future_input(), "flow": flow_option_id(html),
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
        "upload": (io.BytesIO(csv.encode()), "people.csv"), "flow": "1", "expires": future_input(),
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


# -- blueprints ---------------------------------------------------------------------------------

GROUP_ENTRY = "  - model: authentik_core.group\n    identifiers: {name: team}\n"


def _laughs_blueprint(levels: int = 9, fan: int = 9) -> str:
    lines = ["version: 1", f"l0: &l0 [{','.join(['lol'] * fan)}]"]
    lines += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * fan)}]" for n in range(1, levels)]
    return "\n".join(lines) + f"\nentries:\n{GROUP_ENTRY}    attrs: {{attributes: {{x: *l{levels - 1}}}}}\n"


def _refused_quickly(app, text: str) -> list[str]:
    from portal.flows.blueprints import import_blueprint

    from .blueprint_helpers import OPERATOR, row_counts

    with app.app_context():
        counts = row_counts()
        started = time.perf_counter()
        report = import_blueprint(text, actor=OPERATOR)
        assert time.perf_counter() - started < 2
        assert not report.ok and not report.applied
        assert row_counts() == counts  # nothing was written
        return report.errors


@pytest.mark.parametrize("text, error", [
    # 9**9 strings from 72 aliases: refused at the alias that crosses the bound, before building.
    (_laughs_blueprint(), "Line 7, column 14: with its aliases expanded, the file is larger than "
                          "512 kB (the file is refused)."),
    # Few aliases, each of a big list: the count of aliases alone would let this through.
    (_laughs_blueprint(levels=3, fan=63), "Line 4, column 134: with its aliases expanded, the file "
                                          "is larger than 512 kB (the file is refused)."),
    ("version: 1\nentries: &e [*e]\n", "Line 2, column 14: an alias refers to the list or mapping "
                                       "that contains it (the file is refused)."),
    ("version: 1\nentries: []\nx: " + "9" * 5000 + "\n", "Line 3, column 4: a number too large to "
                                                          "read (the file is refused)."),
])
def test_hostile_blueprints_are_refused_by_the_loader_with_the_line(app, text, error):
    assert _refused_quickly(app, text) == [error]


BIG = "&big " + "x" * 9000


@pytest.mark.parametrize("entry, error", [
    (GROUP_ENTRY.replace("{name: team}", '{name: !Format ["%999999999s", x]}'),
     "entry 1 (authentik_core.group): name: !Format '%999999999s': widths and precisions above 100 "
     "are not supported."),
    (GROUP_ENTRY.replace("{name: team}", '{name: !Format ["%.999999999f", 1]}'),
     "entry 1 (authentik_core.group): name: !Format '%.999999999f': widths and precisions above "
     "100 are not supported."),
    (GROUP_ENTRY.replace("{name: team}", '{name: !Format ["%*s", 999999999, x]}'),
     "entry 1 (authentik_core.group): name: !Format '%*s': a width or precision taken from the "
     "arguments (*) is not supported."),
    # Each text column holds what its String(length) allows, whichever field it is.
    (GROUP_ENTRY + f"    attrs: {{name: {'g' * 151}}}\n",
     "entry 1 (authentik_core.group): name: longer than 150 characters."),
    ("  - model: authentik_stages_prompt.prompt\n    identifiers: {name: p}\n"
     f"    attrs: {{field_key: p, type: text, placeholder: {'x' * 10_001}}}\n",
     "entry 1 (authentik_stages_prompt.prompt): placeholder: longer than 10000 characters."),
    ("  - model: authentik_stages_prompt.prompt\n    identifiers: {name: p}\n"
     f"    attrs: {{field_key: p, type: text, placeholder: !Format ['%s%s', {BIG}, *big]}}\n",
     "entry 1 (authentik_stages_prompt.prompt): placeholder: !Format gives more than 10000 "
     "characters."),
    ("  - model: authentik_stages_deny.denystage\n    identifiers: {name: d}\n"
     f"    attrs: {{deny_message: {BIG}}}\n",
     "entry 1 (authentik_stages_deny.denystage): deny_message: longer than 5000 characters."),
    # Each option within its bound, the stage's options together beyond the JSON column's.
    ("  - model: authentik_stages_consent.consentstage\n    identifiers: {name: c}\n"
     f"    attrs: {{consent_text: {'x' * 70_000}}}\n",
     "entry 1 (authentik_stages_consent.consentstage): options: larger than 64 kB."),
])
def test_hostile_entries_are_refused_with_the_entry_named(app, entry, error):
    assert _refused_quickly(app, f"version: 1\nentries:\n{entry}") == [error]


def test_a_billion_laughs_upload_is_refused_on_the_import_page(app, client, auth, admin):
    from .blueprint_helpers import row_counts
    from .helpers import upload_blueprint

    auth.login()
    with app.app_context():
        counts = row_counts()
    started = time.perf_counter()
    response = upload_blueprint(client, content=_laughs_blueprint().encode())
    assert time.perf_counter() - started < 2
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The blueprint cannot be imported; nothing was changed." in html
    assert "Line 7, column 14: with its aliases expanded, the file is larger than 512 kB" in html
    with app.app_context():
        assert row_counts() == counts


def test_modest_aliases_and_formats_still_import(app):
    from portal.flows.blueprints import import_blueprint
    from portal.models import Group

    from .blueprint_helpers import OPERATOR

    text = ("version: 1\ncommon: &common {department: research}\nentries:\n"
            "  - model: authentik_core.group\n"
            "    identifiers: {name: !Format ['%-8s|%5.2f', team, 3.14159]}\n"
            "    attrs: {attributes: {<<: *common, floor: 3}}\n")
    with app.app_context():
        report = import_blueprint(text, actor=OPERATOR)
        assert report.ok, report.errors
        group = db.session.scalar(select(Group).filter_by(name="team    | 3.14"))
        assert group is not None and group.attributes == {"department": "research", "floor": 3}


# -- request size -------------------------------------------------------------------------------


def test_an_oversized_post_gets_the_friendly_413_page_at_once(app, client):
    from portal.flows.blueprints import MAX_BLUEPRINT_BYTES
    from portal.flows.prompts import FILE_MAX_SIZE_LIMIT

    from .helpers import file_flow, post, upload

    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 16 * 1024 * 1024
    assert limit > 2 * FILE_MAX_SIZE_LIMIT and limit > MAX_BLUEPRINT_BYTES
    url = file_flow(app, max_size=FILE_MAX_SIZE_LIMIT)
    started = time.perf_counter()
    response = post(client, url, {}, files=upload("huge.pdf", b"%PDF" + b"x" * limit))
    assert time.perf_counter() - started < 2
    html = response.get_data(as_text=True)
    response.close()  # the test client's spooled body, which the app never read
    assert response.status_code == 413
    assert "<h1>Too large to accept</h1>" in html
    assert "larger than the portal accepts (at most 16 MB at once)" in html
    # The largest file a prompt may take still gets through to the prompt's own check.
    fits = post(client, url, {}, files=upload("big.pdf", b"%PDF" + b"x" * (FILE_MAX_SIZE_LIMIT - 4)))
    fits_html = fits.get_data(as_text=True)
    fits.close()
    assert fits.status_code == 200 and "Please correct" not in fits_html


# -- the bulk CSV: one limit (BULK_INVITE_MAX_BYTES) for the paste, the upload and Werkzeug --------


def _paste_of(size: int, addresses: int = 300) -> str:
    """`addresses` clean lines, padded with a line of spaces (skipped) to exactly `size` bytes."""
    text = "".join(f"person{n}@example.com\n" for n in range(addresses))
    return text + " " * (size - len(text.encode()))


def _bulk_post(client, data: dict) -> tuple[int, str]:
    """As the browser sends it: multipart (the form has a file input), the file left empty.
    The response is closed at once: it holds the test client's spooled copy of a large body."""
    response = submit(client, "/admin/invitations/bulk", {
        "upload": (io.BytesIO(b""), ""), "flow": "1", "expires": future_input(), "preview": "Preview",
        **data})
    html = response.get_data(as_text=True)
    response.close()
    return response.status_code, html


def test_the_largest_allowed_paste_previews_and_one_byte_more_is_a_field_error(app, client, auth,
                                                                              admin):
    limit = app.config["BULK_INVITE_MAX_BYTES"]
    assert limit == 2 * 1024 * 1024 and app.config["MAX_FORM_MEMORY_SIZE"] > limit
    auth.login()
    status, html = _bulk_post(client, {"text": _paste_of(limit)})
    assert status == 200, html[:500]
    assert re.search(r"Preview: 300 of 300 rows will be invited<", html)
    status, html = _bulk_post(client, {"text": _paste_of(limit + 1)})
    assert status == 200
    assert "The pasted text is larger than 2 MB (2,097,152 bytes); split it." in html
    assert "Preview:" not in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_a_paste_far_above_the_limit_gets_a_413_that_names_the_field_limit(app, client, auth,
                                                                          admin):
    auth.login()
    status, html = _bulk_post(client, {"text": _paste_of(3 * app.config["BULK_INVITE_MAX_BYTES"])})
    assert status == 413
    assert "A text field in what you sent is larger than the portal accepts (at most 2 MB in one " \
           "field)" in html


def test_an_upload_over_the_limit_is_refused_with_the_limit(app_factory):
    app = app_factory(BULK_INVITE_MAX_BYTES=100_000)
    assert app.config["MAX_FORM_MEMORY_SIZE"] == 100_000 + 64 * 1024
    from .helpers import signed_in

    with app.app_context():
        from portal.auth import service as accounts

        accounts.create_user(username="admin", email="admin@example.com",
                             password=TEST_PASSWORD, superuser=True)
    client = signed_in(app)
    fits = submit(client, "/admin/invitations/bulk", {
        "upload": (io.BytesIO(_paste_of(100_000, 10).encode()), "people.csv"), "flow": "1",
        "expires": future_input(), "preview": "Preview"}).get_data(as_text=True)
    assert re.search(r"Preview: 10 of 10 rows will be invited<", fits)
    too_big = submit(client, "/admin/invitations/bulk", {
        "upload": (io.BytesIO(_paste_of(100_001, 10).encode()), "people.csv"), "flow": "1",
        "expires": future_input(), "preview": "Preview"}).get_data(as_text=True)
    assert "The file is larger than 97 kB (100,000 bytes); split it." in too_big
    _, pasted = _bulk_post(client, {"text": _paste_of(100_001, 10)})
    assert "The pasted text is larger than 97 kB (100,000 bytes); split it." in pasted


def test_bulk_limit_must_fit_below_the_request_limit():
    import config as settings

    with pytest.raises(settings.SettingError, match="BULK_INVITE_MAX_BYTES=20000000 leaves no room"):
        settings.load({"BULK_INVITE_MAX_BYTES": 20_000_000})
