"""Pagination that skips the COUNT when the page itself tells the total."""

from __future__ import annotations

from flask import request
from flask_sqlalchemy.pagination import SelectPagination

from .extensions import db


class LastPageKnowsTheTotal(SelectPagination):
    """A page with fewer rows than fit is the last one: total = rows before it + rows on it.

    A search with few matches then scans the table once, not twice (page, then COUNT).
    """

    def _query_count(self) -> int:
        shown = len(self.items)
        if 0 < shown < self.per_page or (shown == 0 and self.page == 1):
            return self._query_offset + shown
        return super()._query_count()


def paginate(query, *, per_page: int) -> SelectPagination:
    """Like db.paginate (page from ?page=, never a 404 for a page past the end)."""
    return LastPageKnowsTheTotal(select=query, session=db.session(), per_page=per_page,
                                 page=request.args.get("page", 1, type=int), error_out=False)
