"""Attributes an admin types or uploads (an invitation's form, a bulk CSV column): YAML or JSON.

One parser for every place that takes them, so one set of bounds holds everywhere. Plain YAML
expands anchors and aliases without limit: `&a [*b, *b, ...]` nested a few levels is a few hundred
bytes that become gigabytes in memory. Attributes are small flat values, so anchors and aliases
are refused outright (not counted), and the text, its nesting and its number of values are capped.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime

import yaml

from .. import yaml_errors

MAX_CHARS = 64 * 1024  # an invitation's fixed data is a handful of keys; this is generous
MAX_DEPTH = 20  # nested mappings and lists
MAX_VALUES = 5000  # scalars, mappings and lists together
MAX_INT = 2**63 - 1  # what every consumer of the JSON (a database's bigint, a script) can hold


class _AttributesLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and bounds nesting and size while composing,
    before anything is built."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, "YAML anchors and aliases (&name, *name) are not "
                                             "allowed here; write each value out")
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise _Refused(event.start_mark, f"more than {MAX_VALUES} values")
        if self.depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


    def construct_yaml_int(self, node):
        try:
            value = super().construct_yaml_int(node)
        except ValueError:  # Python reads at most 4300 digits
            value = None
        if value is None or abs(value) > MAX_INT:
            raise _Refused(node.start_mark, f"numbers are limited to {len(str(MAX_INT))} digits")
        return value


_AttributesLoader.add_constructor("tag:yaml.org,2002:int", _AttributesLoader.construct_yaml_int)


class _Refused(yaml.YAMLError):
    def __init__(self, mark, problem: str) -> None:
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


def parse_attributes(text: str) -> dict:
    """A YAML or JSON object as a JSON-safe dict; ValueError with line and reason otherwise."""
    if not text or not text.strip():
        return {}
    if len(text) > MAX_CHARS:
        raise ValueError(f"Attributes are limited to {MAX_CHARS // 1024} kB of text.")
    loader = _AttributesLoader(text)
    try:
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ValueError(f"{yaml_errors.describe(exc)}. Write a YAML or JSON object.") from None
    finally:
        loader.dispose()
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(
            f"Attributes must be an object of key: value pairs, not a {type(value).__name__}."
        )
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"Every key must be text; {bad_keys[0]!r} is not.")
    problem = storable_problem(value)
    if problem:
        raise ValueError(problem)
    return json.loads(json.dumps(value, default=_jsonable))


def storable_problem(value, where: str = "") -> str | None:
    """Why this parsed value cannot be kept as JSON text everywhere, or None: infinities and
    NaN are not JSON (PostgreSQL refuses them), NUL and lone surrogates (written as YAML
    escapes, so past the NUL check on forms) cannot be stored or shown."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'A value'}: numbers must be finite (not .inf or .nan)."
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where or 'A value'}: text may not contain NUL characters."
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where or 'A value'}: text contains a character that is not valid Unicode."
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        label = f"{where}.{key}" if where else str(key)
        problem = (storable_problem(key, f"The key {label!r}") if isinstance(key, str) else None) \
            or storable_problem(item, label)
        if problem:
            return problem
    return None


def _jsonable(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise ValueError(f"{value!r} cannot be stored as an attribute")
