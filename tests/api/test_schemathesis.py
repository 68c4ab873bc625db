"""The API against its own OpenAPI document: schemathesis generates requests for every operation
and sends them, with a Bearer token, to a live server (werkzeug in a thread). No 5xx, and every
response fits the documented status codes, content types and schemas.

Bounded: MAX_EXAMPLES per operation, derandomized (the same cases each run), no example database.
"""

from __future__ import annotations

import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from portal.extensions import db
from portal.models import Group

from ..helpers import api_token, bearer

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def live_api(app, admin, make_invitation):
    """The testing app served over HTTP on a free loopback port, with a little data."""
    with app.app_context():
        db.session.add(Group(name="staff", attributes={}))
        db.session.commit()
    make_invitation(name="seeded", email="seed@example.com")
    make_invitation(name="seeded link")
    app.config.update(SERVER_NAME=None, TRUSTED_HOSTS=None)
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", bearer(api_token(app, "admin"))
    finally:
        server.shutdown()
        thread.join(10)


@pytest.mark.timeout(240)
def test_every_operation_conforms_to_the_spec(live_api):
    base, headers = live_api
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 81  # every operation of the document, none left out (36 of them
    # the tenant-scoped ones again under /api/v1/{tenant}/)

    for operation in operations:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, then reported together
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert failures == {}
