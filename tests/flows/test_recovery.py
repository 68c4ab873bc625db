"""Password recovery as a flow: authentik's recovery-with-email-verification blueprint imported as
it is, run over HTTP against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.blueprints import import_blueprint
from portal.models import ActionToken, User

from ..blueprint_helpers import OPERATOR, blueprint_text, empty_database, needs_blueprints
from ..conftest import TEST_PASSWORD, csrf_from, sign_in, submit
from ..mailserver import drop, make_mail_app, smtp, text_of  # noqa: F401 (fixture)

pytestmark = needs_blueprints

URL = "/if/flow/default-recovery-flow/"
NEW_PASSWORD = "copper-harbour-violet-58"
LINK = re.compile(r"http://portal\.test(/if/flow/default-recovery-flow/stage/\d+/verify\?token=\S+)")


@pytest.fixture
def recovery_app(tmp_path, smtp):  # noqa: F811 (fixture)
    app = make_mail_app(tmp_path, smtp)
    with app.app_context():
        empty_database()
        report = import_blueprint(blueprint_text("flows-recovery-email-verification.yaml"),
                                  actor=OPERATOR)
        assert report.ok, report.errors
        accounts.create_user(username="rosa", email="rosa@example.com", password=TEST_PASSWORD)
        db.session.commit()
    yield app
    drop(app)


def _link(message) -> str:
    return LINK.search(text_of(message)).group(1)


def _tokens(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ActionToken))


def _ask(client, identifier: str) -> str:
    """Identification, then the email stage's page."""
    client.get(URL)
    return submit(client, URL, {"login": identifier}).get_data(as_text=True)


def _check_page(html: str) -> str:
    """The "check your email" page without what differs per request (CSRF token, binding)."""
    html = re.sub(r'name="csrf_token" value="[^"]*"', "", html)
    return re.sub(r"/stage/\d+/", "/stage/N/", html)


def test_recovery_blueprint_resets_the_password_over_real_smtp(recovery_app, smtp):  # noqa: F811
    app = recovery_app
    other = app.test_client()  # rosa signed in elsewhere (maybe the reason for the recovery)
    assert sign_in(other, "rosa", TEST_PASSWORD, follow_redirects=False).status_code == 302
    assert other.get("/account/").status_code == 200

    client = app.test_client()
    page = _ask(client, "rosa")
    assert "Check your email" in page
    assert "rosa@example.com" not in page  # a username typed does not reveal the address
    [(recipients, message)] = smtp.messages
    assert recipients == ["rosa@example.com"]
    link = _link(message)

    for _ in range(2):  # opening the link (a mail scanner, a preview) uses nothing up
        assert "Confirm my address" in client.get(link).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ActionToken)
                                 .where(ActionToken.used_at.is_not(None))) == 0
    page = submit(client, link, {}).get_data(as_text=True)
    # On to the new password, twice, and not back to identification or the email: what
    # authentik's skip-if-restored expression policy (reported as skipped) is for.
    assert 'name="password_repeat"' in page and 'name="login"' not in page
    assert "Check your email" not in page
    # The link works once: opened again it is gone, and confirming it again does nothing.
    assert client.get(link).status_code == 410
    again = client.post(link, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 410

    done = submit(client, URL, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert done.request.path == "/account/"  # signed in as rosa
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1  # updated, not new
    assert len(smtp.messages) == 1

    # The other browser's session ended; the old password is refused, the new one works.
    assert other.get("/account/", follow_redirects=False).status_code == 302
    assert sign_in(app.test_client(), "rosa", TEST_PASSWORD, follow_redirects=False
                   ).status_code != 302
    assert sign_in(app.test_client(), "rosa", NEW_PASSWORD, follow_redirects=False
                   ).status_code == 302


def test_unknown_identifier_gets_the_same_page_and_no_email(recovery_app, smtp):  # noqa: F811
    app = recovery_app
    clients = {who: app.test_client() for who in ("rosa", "nobody@example.com")}
    pages = {who: _ask(client, who) for who, client in clients.items()}
    assert _check_page(pages["nobody@example.com"]) == _check_page(pages["rosa"])
    assert len(smtp.messages) == 1  # rosa's only
    assert _tokens(app) == 2  # the same work: a token row each (one nobody holds)
    # "Send again" answers alike too (too soon for both).
    again = {}
    for who, client in clients.items():
        action = re.search(r'action="([^"]+/resend)"', pages[who]).group(1)
        html = client.post(action, data={"csrf_token": csrf_from(pages[who])},
                           follow_redirects=True).get_data(as_text=True)
        wait = re.search(r"Please wait (\d+) seconds before asking for another email\.", html)
        again[who] = 0 < int(wait.group(1)) <= 60  # the same wait, give or take the clock
    assert again == {"rosa": True, "nobody@example.com": True}
    assert len(smtp.messages) == 1


def test_link_confirmed_in_another_browser_continues_there(recovery_app, smtp):  # noqa: F811
    """The browser that asked loses the flow: whoever asks for someone else's reset gets nothing
    when that person confirms the link."""
    app = recovery_app
    asker = app.test_client()
    _ask(asker, "rosa")
    [(_, message)] = smtp.messages
    mailbox = app.test_client()
    page = submit(mailbox, _link(message), {}).get_data(as_text=True)
    assert 'name="password_repeat"' in page
    assert 'name="password_repeat"' not in asker.get(URL, follow_redirects=True).get_data(
        as_text=True)
    done = submit(mailbox, URL, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert done.request.path == "/account/"


# -- the seeded default-recovery-flow behind "Forgot password?" ----------------------------------


@pytest.fixture
def seeded_app(tmp_path, smtp):  # noqa: F811 (fixture)
    from portal.flows.defaults import ensure_default_authentication_flow

    app = make_mail_app(tmp_path, smtp)
    with app.app_context():
        ensure_default_authentication_flow()  # as /auth/login does: seeds recovery with it
        accounts.create_user(username="rosa", email="rosa@example.com", password=TEST_PASSWORD)
        db.session.commit()
    yield app
    drop(app)


def test_forgot_password_on_the_sign_in_page_resets_the_password(seeded_app, smtp):  # noqa: F811
    app = seeded_app
    client = app.test_client()
    html = client.get("/auth/login", follow_redirects=True).get_data(as_text=True)
    assert f'<a href="{URL}">Forgot password?</a>' in html
    page = _ask(client, "rosa@example.com")
    assert "Check your email" in page
    [(recipients, message)] = smtp.messages
    assert recipients == ["rosa@example.com"]
    assert message["Subject"] == "Reset your password"
    submit(client, _link(message), {})
    done = submit(client, URL, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert done.request.path == "/account/"
    assert sign_in(app.test_client(), "rosa", NEW_PASSWORD, follow_redirects=False
                   ).status_code == 302


def test_recovery_flow_is_seeded_once_and_linked_on_upgrade(seeded_app):
    from portal.flows.defaults import DEFAULT_RECOVERY_SLUG
    from portal.models import Flow, Stage

    app = seeded_app
    with app.app_context():  # an install whose sign-in flow was seeded before recovery existed
        db.session.delete(db.session.scalar(select(Flow).filter_by(slug=DEFAULT_RECOVERY_SLUG)))
        stage = db.session.scalar(select(Stage).filter_by(
            name="default-authentication-identification"))
        stage.options = {k: v for k, v in stage.options.items() if k != "recovery_flow"}
        db.session.commit()
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed", "--no-setup-link"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        flows = db.session.scalars(select(Flow).filter_by(slug=DEFAULT_RECOVERY_SLUG)).all()
        assert len(flows) == 1 and flows[0].designation == "recovery"
        assert [(b.order, b.stage.type) for b in flows[0].bindings] == [
            (10, "identification"), (20, "email"), (30, "prompt"), (40, "user_write"),
            (100, "user_login")]
        stage = db.session.scalar(select(Stage).filter_by(
            name="default-authentication-identification"))
        assert stage.options["recovery_flow"] == flows[0].id


def _work_of(app, request):
    """What the requests `request()` makes did before each response went out (mail delivered
    after a response is not counted): their writes by kind, commits and templates rendered."""
    from flask import request_finished, request_started, template_rendered

    from portal.extensions import db as database

    seen = {"writes": [], "commits": 0, "templates": []}
    live = []

    def statement(_conn, _cursor, sql, *_args):
        if live and sql.split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen["writes"].append(sql.split(None, 1)[0].upper())

    def commit(_conn):
        if live:
            seen["commits"] += 1

    def rendered(_app, template=None, **_extra):
        if live:
            seen["templates"].append(template.name)

    with app.app_context():
        engine = database.engine
    started = lambda *_a, **_k: live.append(True)  # noqa: E731
    finished = lambda *_a, **_k: live.clear()  # noqa: E731
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    with request_started.connected_to(started, app), request_finished.connected_to(finished, app), \
            template_rendered.connected_to(rendered, app):
        try:
            response = request()
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "commit", commit)
    return response, seen


def test_known_and_unknown_identifiers_take_the_same_steps_with_the_same_work(
        recovery_app, smtp):  # noqa: F811
    """Not only the same page: the same redirects, the same work on the way (writes, commits,
    the email rendered), the same answer to "Continue" before the link is opened. Counted,
    not timed: the counts do not depend on a busy machine."""
    app = recovery_app
    steps, work = {}, {}
    for who in ("rosa", "nobody@example.com"):
        client = app.test_client()
        html = client.get(URL).get_data(as_text=True)
        binding = re.search(r'name="binding" value="(\d+)"', html).group(1)
        data = {"csrf_token": csrf_from(html), "binding": binding, "login": who}

        def identify(c=client, d=data):
            posted = c.post(URL, data=d)
            posted.close()  # as a server closes it: mail goes out after the response
            return posted, c.get(posted.headers["Location"])

        (posted, page), work[who] = _work_of(app, identify)
        page = page.get_data(as_text=True)
        answer = submit(client, URL, {}).get_data(as_text=True)
        steps[who] = (posted.status_code, posted.headers["Location"], _check_page(page),
                      _check_page(answer))
    assert steps["nobody@example.com"] == steps["rosa"]
    assert "We have not seen the link opened yet." in steps["rosa"][3]
    rosa, nobody = work["rosa"], work["nobody@example.com"]
    assert len(nobody["writes"]) == len(rosa["writes"]) and nobody["commits"] == rosa["commits"]
    assert nobody["templates"] == rosa["templates"]
    assert {"email/password_reset.txt", "email/password_reset.html"} <= set(rosa["templates"])
    assert rosa["writes"].count("INSERT") == nobody["writes"].count("INSERT") + 1  # the outbox row
    assert len(smtp.messages) == 1  # rosa's only
