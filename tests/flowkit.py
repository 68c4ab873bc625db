"""Build small flows straight in the database, for tests of stages, prompts and conditions."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import Flow, FlowAuthentication, FlowSession, FlowStageBinding, Prompt, Stage


def make_flow(app, slug: str, bindings: list[dict], *, authentication=FlowAuthentication.NONE) -> str:
    """bindings: dicts with stage `type`, `name`, optional `options`, `prompts` (Prompt kwargs),
    `condition`, `order`, `evaluate_on_plan`, `re_evaluate_policies`."""
    with app.app_context():
        flow = Flow(slug=slug, name=slug, title=slug.title(), authentication=authentication)
        db.session.add(flow)
        for index, spec in enumerate(bindings, start=1):
            stage = db.session.scalar(select(Stage).filter_by(name=spec["name"]))
            new = stage is None
            if new:
                stage = Stage(name=spec["name"], type=spec["type"], options=spec.get("options", {}))
            for number, values in enumerate(spec.get("prompts", []) if new else []):
                values = {"name": f"{spec['name']}-{values['field_key']}", "label": values["field_key"],
                          "order": number, **values}
                stage.prompts.append(Prompt(**values))
            flow.bindings.append(FlowStageBinding(
                stage=stage, order=spec.get("order", index * 10), condition=spec.get("condition"),
                evaluate_on_plan=spec.get("evaluate_on_plan", True),
                re_evaluate_policies=spec.get("re_evaluate_policies", False)))
        db.session.commit()
    return f"/if/flow/{slug}/"


def latest_session(app) -> FlowSession:
    with app.app_context():
        session = db.session.scalar(select(FlowSession).order_by(FlowSession.id.desc()))
        db.session.expunge(session)
        return session
