"""The small interface every stage type implements, and what a stage can answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..context import FlowContext


@dataclass
class Next:
    """The stage is done; go on to the next binding."""


@dataclass
class Retry:
    """Show a page again with errors by field key (a non-interactive stage sends the invitee
    back to the page that has the field)."""

    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Deny:
    """End the flow with a message for the invitee."""

    title: str
    message: str
    status: int = 403


Result = Next | Retry | Deny


class StageType:
    """Base class for stage types. Interactive stages implement `form` and `submit`;
    the others implement `run`, which is called when the flow reaches them."""

    type_name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""  # one line for the admin's "create a stage" page
    interactive: ClassVar[bool] = False
    template: ClassVar[str | None] = None
    # Running this stage (or showing its page) writes rows that belong to the flow session, or
    # acts for the visitor: the flow has really started, so its session is stored first. A stage
    # that only reads sets False, and a visitor who merely opens the flow's page writes nothing.
    needs_stored_session: ClassVar[bool] = True

    def __init__(self, stage) -> None:
        self.stage = stage
        self.options: dict = dict(stage.options or {})

    def run(self, ctx: FlowContext) -> Result:  # pragma: no cover - interface
        raise NotImplementedError

    def form(self, ctx: FlowContext, formdata=None):  # pragma: no cover - interface
        raise NotImplementedError

    def submit(self, ctx: FlowContext, form) -> Result:  # pragma: no cover - interface
        raise NotImplementedError

    def assigned_groups(self) -> list:
        """Groups this stage puts people in: what the privilege ceiling (portal.access.ceiling)
        weighs before an admin may bind or change it. Most stages assign none."""
        return []

    def field_keys(self) -> set[str]:
        """Field keys this stage asks for; used to send the invitee back to the right page."""
        return set()
