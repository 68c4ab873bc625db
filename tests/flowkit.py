"""Build small flows straight in the database, for tests of stages, prompts and conditions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

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


# -- driving the engine without HTTP ------------------------------------------------------------


def flow_named(slug: str) -> Flow:
    return db.session.scalar(select(Flow).filter_by(slug=slug))


def begin(slug: str, *, user=None, superuser: bool = False, token: str | None = None,
          prompt_data: dict | None = None, password_hash: str | None = None):
    """A stored flow session for `slug` and a FlowExecutor on it, as the web layer builds them
    (the visitor `user`, their superuser standing, the base URL and an address). Call inside an
    app context; returns the executor (its `.session` and `.ctx` are there to look at)."""
    from portal.flows import executor

    session, _ = executor.start(flow_named(slug), token, current_user=user,
                                lifetime=timedelta(hours=1))
    if prompt_data:
        session.prompt_data = {**session.prompt_data, **prompt_data}
    session.password_hash = password_hash
    db.session.commit()
    return resume(session, user=user, superuser=superuser)


def resume(session, *, user=None, superuser: bool = False):
    """A new executor on the same flow session: the visitor's next request."""
    from portal.flows.executor import FlowExecutor

    return FlowExecutor(session, current_user=user, superuser=superuser,
                        base_url="http://portal.test", client_ip="192.0.2.7")


def answer(wizard, step, values: dict):
    """Post a page's form (values as a browser sends them) to the binding the step shows."""
    return wizard.submit(step.binding_id, MultiDict(values))
