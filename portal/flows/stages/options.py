"""What a stage type declares about its options, and the kinds of option there are.

A stage type lists its options as `Option`s (key, kind, label, default, help, validation, the
choices its admin form needs). Everything else is derived from that list, so it exists once:
the admin's stage form (portal.admin.stage_forms), the blueprint import and export
(portal.flows.blueprints), the import report (an attribute no option declares is reported as not
used), and the privilege ceiling (`assigns=True` groups are what a stage hands out).

An option kind knows how its value is stored, read from a blueprint attribute (references
already resolved to rows by the importer) and written back (rows, which the exporter turns into
`!KeyOf`/`!Find`). It knows nothing of HTTP or WTForms: the admin builds a field per kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ...extensions import db
from ...models import Flow, Group, OIDCSource, Prompt, Stage


class OptionError(ValueError):
    """A value the option does not accept; the message says why (without the key)."""


DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


def parse_authentik_duration(value, *, allow_zero: bool = False) -> timedelta:
    """authentik's duration text ("weeks=4", "hours=1;minutes=30"; its
    timedelta_string_validator) as a timedelta. OptionError (a ValueError) when unreadable or
    not positive (zero too, with `allow_zero`: user login's "seconds=0", the browser session).
    Every option that holds such a duration reads it here."""
    text = str(value or "").strip() if not isinstance(value, bool) else ""
    parts: dict[str, float] = {}
    for item in text.split(";") if text else []:
        unit, _, amount = item.strip().partition("=")
        unit = unit.strip().lower()
        if unit not in DURATION_UNITS or unit in parts or \
                not re.fullmatch(r"\d{1,9}(\.\d{1,6})?", amount.strip()):
            raise OptionError(f"{text!r} is not a duration such as weeks=4 or hours=1;minutes=30.")
        parts[unit] = float(amount)
    if not parts:
        raise OptionError("expected a duration such as weeks=4 or hours=1;minutes=30.")
    try:
        delta = timedelta(**parts)
    except OverflowError:
        raise OptionError(f"{text!r} is too long a duration.") from None
    if delta < timedelta(0) or (delta == timedelta(0) and not allow_zero):
        raise OptionError("a duration must be longer than zero.")
    return delta


# -- kinds ---------------------------------------------------------------------------------------


class Kind:
    """How one kind of option is stored and travels through a blueprint."""

    name = ""
    model: type | None = None  # the row a reference kind points at (the importer resolves it)

    def read(self, stage, option: Option):
        return (stage.options or {}).get(option.key, option.default)

    def has(self, stage, option: Option) -> bool:
        return option.key in (stage.options or {})

    def stored_in_options(self) -> bool:
        return True

    def parse(self, option: Option, value):
        """A blueprint attribute (tags resolved) as the stored value; OptionError if unfit."""
        return value

    def export(self, option: Option, stored):
        """The stored value as a blueprint attribute (rows stand for references)."""
        return stored


class Bool(Kind):
    name = "bool"

    def parse(self, option, value):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise OptionError(f"expected true or false, found {value!r}.")


class Text(Kind):
    name = "text"

    def parse(self, option, value):
        if value is None:
            return None
        if isinstance(value, (dict, list, bool, db.Model)):
            raise OptionError(f"expected text, found {type(value).__name__}.")
        if isinstance(value, float | int) and not option.accepts_numbers:
            value = str(value)
        if isinstance(value, str) and option.max_length and len(value) > option.max_length:
            raise OptionError(f"longer than {option.max_length} characters.")
        return value


class TextArea(Text):
    name = "textarea"


class EmailAddress(Text):
    name = "email"

    def parse(self, option, value):
        """Only the shape is checked on import: authentik's own examples use addresses such as
        system@authentik.local, which the admin form (email-validator) would refuse to send from."""
        value = super().parse(option, value)
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", str(value).strip()):
            raise OptionError(f"{value!r} is not an email address.")
        return value.strip() if isinstance(value, str) else value


class Choice(Text):
    name = "choice"

    def parse(self, option, value):
        value = super().parse(option, value)
        if value is not None and value not in option.choice_values() and not option.unknown_choice:
            raise OptionError(f"{value!r} is not one of {', '.join(option.choice_values())}.")
        return value


class Choices(Kind):
    """Several of a fixed set (identification's `user_fields`, validate's `device_classes`), as
    a list. A value outside the choices is kept only when the option says so (`unknown_choice`),
    and then reported."""

    name = "choices"

    def parse(self, option, value):
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise OptionError(f"expected a list of {', '.join(option.choice_values())}.")
        unknown = [v for v in value if v not in option.choice_values()]
        if unknown and not option.unknown_choice:
            raise OptionError(f"{unknown[0]!r} is not one of {', '.join(option.choice_values())}.")
        return list(dict.fromkeys(value))


class Reference(Kind):
    """A row referred to by id (a group, a flow); `!KeyOf` or `!Find` in a blueprint."""

    what = ""

    def parse(self, option, value):
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise OptionError(f"expected a reference to {self.what} (!KeyOf or !Find), found "
                              f"{value!r}.")
        return value.id

    def export(self, option, stored):
        return self.row(stored)

    def row(self, reference):
        """The row a stored value names: its id (or, from hand-written options, its name)."""
        if reference in (None, ""):
            return None
        if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
            return db.session.get(self.model, int(reference))
        return db.session.scalar(select(self.model).filter_by(**{self.by_name: str(reference)}))

    by_name = "name"


class GroupRef(Reference):
    name, model, what = "group", Group, "a group"


class FlowRef(Reference):
    name, model, what, by_name = "flow", Flow, "a flow", "slug"


class StageRef(Reference):
    """Another stage, by id (the identification stage's inline password stage)."""

    name, model, what = "stage", Stage, "a stage"


class StageRefs(Kind):
    """Other stages, by id, in order (authentik's configuration_stages): a list of `!KeyOf` or
    `!Find` in a blueprint; the exporter writes the stages they name too."""

    name, model = "stages", Stage

    def parse(self, option, value):
        value = value or []
        if not isinstance(value, list) or not all(isinstance(s, Stage) for s in value):
            raise OptionError("expected a list of stages (!KeyOf or !Find).")
        return [s.id for s in dict.fromkeys(value)]

    def export(self, option, stored):
        return self.rows(stored)

    def rows(self, stored) -> list:
        """The stages a stored list names, in its order (ones deleted since are left out)."""
        ids = [int(i) for i in stored or [] if str(i).isdigit()]
        found = {s.id: s for s in db.session.scalars(select(Stage).where(Stage.id.in_(ids)))} \
            if ids else {}
        return [found[i] for i in ids if i in found]


class SourceRefs(StageRefs):
    """SSO sources, by id, in order (the identification stage's `sources`): `!Find
    [authentik_sources_oauth.oauthsource, [slug, ...]]` in a blueprint (a source's credentials
    never travel in one, so the exporter refers to it by slug)."""

    name, model = "sources", OIDCSource

    def parse(self, option, value):
        value = value or []
        if not isinstance(value, list) or not all(isinstance(s, OIDCSource) for s in value):
            raise OptionError("expected a list of sources (!Find by slug).")
        return [s.id for s in dict.fromkeys(value)]

    def rows(self, stored) -> list:
        ids = [int(i) for i in stored or [] if str(i).isdigit()]
        found = {s.id: s for s in db.session.scalars(
            select(OIDCSource).where(OIDCSource.id.in_(ids)))} if ids else {}
        return [found[i] for i in ids if i in found]


class SourceRef(Reference):
    """One SSO source, by id (the source stage's `source`)."""

    name, model, what, by_name = "source", OIDCSource, "a source", "slug"


class Prompts(Kind):
    """The prompt stage's fields: stored as the stage's prompts (an ordered relationship)."""

    name, model, relation = "prompts", Prompt, "prompts"

    def stored_in_options(self) -> bool:
        return False

    def read(self, stage, option):
        return [p.id for p in stage.prompts]

    def has(self, stage, option) -> bool:
        return True

    def parse(self, option, value):
        value = value or []
        if not isinstance(value, list) or not all(isinstance(p, Prompt) for p in value):
            raise OptionError("expected a list of prompts (!KeyOf or !Find).")
        return list(dict.fromkeys(value))

    def export(self, option, stored):
        return list(db.session.scalars(select(Prompt).where(Prompt.id.in_(stored or [])))
                    .all()) if stored else []

    def write(self, stage, value) -> None:
        """Rows (from a blueprint) or ids (from the admin form), in the prompts' own order."""
        if value and not isinstance(value[0], Prompt):
            value = list(db.session.scalars(select(Prompt).where(Prompt.id.in_(value))))
        stage.prompts = list(value or [])


BOOL, TEXT, TEXTAREA, EMAIL, CHOICE = Bool(), Text(), TextArea(), EmailAddress(), Choice()
CHOICES = Choices()
GROUP, FLOW, STAGE, PROMPTS, STAGES = GroupRef(), FlowRef(), StageRef(), Prompts(), StageRefs()
SOURCES, SOURCE = SourceRefs(), SourceRef()


# -- the declaration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option of a stage type. `attr` is authentik's attribute name when it differs."""

    key: str
    kind: Kind
    label: str = ""
    default: Any = None
    help: str = ""
    required: bool = False
    max_length: int | None = None
    # Raises OptionError (or ValueError) for a value the stage cannot use: the admin form and
    # the importer both call it, so the rule has one home.
    validate: Callable[[Any], None] | None = None
    # (value, label) pairs, or a callable given the admin form's needs (see admin.stage_forms).
    choices: Sequence[tuple[Any, str]] | Callable[[Any], Sequence[tuple[Any, str]]] | None = None
    admin: bool = True  # False: not on the admin form (its default is stored when missing)
    attr: str | None = None
    assigns: bool = False  # a group kind: the stage puts the people it serves in this group
    # A choice outside `choices` is kept, and the import report says this (else it is refused).
    unknown_choice: str | None = None
    # A value that is valid but not (yet) acted on: the import report says this.
    note: Callable[[Any], str | None] | None = None
    rows: int = 4  # textarea height
    # The stored value as the admin form shows it (e.g. older authentik minutes as minutes=30).
    shown_as: Callable[[Any], Any] | None = None
    accepts_numbers: bool = False  # text that may also be a number (authentik's token_expiry)

    @property
    def blueprint_attr(self) -> str:
        return self.attr or self.key

    def choice_values(self) -> list:
        return [value for value, _ in self.choices] if isinstance(self.choices, Sequence) else []

    def from_blueprint(self, value) -> tuple[Any, list[str]]:
        """The stored value and the report's notes; OptionError naming nothing but the problem."""
        stored = self.kind.parse(self, value)
        notes = []
        if stored is not None and self.validate is not None and not isinstance(stored, list):
            self.validate(stored)
        if isinstance(self.kind, Choice) and stored is not None and \
                stored not in self.choice_values():
            notes.append(f"{self.blueprint_attr}: {stored!r} {self.unknown_choice}")
        if isinstance(self.kind, Choices) and stored is not None:
            notes.extend(f"{self.blueprint_attr}: {value!r} {self.unknown_choice}"
                         for value in stored if value not in self.choice_values())
        if self.note is not None and stored is not None and (text := self.note(stored)):
            notes.append(f"{self.blueprint_attr}: {text}")
        return stored, notes


def option_values(stage_type, stage) -> dict:
    """A stage's declared options as stored (the prompt stage's fields as prompt ids)."""
    return {o.key: o.kind.read(stage, o) for o in stage_type.declared_options
            if o.kind.has(stage, o)}
