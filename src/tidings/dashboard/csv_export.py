"""CSV downloads that stream: rows are read a chunk at a time in id order, each chunk in one
short read, so 100,000 rows never sit in memory together and no read holds the store for the
whole download.

Text that came from outside (names, notes, reasons) is kept from being read as a formula by a
spreadsheet: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading `'`. Phone numbers (E.164, `+` and digits) are left as they are: they compute nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from starlette.responses import StreamingResponse

from tidings.storage.db import Database

__all__ = ["CHUNK", "csv_download", "safe_text"]

CHUNK = 1000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"\+?[\d*]+")  # a phone number, masked or not


def safe_text(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _rows(
    db: Database,
    header: Sequence[str],
    read: Callable[[Any, int | None, int], list[Any]],
    row: Callable[[Any], Sequence[object]],
) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    after: int | None = None
    while True:
        with db.read() as conn:
            found = read(conn, after, CHUNK)
        for item in found:
            writer.writerow([safe_text(cell) for cell in row(item)])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(found) < CHUNK:
            return
        after = found[-1].id


def csv_download(
    db: Database,
    filename: str,
    header: Sequence[str],
    read: Callable[[Any, int | None, int], list[Any]],
    row: Callable[[Any], Sequence[object]],
) -> StreamingResponse:
    """A streamed CSV of what `read(conn, after_id, limit)` gives, newest first, one `row` each."""
    return StreamingResponse(
        _rows(db, header, read, row),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
