"""Reading authentik blueprint YAML safely: a SafeLoader with authentik's tags, and bounds.

Uploaded YAML is only ever read with this SafeLoader subclass: no tag constructs Python objects
and no code is run. A tiny file cannot explode in memory or time (see BlueprintLoader).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ... import yaml_errors

MAX_BLUEPRINT_BYTES = 256 * 1024  # authentik's largest example is ~10 kB
MAX_ALIASES = 200  # YAML anchors/aliases: enough for real files, too few for a "billion laughs"
MAX_DEPTH = 64  # nested lists and mappings: authentik's examples use under 10; Python's stack, ~300
# The document as every later step sees it, aliases expanded: each value counts one plus the
# length of its text. A file without aliases stays below ~1.5x its bytes, so this never refuses
# a file that fits MAX_BLUEPRINT_BYTES; it stops 200 aliases of aliases (9**9 copies) at once.
MAX_EXPANDED_SIZE = 2 * MAX_BLUEPRINT_BYTES
MAX_FORMAT_WIDTH = 100  # !Format "%10s" pads; "%999999999s" would be a gigabyte of spaces
MAX_FORMAT_RESULT = 10_000  # characters one !Format may produce
MAX_TEXT = 10_000  # characters for a text column without a length (help texts, placeholders)
MAX_JSON = 64 * 1024  # characters of a JSON column (options, attributes, choices), serialised

# -- YAML tags -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyOf:
    """`!KeyOf id`: the object made by the entry with that `id`."""

    ref: str
    line: int = 0


@dataclass(frozen=True)
class Find:
    """`!Find [model, [field, value], ...]`: an existing object looked up by its fields."""

    model: Any
    query: tuple
    line: int = 0


@dataclass(frozen=True)
class Env:
    """`!Env NAME` or `!Env [NAME, default]`."""

    name: Any
    default: Any = None


@dataclass(frozen=True)
class Context:
    """`!Context key` or `!Context [key, default]`: the blueprint's `context:` values."""

    key: Any
    default: Any = None


@dataclass(frozen=True)
class Format:
    """`!Format [format, args...]`: Python %-formatting, as authentik does."""

    template: Any
    args: tuple = ()


@dataclass(frozen=True)
class UnknownTag:
    """Any other tag (`!If`, `!Condition`, ...): kept so the report can name it."""

    tag: str
    line: int = 0


MAX_INT = 2**63 - 1  # the largest integer a database column (or JSON consumer) takes


class _Bound(yaml.constructor.ConstructorError):
    """Valid YAML, refused for its size: the message says which bound, not "not valid YAML"."""

    def __init__(self, problem: str, mark) -> None:
        super().__init__(None, None, problem, mark)


class BlueprintLoader(yaml.SafeLoader):
    """SafeLoader with authentik's tags. A tiny file cannot explode in memory or time: while
    composing, before anything is built, it counts aliases and the document's size with aliases
    expanded (what every later walk over it costs), and bounds nesting so a file of "[[[[..."
    cannot exhaust the stack. Errors point at the alias or value that crossed the bound."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.alias_count = 0
        self.depth = 0
        self.expanded = 0  # see MAX_EXPANDED_SIZE
        self._sizes: dict[int, int] = {}  # expanded size of each finished node, by id
        self._open_anchors: list[str] = []  # anchors of the lists and mappings being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise _Bound(f"more than {MAX_ALIASES} YAML aliases", event.start_mark)
            if event.anchor in self._open_anchors:
                raise _Bound("an alias refers to the list or mapping that contains it",
                             event.start_mark)
            target = self.anchors.get(event.anchor)
            self._grow(_expanded_size(target, self._sizes) if target is not None else 0, event)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise _Bound(f"lists and mappings nested more than {MAX_DEPTH} deep", event.start_mark)
        self._grow(1 + len(getattr(event, "value", None) or ""), event)
        anchor = getattr(event, "anchor", None) if not isinstance(event, yaml.ScalarEvent) else None
        if anchor is not None:
            self._open_anchors.append(anchor)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self._open_anchors.pop()

    def _grow(self, size: int, event) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_SIZE:
            raise _Bound(f"with its aliases expanded, the file is larger than "
                         f"{MAX_EXPANDED_SIZE // 1024} kB", event.start_mark)

    def construct_yaml_int(self, node):
        """Integers fit 64 bits: Python reads at most 4300 digits, and a sexagesimal one
        (59:59:...) is built by arithmetic, past that check, and fails later when written."""
        try:
            value = super().construct_yaml_int(node)
        except ValueError:
            value = None
        if value is None or abs(value) > MAX_INT:
            raise _Bound("a number too large to read", node.start_mark)
        return value


BlueprintLoader.add_constructor("tag:yaml.org,2002:int", BlueprintLoader.construct_yaml_int)


def _expanded_size(node, sizes: dict[int, int]) -> int:
    """A finished node's size with aliases expanded (each value: one plus its text's length).
    An alias is the same node object again, so memoising by id makes measuring a hostile file
    cost no more than reading it."""
    if id(node) not in sizes:
        if isinstance(node, yaml.ScalarNode):
            size = 1 + len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [
                part for pair in node.value for part in pair]
            size = 1 + sum(_expanded_size(child, sizes) for child in children)
        sizes[id(node)] = size
    return sizes[id(node)]


def _line(node) -> int:
    return node.start_mark.line + 1


def _items(loader, node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return [loader.construct_scalar(node)]


def _construct_keyof(loader, node):
    return KeyOf(str(loader.construct_scalar(node)), _line(node))


def _construct_find(loader, node):
    items = _items(loader, node)
    return Find(items[0] if items else None, tuple(tuple(i) if isinstance(i, list) else (i,)
                                                  for i in items[1:]), _line(node))


def _construct_env(loader, node):
    items = _items(loader, node)
    return Env(items[0] if items else None, items[1] if len(items) > 1 else None)


def _construct_context(loader, node):
    items = _items(loader, node)
    return Context(items[0] if items else None, items[1] if len(items) > 1 else None)


def _construct_format(loader, node):
    items = _items(loader, node)
    return Format(items[0] if items else "", tuple(items[1:]))


def _construct_unknown(loader, suffix, node):
    return UnknownTag("!" + suffix, _line(node))


BlueprintLoader.add_constructor("!KeyOf", _construct_keyof)
BlueprintLoader.add_constructor("!Find", _construct_find)
BlueprintLoader.add_constructor("!Env", _construct_env)
BlueprintLoader.add_constructor("!Context", _construct_context)
BlueprintLoader.add_constructor("!Format", _construct_format)
BlueprintLoader.add_multi_constructor("!", _construct_unknown)


class BlueprintDumper(yaml.SafeDumper):
    """Writes `!KeyOf` and `!Find` back as authentik expects them."""


BlueprintDumper.add_representer(KeyOf, lambda dumper, k: dumper.represent_scalar("!KeyOf", k.ref))
BlueprintDumper.add_representer(Find, lambda dumper, f: dumper.represent_sequence(
    "!Find", [f.model, *(list(pair) for pair in f.query)]))


class BlueprintError(Exception):
    """The file cannot be imported; `messages` say where and why."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def parse(text: str) -> dict:
    """The blueprint document, or BlueprintError with the line and reason."""
    if len(text.encode()) > MAX_BLUEPRINT_BYTES:
        raise BlueprintError([f"The file is larger than {MAX_BLUEPRINT_BYTES // 1024} kB."])
    try:
        loader = BlueprintLoader(text)  # the reader refuses control characters up front
    except yaml.YAMLError as exc:
        raise BlueprintError([f"{exc} (the file is not valid YAML)."]) from None
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        why = "the file is refused" if isinstance(exc, _Bound) else "the file is not valid YAML"
        raise BlueprintError([f"{yaml_errors.describe(exc)} ({why})."]) from None
    except RecursionError:
        raise BlueprintError(["The file nests lists or mappings too deeply."]) from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise BlueprintError(["The file is not a blueprint: expected keys version, metadata, entries."])
    problems = []
    if document.get("version") != 1:
        problems.append(f"version: expected 1, found {document.get('version')!r}.")
    if not isinstance(document.get("entries"), list):
        problems.append("entries: missing, or not a list.")
    for key in ("metadata", "context"):
        if document.get(key) is not None and not isinstance(document[key], dict):
            problems.append(f"{key}: expected a mapping.")
    if problems:
        raise BlueprintError(problems)
    return document

