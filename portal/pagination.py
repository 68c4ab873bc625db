"""Pagination that skips the COUNT when the page itself tells the total."""

from __future__ import annotations

from flask import request
from flask_sqlalchemy.pagination import SelectPagination

from .extensions import db
from .numbers import DB_INT_MAX


class LastPageKnowsTheTotal(SelectPagination):
    """A page with fewer rows than fit is the last one: total = rows before it + rows on it.

    A search with few matches then scans the table once, not twice (page, then COUNT).
    """

    def _query_count(self) -> int:
        shown = len(self.items)
        if 0 < shown < self.per_page or (shown == 0 and self.page == 1):
            return self._query_offset + shown
        return super()._query_count()


def page_number(per_page: int) -> int:
    """?page=, clamped to 1 .. the last page whose OFFSET the database can take."""
    page = request.args.get("page", 1, type=int)
    return max(1, min(page, DB_INT_MAX // per_page))


def paginate(query, *, per_page: int) -> SelectPagination:
    """Like db.paginate (page from ?page=, never a 404 for a page past the end, nor a 500 for a
    page number too big for the database)."""
    return LastPageKnowsTheTotal(select=query, session=db.session(), per_page=per_page,
                                 page=page_number(per_page), error_out=False)


class KeysetPage:
    """A page of a list ordered by a unique, indexed key (the invitations' id), found from the
    key at the edge of the page before or after it: `WHERE id < :after ORDER BY id DESC LIMIT
    n + 1` reads n + 1 index entries however deep the page is, where OFFSET would walk every
    row before it. The extra row only tells whether there is a next page; there is no COUNT
    (at a million rows it alone would cost more than the page)."""

    def __init__(self, query, key, *, per_page: int, after: int | None = None,
                 before: int | None = None, descending: bool = True) -> None:
        backwards = before is not None and after is None
        query = query.order_by(None)
        if after is not None:
            query = query.where(key < after if descending else key > after)
        elif before is not None:
            query = query.where(key > before if descending else key < before)
        newest_first = descending != backwards
        query = query.order_by(key.desc() if newest_first else key.asc()).limit(per_page + 1)
        rows = list(db.session.scalars(query))
        more = len(rows) > per_page
        rows = rows[:per_page]
        if backwards:
            rows.reverse()
        self.items = rows
        self.per_page = per_page
        self.has_next = more if not backwards else True
        self.has_prev = (after is not None) if not backwards else more
        self.next_after = rows[-1].id if rows and self.has_next else None
        self.prev_before = rows[0].id if rows and self.has_prev else None


def keyset_arg(name: str) -> int | None:
    """?after= / ?before=: a key within what the database holds, else None (the first page)."""
    value = request.args.get(name, type=int)
    return value if value is not None and 0 <= value <= DB_INT_MAX else None
