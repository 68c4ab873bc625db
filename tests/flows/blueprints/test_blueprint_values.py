"""Blueprint values that are valid YAML but that no JSON column or page can hold: refused
with their line or entry, like the invitation form's attributes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.flows.blueprints import import_blueprint
from portal.models import Group

from ...blueprint_helpers import OPERATOR


def _group_with(attributes: str) -> str:
    return f"""version: 1
metadata: {{name: values}}
entries:
  - model: authentik_core.group
    identifiers: {{name: imported}}
    attrs:
      name: imported
      attributes: {attributes}
"""


def test_a_huge_sexagesimal_number_is_refused_with_its_line(app):
    text = _group_with("{n: " + ":".join(["59"] * 3000) + "}")
    with app.app_context():
        report = import_blueprint(text, actor=OPERATOR)
        assert not report.ok
        assert "a number too large to read" in report.errors[0]
        assert db.session.scalar(select(Group).filter_by(name="imported")) is None


@pytest.mark.parametrize("value", ["{n: .inf}", "{n: .nan}", '{t: "a\\0b"}', '{t: "\\ud800"}'])
def test_attributes_no_json_column_can_hold_are_refused_with_the_entry(app, value):
    with app.app_context():
        report = import_blueprint(_group_with(value), actor=OPERATOR)
        assert not report.ok
        assert report.errors[0].startswith("entry 1 (authentik_core.group): attributes.")
        assert db.session.scalar(select(Group).filter_by(name="imported")) is None
