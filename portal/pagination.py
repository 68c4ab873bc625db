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
