"""Parsing a file at the speed of its read: per-column cell parsers, the parsed pages preview keeps for apply, and
pages produced ahead of the writer.

`column_parser(kind, order)` returns a function of one non-blank cell (stripped text from a CSV, or a native
Excel value) that returns exactly what the matching `values.py` parser returns and raises exactly its
`ValueError`; it never returns None for a non-blank cell. It is cheap on a million rows because
- the common shapes (`$12,500.00`, `12500.00`, `3/15/2026`, `2026-03-15`, `3/15/2026 10:22`, `40%`) are read
  by one precompiled regex and a constructor (a shortcut that does not apply leaves the cell, errors included,
  to `values.py`, unchanged);
- repeated cell text (dates, percentages, flags, currencies) is answered from a small per-column memo that
  lives as long as the parser: one file's transform, never across files or imports.
It must never accept or reject a value differently from `values.py` (tests/test_import_fastpaths.py compares).

`ParsedPages` keeps preview's parsed pages beside the batch's stored file, already serialised for the upsert
(`prepare_rows`: COPY lines and digests), keyed by everything the rows depend on (the transform's signature,
the table's columns, the file's sha256, the format, this code), so apply neither parses nor serialises the file
again and spends its time in the server's COPY; it must never hand apply lines a fresh parse would not produce:
on any doubt apply parses again. `Prefetch` produces the
next pages in a worker thread while the caller writes; `BulkGcPause` keeps the cyclic collector out of the loop.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import json
import marshal
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.file_import import values as V

MEMO_SIZE = 4096  # distinct cell texts remembered per column; later new texts are parsed, not remembered
_MISSING = object()

# ASCII digits only ([0-9], not \d): other digits are rare enough to leave to the general readers.
_USD = re.compile(r"\$([1-9][0-9]{0,2}(?:,[0-9]{3})*|0)\.([0-9][0-9])")  # $12,500.00 (leading 0 only as $0.xx)
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")  # 12500, 12500.5, 12500.00 (3 decimals are thousands)
_US_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_US_DATETIME = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9][0-9])(?::([0-9][0-9]))?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9][0-9]-[0-9][0-9]")
_WHOLE_PERCENT = re.compile(r"([0-9]{1,3})%")

Parser = Callable[[Any], Any]
Page = tuple[list[dict[str, Any]], list[tuple[int, str | None, str]], int]  # good rows, first errors, rows skipped
# A page as kept for apply: the good rows as `core.db.upsert.prepare_rows` serialised them (its cols, lines and
# digests), then the page's first errors and rows skipped.
KeptPage = tuple[list[str], dict[tuple[str, str], str], dict[tuple[str, str], str], list[tuple[int, str | None, str]], int]


def _fast_amount(text: str) -> tuple[Decimal, str | None] | None:
    if (m := _USD.fullmatch(text)) is not None:
        return Decimal(f"{m.group(1).replace(',', '')}.{m.group(2)}"), "USD"
    if _PLAIN_AMOUNT.fullmatch(text):
        return Decimal(text), None
    return None


def _day(a: str, b: str, year: str, order: str) -> date:
    """`values._date_part` for a/b/yyyy (a four-digit year is never read year-first)."""
    month, day = (int(a), int(b)) if order != "dmy" else (int(b), int(a))
    if month > 12 >= day:  # only one reading makes sense: take it
        month, day = day, month
    return date(int(year), month, day)


def _fast_date(text: str, order: str) -> date | None:
    try:
        if (m := _US_DATE.fullmatch(text)) is not None:
            return _day(m.group(1), m.group(2), m.group(3), order)
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:  # 2/30/2026: the general reader words the error
        return None
    return None


def _fast_datetime(text: str, order: str) -> datetime | None:
    try:
        if (m := _US_DATETIME.fullmatch(text)) is not None:
            a, b, year, hour, minute, second = m.groups()
            clock = time(int(hour), int(minute), int(second or 0))
            return datetime.combine(_day(a, b, year, order), clock, timezone.utc)
        if (m := _US_DATE.fullmatch(text)) is not None:
            return datetime.combine(_day(m.group(1), m.group(2), m.group(3), order), time(), timezone.utc)
        if _ISO_DATE.fullmatch(text):
            return datetime.combine(date.fromisoformat(text), time(), timezone.utc)
    except ValueError:
        return None
    return None


def _fast_percent(text: str) -> Decimal | None:
    if (m := _WHOLE_PERCENT.fullmatch(text)) is not None and (n := int(m.group(1))) <= 100:
        return Decimal(n)
    return None


def _amount(cell: Any) -> tuple[Decimal, str | None] | None:
    """parse_amount as the transform uses it: None for no amount, else (amount, currency code or None)."""
    if cell.__class__ is str and (fast := _fast_amount(cell)) is not None:
        return fast
    amount, code = V.parse_amount(cell)
    return None if amount is None else (amount, code)


def _with_fast_path(fast: Callable[[str], Any], general: Parser) -> Parser:
    def parse(cell: Any) -> Any:
        if cell.__class__ is str and (value := fast(cell)) is not None:
            return value
        return general(cell)
    return parse


def _memoized(parse: Parser) -> Parser:
    """Remember the result per distinct text (values are immutable: Decimal, date, tuples); errors are not kept."""
    memo: dict[str, Any] = {}

    def parsed(cell: Any) -> Any:
        if cell.__class__ is not str:
            return parse(cell)
        value = memo.get(cell, _MISSING)
        if value is _MISSING:
            value = parse(cell)
            if len(memo) < MEMO_SIZE:
                memo[cell] = value
        return value
    return parsed


def column_parser(kind: str, order: str = "mdy") -> Parser | None:
    """A parser for one column of `kind` (a `mapping.FIELDS` type), or None for text kinds (the cell is the value)."""
    if kind == "amount":
        return _memoized(_amount)
    if kind == "date":
        return _memoized(_with_fast_path(lambda t: _fast_date(t, order), lambda c: V.parse_date(c, order)))
    if kind == "datetime":
        return _memoized(_with_fast_path(lambda t: _fast_datetime(t, order), lambda c: V.parse_datetime(c, order)))
    if kind == "percent":
        return _memoized(_with_fast_path(_fast_percent, V.parse_percent))
    general = {"email": V.parse_email, "domain": V.parse_domain, "bool": V.parse_bool, "int": V.parse_int}.get(kind)
    return None if general is None else _memoized(general)


# --- the parsed pages preview keeps for apply --------------------------------------------------------------------

_PAGES_FORMAT = 2  # bump when the stored form changes (changes to the parsing code are noticed by themselves)


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of the code a parsed row depends on: pages kept by another version of it are parsed again."""
    from connectors.file_import import mapping, transform
    from core import stages

    digest = hashlib.sha256()
    from core.db import upsert

    for module in (sys.modules[__name__], V, mapping, transform, stages, upsert):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


class ParsedPages:
    """The pages of one batch's parsed rows, in `directory` (the batch's own folder, beside the stored file):
    `.parsed-pages` holds length-prefixed marshal pages; `.parsed-pages.key`, written last, holds the key, the
    stage guesses and the pages' size (so a truncated file is never trusted). marshal rather than pickle: the
    pages are plain values, they load faster, and loading them runs no code."""

    FILES = (".parsed-pages", ".parsed-pages.key")

    def __init__(self, directory: Path, stored_name: str):
        self.directory = directory
        self._data, self._key = (directory / name for name in self.FILES)
        self._out = None
        self._off = stored_name in self.FILES  # the uploaded file itself has one of our names: keep no pages

    @staticmethod
    def key(signature: dict[str, Any], file_sha256: str, chunk: int) -> str:
        """The pages' key: the transform's `signature()`, the file's sha256, the page size and the format."""
        ident = {"format": _PAGES_FORMAT, "code": _code_digest(), "python": list(sys.version_info[:2]),
                 "marshal": marshal.version, "chunk": chunk, "file_sha256": file_sha256, "transform": signature}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()

    # --- preview: write -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start writing pages."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._off:
            try:
                self._out = self._data.open("wb")
            except OSError:  # no room for the pages: apply will parse the file again
                self._out = None

    @property
    def keeping(self) -> bool:
        """Pages are being kept (none after `discard`, a full disk, or with pages switched off)."""
        return self._out is not None

    def add(self, page: KeptPage) -> None:
        """Keep one serialised page."""
        if self._out is None:
            return
        try:
            blob = marshal.dumps(page)
            self._out.write(len(blob).to_bytes(8, "little"))
            self._out.write(blob)
        except (ValueError, OSError):  # a value marshal cannot hold, a full disk: keep no pages, apply parses
            self.discard()

    def seal(self, key: str, guesses: list[tuple]) -> None:
        """Mark the pages complete under `key`, with the transform's stage guesses (as plain tuples)."""
        if self._out is None:
            return
        try:
            self._out.close()
            self._out = None
            self._key.write_bytes(marshal.dumps((_PAGES_FORMAT, key, guesses, self._data.stat().st_size)))
        except (ValueError, OSError):
            self.discard()

    def discard(self) -> None:
        """Keep no pages (preview failed, or apply is done with them)."""
        out, self._out = self._out, None
        if self._off:
            return
        try:
            if out is not None:
                out.close()
        finally:
            self._key.unlink(missing_ok=True)
            self._data.unlink(missing_ok=True)

    # --- apply: read --------------------------------------------------------------------------------------------
    def load(self, key: str) -> tuple[Iterator[KeptPage], list[tuple]] | None:
        """(pages, stage guesses as sealed) if complete pages with this key are here, else None."""
        if self._off:
            return None
        try:
            fmt, stored_key, guesses, size = marshal.loads(self._key.read_bytes())
            if fmt != _PAGES_FORMAT or stored_key != key or self._data.stat().st_size != size:
                return None
        except Exception:  # missing, damaged or foreign: parse the file again
            return None
        return self._pages(), guesses

    def _pages(self) -> Iterator[KeptPage]:
        with self._data.open("rb") as f:
            while header := f.read(8):
                yield marshal.loads(f.read(int.from_bytes(header, "little")))


# --- producing pages ahead of the writer ----------------------------------------------------------------------

class Prefetch:
    """Pages produced in a worker thread, at most `depth` ahead, while the caller writes the previous ones: the
    server loads page n while this process reads and serialises page n + 1. The worker never touches a database
    connection. A worker error is raised in the caller's thread; leaving the block early stops the worker."""

    def __init__(self, pages: Iterator[Any], depth: int = 2):
        self._pages, self._queue, self._stop = pages, queue.Queue(maxsize=depth), threading.Event()
        self._thread = threading.Thread(target=self._work, name="import-pages", daemon=True)

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for page in self._pages:
                if not self._put(("page", page)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._put(("error", exc))

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._drain()

    def _drain(self) -> Iterator[Any]:
        while True:
            kind, item = self._queue.get()
            if kind == "error":
                raise item
            if kind == "done":
                return
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class BulkGcPause:
    """Pause the cyclic garbage collector while pages of rows are built and dropped: every page's fresh dicts
    would otherwise trigger full collections that walk every object of the process (about a second per 100k
    rows). Reference counting still frees the rows; the collector runs again when the last pause ends. Nested
    and concurrent pauses (two imports in two threads) are counted, and a collector that was off stays off."""

    _lock = threading.Lock()
    _depth = 0
    _resume = False

    def __enter__(self) -> None:
        with BulkGcPause._lock:
            if BulkGcPause._depth == 0:
                BulkGcPause._resume = gc.isenabled()
                gc.disable()
            BulkGcPause._depth += 1

    def __exit__(self, *exc: object) -> None:
        with BulkGcPause._lock:
            BulkGcPause._depth -= 1
            if BulkGcPause._depth == 0 and BulkGcPause._resume:
                gc.enable()
