"""How a YAML error reads wherever people type or upload YAML (blueprints, invitation
attributes): where it is, then what is wrong."""

from __future__ import annotations

import yaml


def describe(exc: yaml.YAMLError) -> str:
    """"Line N, column M: <problem>" (1-based, as editors count), or just the problem when the
    error has no position."""
    mark = getattr(exc, "problem_mark", None)
    where = f"Line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}{getattr(exc, 'problem', None) or exc}"
