"""The small interface every stage type implements, and what a stage can answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .options import Option

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


@dataclass(frozen=True)
class Superseded:
    """authentik attributes a stage type has no option for that are irrelevant while another
    attribute has a value (an email stage's SMTP host under `use_global_settings: true`): the
    import report says why they are not acted on instead of calling them dropped."""

    attrs: tuple[str, ...]
    when: str  # the blueprint attribute...
    equals: object  # ...and its value, as written in the blueprint
    reason: str


@dataclass
class ActionRequest:
    """What a stage action is given: the request's method and values, and the visitor's own
    flow context when they have a flow session for this flow (None otherwise)."""

    method: str
    args: dict
    form: dict
    ctx: FlowContext | None = None


@dataclass
class ActionResult:
    """What a stage action answers: back to the flow's page (with notices), a page of its own,
    or an error page. The web layer renders it."""

    kind: str  # "back" | "page" | "error"
    template: str = ""
    values: dict = field(default_factory=dict)
    status: int = 200
    title: str = ""
    message: str = ""
    notices: list[tuple[str, str]] = field(default_factory=list)
    # A flow session key this browser continues with from now on (the email link of a recovery
    # opened in another browser); the web layer remembers it.
    resume_key: str | None = None

    @classmethod
    def back(cls, notice: tuple[str, str] | None = None) -> ActionResult:
        return cls("back", notices=[notice] if notice else [])

    @classmethod
    def page(cls, template: str, **values) -> ActionResult:
        return cls("page", template=template, values=values)

    @classmethod
    def error(cls, status: int, title: str, message: str) -> ActionResult:
        return cls("error", status=status, title=title, message=message)


@dataclass(frozen=True)
class StageAction:
    """Something a stage type does outside its page's own POST (the email stage's "send again"
    and its verification link), served by the one route /if/flow/<slug>/stage/<binding>/<name>.

    `handler(stage, request)` gets the StageType bound to the binding and an ActionRequest
    (portal.flows.actions) and returns an ActionResult; it knows no HTTP either."""

    name: str
    handler: Callable
    methods: tuple[str, ...] = ("POST",)
    # The visitor must be on this binding in their own flow session (else the action is refused).
    needs_session: bool = True
    rate_limited: bool = False  # counted against the "send the email again" limit


class StageType:
    """Base class for stage types. Interactive stages implement `form` and `submit`;
    the others implement `run`, which is called when the flow reaches them.

    A subclass declares, as data: its name and label, its authentik model, its options (see
    options.Option: the admin form, the blueprint mapping and the import report come from them),
    its actions, and hooks such as `after_user_created`."""

    type_name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""  # one line for the admin's "create a stage" page
    # authentik's model name for this stage type, e.g. authentik_stages_deny.denystage.
    model: ClassVar[str]
    declared_options: ClassVar[tuple[Option, ...]] = ()
    actions: ClassVar[tuple[StageAction, ...]] = ()
    superseded: ClassVar[tuple[Superseded, ...]] = ()
    interactive: ClassVar[bool] = False
    template: ClassVar[str | None] = None
    # Running this stage (or showing its page) writes rows that belong to the flow session, or
    # acts for the visitor: the flow has really started, so its session is stored first. A stage
    # that only reads sets False, and a visitor who merely opens the flow's page writes nothing.
    needs_stored_session: ClassVar[bool] = True
    # Its POSTs are sign-in attempts (who is it, is this their password): the flow route counts
    # their failures against the sign-in limits (portal.ratelimits.sign_in), per account and
    # address, instead of the general wizard limit.
    sign_in_attempt: ClassVar[bool] = False
    # Its form names the account (the `login` field): the per-account sign-in limit keys its
    # POSTs by what they send; every other page's POST by the account the flow noted.
    names_the_account: ClassVar[bool] = False

    def __init__(self, stage) -> None:
        self.stage = stage
        self.options: dict = dict(stage.options or {})

    def run(self, ctx: FlowContext) -> Result:  # pragma: no cover - interface
        raise NotImplementedError

    def enter(self, ctx: FlowContext) -> Result | None:
        """An interactive stage, reached by the flow, before its page is shown: None shows the
        page, Next skips it (nothing to ask), Deny ends the flow (e.g. nobody to ask)."""
        return None

    def form(self, ctx: FlowContext, formdata=None):  # pragma: no cover - interface
        raise NotImplementedError

    def submit(self, ctx: FlowContext, form) -> Result:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def option(cls, key: str) -> Option:
        return next(o for o in cls.declared_options if o.key == key)

    @classmethod
    def action(cls, name: str) -> StageAction | None:
        return next((a for a in cls.actions if a.name == name), None)

    @classmethod
    def superseded_in(cls, attrs: dict) -> dict[str, str]:
        """{attribute: why it is irrelevant} for the blueprint attributes `attrs` holds."""
        return {attr: rule.reason for rule in cls.superseded
                if rule.when in attrs and attrs[rule.when] == rule.equals
                for attr in rule.attrs}

    def assigned_groups(self) -> list:
        """Groups this stage puts people in: what the privilege ceiling (portal.access.ceiling)
        weighs before an admin may bind or change it. Derived from the options declared with
        `assigns=True` (most stages have none)."""
        groups = []
        for option in self.declared_options:
            if option.assigns:
                group = option.kind.row(self.options.get(option.key))
                if group is not None and group not in groups:
                    groups.append(group)
        return groups

    @classmethod
    def after_user_created(cls, ctx: FlowContext, user) -> None:
        """Called by the stage that creates the account, for every stage type bound in the flow,
        in the same transaction: a type attaches what it collected before the user existed."""

    def already_done(self, ctx: FlowContext) -> bool:
        """An interactive stage with nothing to ask this time (consent remembered): the executor
        goes past its page without showing it."""
        return False

    def field_keys(self) -> set[str]:
        """Field keys this stage asks for; used to send the invitee back to the right page."""
        return set()
