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

`ParsedPages` keeps preview's parsed pages, serialised, beside the batch's stored file, keyed by everything the rows
depend on (the transform's signature, the table's columns, the file's sha256, the format), so apply does not parse
the file again; it must never hand apply rows a fresh parse would not produce: on any doubt apply parses again.
`ForkedMap` works on pages in two forked worker processes (preview parses and serialises pages on both cores;
apply, without kept pages, the same while the server loads the page before); `BulkGcPause` keeps the cyclic
collector out of the loop.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import itertools
import json
import marshal
import os
import pickle
import re
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from time import monotonic
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

_PAGES_FORMAT = 4  # bump when the stored form changes (changes to the parsing code are noticed by themselves)


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


class DamagedPages(Exception):
    """A kept page that cannot be read back (cut short or overwritten)."""


class ParsedPages:
    """The pages of one batch's parsed rows, in `directory` (the batch's own folder, beside the stored file),
    already serialised for the upsert: each page (cols, COPY lines, digests) as `core.db.upsert.prepare_rows`
    made them, with the page's errors and rows skipped.

    Preview's page workers each `keep` their page in its own part file (`.parsed-pages.N`, marshal); `seal`
    joins the parts in page order into `.parsed-pages` and writes `.parsed-pages.key` last: the key, the stage
    guesses and where each page starts and ends with its digest (so a truncated or altered file is never
    trusted: apply parses again from the first page that does not read back as written). Apply then `read`s the
    pages and has nothing left to do but send them: the server's COPY is apply's critical path and keeps one
    core busy, so everything else is done in preview, on both. marshal rather than pickle: the pages are plain
    values, they load fast, and loading them runs no code. A page that cannot be kept (a full disk, rows
    `upsert_rows` would refuse) means no pages are kept (`forget`): apply parses the file again."""

    FILES = (".parsed-pages", ".parsed-pages.key")

    def __init__(self, directory: Path, stored_name: str):
        self.directory = directory
        self._data, self._key = (directory / name for name in self.FILES)
        self._keeping = False
        self._count = 0  # pages kept so far (their parts are numbered 0 … count - 1)
        self._digests: dict[int, str] = {}  # page number -> digest of its part, as its worker wrote it
        # the uploaded file itself is named like our files: keep no pages
        self._off = stored_name.startswith(self.FILES[0])

    @staticmethod
    def key(signature: dict[str, Any], file_sha256: str, chunk: int) -> str:
        """The pages' key: the transform's `signature()`, the file's sha256, the page size and the format."""
        ident = {"format": _PAGES_FORMAT, "code": _code_digest(), "python": list(sys.version_info[:2]),
                 "chunk": chunk, "file_sha256": file_sha256, "transform": signature}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()

    # --- preview: write -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start keeping pages."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keeping = not self._off

    def keep(self, number: int, page: Callable[[], tuple]) -> str | None:
        """Write page `number`, as `page()` serialises it, to its part file (in a page worker): the digest of
        what was written ("" when no pages are kept), None if it could not be serialised or written."""
        if not self._keeping:
            return ""
        try:
            blob = marshal.dumps(page())
            with self._part(number).open("wb") as f:
                f.write(blob)
        except Exception:
            return None
        return hashlib.blake2b(blob, digest_size=16).hexdigest()

    def kept(self, number: int, digest: str | None) -> None:
        """Note (in preview) what `keep` gave for page `number`: None (not written) means keep no pages."""
        if digest is None:
            self.forget()
        self._digests[number] = digest or ""
        self._count = max(self._count, number + 1)

    def forget(self) -> None:
        """Keep no pages from now on (one could not be kept, or was parsed again here): `seal` removes the parts."""
        self._keeping = False

    def _part(self, number: int) -> Path:
        return self.directory / f"{self.FILES[0]}.{number}"

    def seal(self, key: str, guesses: list[tuple]) -> None:
        """Join the parts in page order and mark the pages complete under `key`, with the transform's stage
        guesses (as plain tuples); or, if pages are not kept, remove the parts. Every page child is done by now."""
        parts = [self._part(n) for n in range(self._count)]
        try:
            if self._keeping:
                spans, start = [], 0
                with self._data.open("wb") as out:
                    for part in parts:
                        with part.open("rb") as f:
                            size, sent = os.fstat(f.fileno()).st_size, 0
                            while sent < size:  # in the kernel: the pages never pass through this process
                                sent += os.sendfile(out.fileno(), f.fileno(), sent, size - sent)
                        spans.append((start, size, self._digests.get(len(spans), "")))
                        start += size
                self._key.write_bytes(marshal.dumps((_PAGES_FORMAT, key, guesses, spans)))
        except (ValueError, OSError):
            self.discard()
        finally:
            self._keeping = False
            if not self._off:
                for part in parts:
                    part.unlink(missing_ok=True)

    def discard(self) -> None:
        """Keep no pages (preview failed, or apply is done with them)."""
        self._keeping = False
        if self._off:
            return
        for number in range(self._count):
            self._part(number).unlink(missing_ok=True)
        self._key.unlink(missing_ok=True)
        self._data.unlink(missing_ok=True)

    # --- apply: read --------------------------------------------------------------------------------------------
    def load(self, key: str) -> tuple[list[tuple[int, int, str]], list[tuple]] | None:
        """(each page's (offset, size, digest), stage guesses as sealed) if complete pages with this key are
        here, else None."""
        if self._off:
            return None
        try:
            fmt, stored_key, guesses, spans = marshal.loads(self._key.read_bytes())
            end = spans[-1][0] + spans[-1][1] if spans else 0
            if fmt != _PAGES_FORMAT or stored_key != key or self._data.stat().st_size != end:
                return None
        except Exception:  # missing, damaged or foreign: parse the file again
            return None
        return [tuple(span) for span in spans], guesses

    def read(self, span: tuple[int, int, str]) -> tuple:
        """The page at `span` (from `load`); `DamagedPages` if it cannot be read back as it was written."""
        offset, size, digest = span
        try:
            with self._data.open("rb") as f:
                f.seek(offset)
                blob = f.read(size)
            if hashlib.blake2b(blob, digest_size=16).hexdigest() != digest:
                raise ValueError("its content changed since it was written")
            (cols, lines, digests), errors, skipped = marshal.loads(blob)
        except Exception as exc:
            raise DamagedPages(f"{self._data}: {type(exc).__name__}: {exc}") from None
        return (cols, lines, digests), errors, skipped


# --- work on pages in forked children --------------------------------------------------------------------------

MAX_WORKERS = 2  # page children at once: a 2-core machine, where this process mostly waits or feeds the server
# A page's work takes a second or two; a worker silent this long is stuck and is replaced by working here. (A child
# forked while another thread of `pandora serve` held a lock — a logging handler's, a library's cache — that its
# work then needs waits for it forever: fork copies only the forking thread.)
STALL_SECONDS = 120.0


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


def _send(fd: int, value: Any) -> None:
    """One length-prefixed message: marshal (fast, runs no code on load), pickle for what marshal cannot hold
    (an Excel row's datetimes)."""
    try:
        kind, blob = b"m", marshal.dumps(value)
    except ValueError:
        kind, blob = b"p", pickle.dumps(value, protocol=5)
    header = (len(blob) + 1).to_bytes(8, "little") + kind
    sent = os.writev(fd, [header, blob])
    view = memoryview(blob)[max(sent - len(header), 0):]
    if sent < len(header):  # not even the header went: send the rest of it first
        view = memoryview(header[sent:] + blob)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, timeout: float | None = None) -> Any:
    """The next message from `fd`; EOFError if the other end closed (or died) before a whole one arrived,
    TimeoutError if it did not arrive within `timeout` seconds (None: wait as long as it takes)."""
    deadline = None if timeout is None else monotonic() + timeout
    header = _read_exactly(fd, 8, deadline)
    blob = memoryview(_read_exactly(fd, int.from_bytes(header, "little"), deadline))
    return marshal.loads(blob[1:]) if blob[:1] == b"m" else pickle.loads(blob[1:])


def _read_exactly(fd: int, size: int, deadline: float | None = None) -> bytearray:
    out = bytearray(size)
    view, got = memoryview(out), 0
    while got < size:
        if deadline is not None and not select.select([fd], [], [], max(deadline - monotonic(), 0))[0]:
            raise TimeoutError("the page worker sent nothing in time")
        n = os.readv(fd, [view[got:]])
        if not n:
            raise EOFError
        got += n
    return out


class ForkedMap:
    """`work(item)` for each item, in `workers` forked worker processes, handed back in item order as (item,
    result): while this process takes one result (and, say, feeds it to the server), the next items are
    already being worked on, on the other core. (Threads could not do this: parsing and serialising are pure
    Python and hold the GIL.) Item k goes to worker k mod `workers`, through its own pipe, only once that worker
    handed back its previous result, so no pipe ever waits on another. Workers live as long as the block: a
    process per item would fault in fresh memory for every page (a third more CPU), a worker reuses its own.

    `work` runs from the memory the fork copied (the transform, the kept pages): it must never touch a database
    connection. Items and results travel as marshal (pickle for what marshal cannot hold). An error in `work` is
    raised here: a PandoraError as itself, anything else as its pickle (or a RuntimeError naming it). A worker
    that dies (killed, out of memory), cannot be forked or hands back nothing for `stall` seconds (stuck: see
    STALL_SECONDS) is replaced by running its items here. Leaving the
    block stops the workers; they are always reaped, and leave by `os._exit`, so nothing of this process
    (connections, pools, atexit hooks) is closed or flushed twice."""

    def __init__(self, items: Iterable[Any], work: Callable[[Any], Any], workers: int = MAX_WORKERS,
                 stall: float = STALL_SECONDS):
        self._items = iter(items)
        self._work = work
        self._stall = stall
        self._count = workers
        self._workers: list[tuple[int, int, int] | None] = []  # (pid, fd to it, fd from it); None: work here
        self._pending: list[Any] = []  # items handed out and not yet collected, in order
        self._collected = 0

    def __enter__(self) -> Iterator[tuple[Any, Any]]:
        for _ in range(self._count):
            self._workers.append(self._start())
        return self._results()

    def __exit__(self, *exc: object) -> None:
        for slot, worker in enumerate(self._workers):
            if worker is not None:
                self._retire(slot)
        self._workers = []

    def _start(self) -> tuple[int, int, int] | None:
        items_r, items_w = os.pipe()
        results_r, results_w = os.pipe()
        inherited = [fd for w in self._workers if w is not None for fd in w[1:]]

        def serve() -> int:
            for fd in (items_w, results_r, *inherited):
                os.close(fd)
            while True:
                try:
                    item = _receive(items_r)
                except EOFError:
                    return 0
                try:
                    answer = ("ok", self._work(item))
                except BaseException as exc:
                    answer = ("error", _described(exc))
                _send(results_w, answer)

        try:
            pid = _fork(serve)
        except OSError:  # no process to spare: its items are worked on here
            pid = 0
        os.close(items_r)
        os.close(results_w)
        if not pid:
            os.close(items_w)
            os.close(results_r)
            return None
        return pid, items_w, results_r

    def _results(self) -> Iterator[tuple[Any, Any]]:
        for item in itertools.islice(self._items, len(self._workers)):
            self._hand_out(item)
        while self._pending:
            done = self._collect()
            for item in itertools.islice(self._items, 1):  # the next item starts before the caller takes this one
                self._hand_out(item)
            yield done

    def _hand_out(self, item: Any) -> None:
        slot = (self._collected + len(self._pending)) % len(self._workers)  # item k goes to worker k mod count
        self._pending.append(item)
        worker = self._workers[slot]
        if worker is None:
            return
        try:
            _send(worker[1], item)
        except Exception:  # the worker is gone, or the item went half sent: this item and its next ones, here
            self._retire(slot)

    def _retire(self, slot: int) -> None:
        """Stop a worker that can no longer be trusted with items; its items are worked on here."""
        pid, to_worker, from_worker = self._workers[slot]
        self._workers[slot] = None
        os.close(to_worker)
        os.close(from_worker)
        _stop(pid)

    def _collect(self) -> tuple[Any, Any]:
        slot = self._collected % len(self._workers)
        item = self._pending.pop(0)
        self._collected += 1
        worker = self._workers[slot]
        if worker is not None:
            try:
                kind, result = _receive(worker[2], self._stall)
            except Exception:  # it died (killed, out of memory), is stuck or its word was garbled: from now on, here
                self._retire(slot)
            else:
                if kind == "error":
                    raise _rebuilt(result)
                return item, result
        return item, self._work(item)


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
