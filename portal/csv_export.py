"""CSV downloads, streamed line by line, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def csv_lines(header: Sequence[str], rows: Iterable[Sequence]) -> Iterable[str]:
    """The header and rows as CSV text, one line per item yielded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row) -> str:
        writer.writerow([defuse("" if cell is None else str(cell)) for cell in row])
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    yield line(header)
    for row in rows:
        yield line(row)


def defuse(cell: str) -> str:
    """Prefix cells a spreadsheet would run as a formula (CSV injection)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
