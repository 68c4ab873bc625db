"""Whole numbers from URLs and forms, bounded to what the database can compare.

A bigger number (say ?page=99999999999999999999) would otherwise reach the database driver and
fail there (OverflowError on SQLite, DataError on PostgreSQL): a 500 for a typo.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

DB_INT_MAX = 2**63 - 1  # a signed 64-bit integer: SQLite's INTEGER, PostgreSQL's BIGINT


def db_int(value) -> int:
    """int(value) for ids and counts; ValueError when it is not one the database could hold.

    Use it as `request.args.get(name, type=db_int)` (a bad value then gives the default) and
    as a field's `coerce` (a bad value is then the field's error).
    """
    number = int(value)
    if not 0 <= number <= DB_INT_MAX:
        raise ValueError(f"{value!r} is out of range")
    return number


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` in routes: a number past the database's range matches no rule (a 404)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's signature)
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)
