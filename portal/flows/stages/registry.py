"""The registered stage types, by name and by authentik model, and hooks across them.

Kept apart from the package's __init__ (which imports every type to register it) so that a stage
module can call the hooks of the other types without importing them.
"""

from __future__ import annotations

from .base import StageType

STAGE_TYPES: dict[str, type[StageType]] = {}


def register(cls: type[StageType]) -> type[StageType]:
    """Make a stage type known to the engine, the admin, the blueprints and the ceiling."""
    STAGE_TYPES[cls.type_name] = cls
    return cls


def unregister(type_name: str) -> None:
    STAGE_TYPES.pop(type_name, None)


def stage_type_for(stage) -> StageType:
    try:
        return STAGE_TYPES[stage.type](stage)
    except KeyError:
        raise LookupError(f"unknown stage type {stage.type!r}") from None


def by_model(model: str) -> type[StageType] | None:
    """The stage type for an authentik model name, such as authentik_stages_deny.denystage."""
    return next((cls for cls in STAGE_TYPES.values() if cls.model == model), None)


def after_user_created(ctx, user) -> None:
    """Every stage type bound in the flow attaches what it collected to the new user."""
    from ...sources.service import link_new_user

    kinds = dict.fromkeys(b.stage.type for b in ctx.flow.bindings)
    for kind in kinds:
        cls = STAGE_TYPES.get(kind)
        if cls is not None:
            cls.after_user_created(ctx, user)
    link_new_user(ctx, user)  # an identity from an SSO source: linked to the new account
