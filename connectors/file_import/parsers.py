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

`ParsedPages` keeps preview's parsed pages beside the batch's stored file, keyed by everything the rows depend on
(the transform's signature, the file's sha256, the format), so apply does not parse the file again; it must
never hand apply rows a fresh parse would not produce: on any doubt apply parses again. `ForkedPages` reads and
serialises the next pages in a forked child process while the caller writes; `BulkGcPause` keeps the cyclic collector out of the loop.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import json
import marshal
import os
import pickle
import re
import signal
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


def _write_page(path: Path, page: Page, serialise: Callable[[list[dict[str, Any]]], tuple]) -> int:
    """Write one page, serialised (`serialise(good rows)` → (cols, lines, digests)), to its part file: 0 when
    written, 1 when the rows cannot be serialised (apply will say why) or the disk is full."""
    good, errors, skipped = page
    try:
        blob = marshal.dumps((*serialise(good), errors, skipped))
        with path.open("wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
    except Exception:
        return 1
    return 0


MAX_WRITERS = 2


class ParsedPages:
    """The pages of one batch's parsed rows, in `directory` (the batch's own folder, beside the stored file):
    `.parsed-pages` holds length-prefixed marshal pages, each (cols, COPY lines, digests, errors, rows skipped):
    the good rows already serialised for `upsert_rows` (`core.db.upsert.prepare_rows`); `.parsed-pages.key`,
    written last, holds the key, the stage guesses and the pages' size (so a truncated file is never trusted).
    marshal rather than pickle: the pages are plain values, they load faster, and loading them runs no code.

    Each page is serialised and written by a forked child (`os._exit` when done), so that work runs on the other
    core while preview parses the next page, and apply has nothing left to do but send the lines; the child has
    its own copy of the page (copy-on-write) and writes its own part file, which `seal` joins in page order; a
    child that fails (rows that cannot be serialised, a full disk) means no pages are kept: apply parses the
    file again."""

    FILES = (".parsed-pages", ".parsed-pages.key")

    def __init__(self, directory: Path, stored_name: str):
        self.directory = directory
        self._data, self._key = (directory / name for name in self.FILES)
        self._keeping = False
        self._children: list[tuple[int, Path]] = []  # (pid, part file) in page order, not yet reaped
        self._parts: list[Path] = []                   # part files written, in page order
        self._serialise: Callable[[list[dict[str, Any]]], tuple] = lambda rows: ()
        # the uploaded file itself is named like our files: keep no pages
        self._off = stored_name.startswith(self.FILES[0])

    @staticmethod
    def key(signature: dict[str, Any], file_sha256: str, chunk: int) -> str:
        """The pages' key: the transform's `signature()`, the file's sha256, the page size and the format."""
        ident = {"format": _PAGES_FORMAT, "code": _code_digest(), "python": list(sys.version_info[:2]),
                 "marshal": marshal.version, "chunk": chunk, "file_sha256": file_sha256, "transform": signature}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()

    # --- preview: write -----------------------------------------------------------------------------------------
    def start(self, serialise: Callable[[list[dict[str, Any]]], tuple]) -> None:
        """Start writing pages, each page's good rows as `serialise` turns them into (cols, lines, digests)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._serialise = serialise
        self._keeping = not self._off

    def add(self, page: Page) -> None:
        """Keep one page, serialised and written to its own part file by a child process (two at most at once:
        they take turns on the core preview's parsing leaves free)."""
        if not self._keeping:
            return
        while len(self._children) >= MAX_WRITERS:
            if not self._reap_oldest():
                return
        part = self.directory / f"{self.FILES[0]}.{len(self._parts)}"
        self._parts.append(part)
        try:
            pid = _fork(lambda: _write_page(part, page, self._serialise))
        except OSError:  # no process to spare: write it here
            if _write_page(part, page, self._serialise) != 0:
                self.discard()
            return
        self._children.append((pid, part))

    def _reap_oldest(self) -> bool:
        """Wait for the oldest child; False (and no pages kept) if it failed."""
        pid, _ = self._children.pop(0)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            self.discard()
            return False
        return True

    def seal(self, key: str, guesses: list[tuple]) -> None:
        """Join the parts in page order and mark the pages complete under `key`, with the transform's stage
        guesses (as plain tuples)."""
        while self._children:
            if not self._reap_oldest():
                return
        if not self._keeping:
            return
        try:
            with self._data.open("wb") as out:
                for part in self._parts:
                    with part.open("rb") as f:
                        size, sent = os.fstat(f.fileno()).st_size, 0
                        while sent < size:  # in the kernel: the pages never pass through this process
                            sent += os.sendfile(out.fileno(), f.fileno(), sent, size - sent)
                    part.unlink()
            self._parts = []
            self._key.write_bytes(marshal.dumps((_PAGES_FORMAT, key, guesses, self._data.stat().st_size)))
            self._keeping = False
        except (ValueError, OSError):
            self.discard()

    def discard(self) -> None:
        """Keep no pages (preview failed, or apply is done with them)."""
        self._keeping = False
        for pid, _ in self._children:
            _stop(pid)
        self._children = []
        if self._off:
            return
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._parts = []
        self._key.unlink(missing_ok=True)
        self._data.unlink(missing_ok=True)

    # --- apply: read --------------------------------------------------------------------------------------------
    def load(self, key: str) -> tuple[Iterator[tuple], list[tuple]] | None:
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

    def _pages(self) -> Iterator[tuple]:
        with self._data.open("rb") as f:
            while header := f.read(8):
                yield marshal.loads(f.read(int.from_bytes(header, "little")))


# --- producing pages ahead of the writer ----------------------------------------------------------------------

def _fork(work: Callable[[], int]) -> int:
    """Run `work` in a forked child, which leaves with work's return code (1 if it raised) through `os._exit`,
    so nothing of this process (connections, pools, atexit hooks) is closed or flushed twice; the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    return pid


def _stop(pid: int) -> None:
    """Kill a child if it is still running, and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


class ForkedPages:
    """Pages produced by a forked child process while this one writes the previous ones: the server loads page
    n while the child reads and serialises page n + 1 on the other core. (A worker thread could not do this:
    serialising is pure Python and holds the GIL, so the writer waited on it instead of feeding the server.)

    `produce()` runs in the child only, from the memory the fork copied (the batch's transform, its kept pages
    or its stored file); it must yield marshal-able values and never touch a database connection. They come
    back through a pipe, whose small buffer keeps the child about one page ahead. The child ends with
    `os._exit`, so nothing of this process (connections, pools, atexit hooks) is closed or flushed twice. An
    error in the child is raised here: a PandoraError as itself, anything else as its pickle (or a
    RuntimeError naming it). Leaving the block early kills the child; it is always reaped."""

    def __init__(self, produce: Callable[[], Iterator[Any]]):
        self._produce = produce
        self._pid = 0
        self._in: Any = None

    def __enter__(self) -> Iterator[Any]:
        r, w = os.pipe()

        def child() -> int:  # produce and report
            os.close(r)
            with os.fdopen(w, "wb", buffering=1 << 16) as out:
                return _child_produce(self._produce, out)

        pid = _fork(child)
        os.close(w)
        self._pid, self._in = pid, os.fdopen(r, "rb", buffering=1 << 16)
        return self._drain()

    def _drain(self) -> Iterator[Any]:
        while True:
            header = self._in.read(8)
            if len(header) < 8:
                raise RuntimeError("the import's page worker ended without a word (killed or out of memory?)")
            kind, item = marshal.loads(self._in.read(int.from_bytes(header, "little")))
            if kind == "error":
                raise _rebuilt(item)
            if kind == "done":
                return
            yield item

    def __exit__(self, *exc: object) -> None:
        self._in.close()  # a child still writing gets EPIPE and leaves
        _stop(self._pid)


def _child_produce(produce: Callable[[], Iterator[Any]], out: Any) -> int:
    def send(message: tuple[str, Any]) -> None:
        blob = marshal.dumps(message)
        out.write(len(blob).to_bytes(8, "little"))
        out.write(blob)

    try:
        for item in produce():
            send(("page", item))
        send(("done", None))
        return 0
    except BrokenPipeError:  # the parent stopped reading
        return 1
    except BaseException as exc:
        send(("error", _described(exc)))
        return 1


def _described(exc: BaseException) -> tuple:
    from core.errors import PandoraError

    if isinstance(exc, PandoraError):
        return ("pandora", type(exc).__module__, type(exc).__qualname__, exc.message, exc.details)
    try:
        return ("pickle", pickle.dumps(exc))
    except Exception:
        return ("text", f"{type(exc).__name__}: {exc}")


def _rebuilt(described: tuple) -> BaseException:
    kind = described[0]
    if kind == "pandora":
        _, module, name, message, details = described
        cls = getattr(importlib.import_module(module), name)
        try:
            return cls(message, **details)
        except TypeError:
            return cls(message)
    if kind == "pickle":
        try:
            return pickle.loads(described[1])
        except Exception:
            pass
    return RuntimeError(described[-1] if kind == "text" else "the import's page worker failed")


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
