"""Open any tabular export (CSV/TSV/TXT or XLSX) and stream its rows as a user sees them in a spreadsheet.

Exports from Salesforce, HubSpot, Pipedrive or a hand-made sheet differ in encoding, delimiter, title lines above
the header and footers below the data. This module hides all of that behind `open_table()`: it decides the format
by content, finds the header, and streams `(row number, cells)` with the row numbers a user would look up.

It must never read a whole file into memory (a 1M-row export stays at low memory), never evaluate a formula
(Excel cells are read with their cached values), and never return a reader for a file it cannot read: every
unreadable input fails up front with one message naming the file. Values stay raw here; `values.py` parses them.
"""
from __future__ import annotations

import codecs
import csv
import contextlib
import io
import itertools
import re
import statistics
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.errors import InputError

ACCEPTED = ".csv, .tsv, .txt, .xlsx"
HEADER_SEARCH_ROWS = 30  # the header is among the first 30 non-blank rows
LOOKAHEAD_ROWS = 10  # rows after a header candidate whose widths it must resemble
MAX_SCAN_RAW_ROWS = 5000  # stop looking for a header after this many rows, blank ones included
MAX_HELD_ROWS = 50  # a footer is a handful of rows; never hold back more than this
SNIFF_BYTES = 1024 * 1024

Row = tuple[int, list[Any]]


class FileImportError(InputError):
    """A file that cannot be imported as a table; the message names the file and says what to do."""

    code = "import_error"


@dataclass
class TableInfo:
    filename: str
    format: str  # "csv" | "xlsx"
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    sheets: list[str]
    header_row: int  # 1-based spreadsheet row number of the header
    headers: list[str]
    title_lines: list[str] = field(default_factory=list)


class TableReader:
    """Streams the data rows of one table; every call to `rows()` starts again from the top of the file."""

    def __init__(self, info: TableInfo, raw: Callable[[], Iterator[Row]]):
        self.info = info
        self._raw = raw  # opens the file and yields every (row number, cells), blank rows included

    def rows(self) -> Iterator[Row]:
        """(row number, cells padded/truncated to the headers), blank rows, totals and footers left out."""
        return _data_rows(self._raw(), self.info.header_row, len(self.info.headers))

    def chunks(self, size: int = 5000) -> Iterator[list[Row]]:
        chunk: list[Row] = []
        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def sample(self, n: int = 10) -> list[Row]:
        rows = self.rows()
        try:
            return list(itertools.islice(rows, n))
        finally:
            rows.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Nothing to release: no file stays open between passes. Kept so callers can write `with open_table(…)`."""

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(
    path: str | Path,
    *,
    sheet: str | None = None,
    max_bytes: int = 200 * 1024 * 1024,
    filename: str | None = None,
) -> TableReader:
    """Open an export for streaming, or raise `FileImportError` saying why it cannot be read."""
    path = Path(path)
    name = filename or path.name

    def fail(message: str) -> FileImportError:
        return FileImportError(message, file=name)

    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise fail(f"{name} could not be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise fail(f"{name} is empty (0 bytes)")
    if size > max_bytes:
        raise fail(f"{name} is {size / 2**20:.1f} MB, which exceeds the {max_bytes / 2**20:g} MB limit; "
                   "split it into smaller files")
    if _sniff_binary_format(path, head, name, fail) == "xlsx":
        return _open_xlsx(path, name, sheet, fail)
    return _open_csv(path, name, head, size, fail)


# --- format by content -------------------------------------------------------------------------------------------

_MAGIC = [
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
]
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _sniff_binary_format(path: Path, head: bytes, name: str, fail: Callable[[str], FileImportError]) -> str:
    """Return "xlsx" or "text"; raise for anything we know is neither (the extension is only a hint)."""
    accepted = f"accepted formats are {ACCEPTED}"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise fail(f"{name} is a damaged ZIP/Excel file and cannot be read ({exc})") from exc
        if "xl/workbook.xml" in names:
            return "xlsx"
        kind = ("a Word document (.docx)" if "word/document.xml" in names
                else "a PowerPoint file (.pptx)" if "ppt/presentation.xml" in names
                else "an OpenDocument file (.ods/.odt)" if "content.xml" in names else "a ZIP archive")
        raise fail(f"{name} is {kind}, not a table; {accepted}")
    if head.startswith(_OLE2):
        suffix = Path(name).suffix.lower() or path.suffix.lower()
        if suffix == ".xlsx":  # an encrypted workbook is wrapped in the old container format
            raise fail(f"{name} is password-protected; remove the password in Excel and upload it again")
        kind = "a Word 97-2003 document (.doc)" if suffix == ".doc" else "a legacy Excel 97-2003 (.xls) file"
        raise fail(f"{name} is {kind}, which cannot be read; save it as .xlsx or .csv ({accepted})")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise fail(f"{name} is {kind}, not a table; {accepted}")
    return "text"


# --- CSV ----------------------------------------------------------------------------------------------------------

def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode the odd Windows-1252 byte inside a UTF-8 file (a pasted 'é') instead of failing mid-stream."""
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start:exc.end].decode("cp1252", "replace"), exc.end


codecs.register_error("pandora_cp1252_fallback", _cp1252_fallback)


def _detect_encoding(head: bytes, whole: bool) -> tuple[str, str]:
    """(codec, errors) for the stream, decided from the first bytes; the prefix decodes with them too."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "pandora_cp1252_fallback"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "replace"
    sample = head[:4096]
    half = max(len(sample) // 2, 1)
    nul_even, nul_odd = sample[0::2].count(0) / half, sample[1::2].count(0) / half
    if nul_odd > 0.3 and nul_even < 0.05:
        return "utf-16-le", "replace"
    if nul_even > 0.3 and nul_odd < 0.05:
        return "utf-16-be", "replace"
    if b"\x00" in head:
        raise ValueError("binary")
    # UTF-8 unless the prefix has more invalid bytes than valid multi-byte characters: a UTF-8 file with one
    # pasted Windows-1252 byte stays UTF-8 (that byte is decoded as cp1252), a real cp1252 file becomes cp1252.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=whole)
    invalid, multibyte_saving = text.count("\ufffd"), len(head) - len(text)
    return ("utf-8", "pandora_cp1252_fallback") if invalid == 0 or multibyte_saving > invalid else ("cp1252", "replace")


def _detect_delimiter(text: str, truncated: bool, prefer_tab: bool) -> str:
    """The candidate whose field count is most consistent over the first ~50 records (quote-aware)."""
    candidates = ["\t", ",", ";", "|"] if prefer_tab else [",", ";", "\t", "|"]
    best, best_score = ",", (0.0, 0)
    for delimiter in candidates:
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            records = [len(r) for r in itertools.islice(reader, 50) if any(r)]
        except csv.Error:
            continue
        if truncated and len(records) > 1:
            records.pop()  # the prefix may end in the middle of a record
        wide = [n for n in records if n > 1]
        if not wide:
            continue
        mode = statistics.mode(wide)
        score = (records.count(mode) / len(records), mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _open_csv(path: Path, name: str, head: bytes, size: int, fail: Callable[[str], FileImportError]) -> TableReader:
    try:
        encoding, errors = _detect_encoding(head, whole=len(head) >= size)
    except ValueError:
        raise fail(f"{name} looks like a binary file, not a table; accepted formats are {ACCEPTED}") from None
    text = codecs.getincrementaldecoder(encoding)(errors).decode(head, final=len(head) >= size)
    controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\t\r\n\f")
    if controls > max(10, len(text[:20000]) // 100):
        raise fail(f"{name} looks like a binary file, not a table; accepted formats are {ACCEPTED}")
    start = text.lstrip("\ufeff \r\n\t")[:200].lower()
    if start.startswith(("<!doctype", "<html", "<?xml", "<table")) or start.startswith(("{", "[")):
        kind = "JSON" if start.startswith(("{", "[")) else "an HTML/XML page"
        raise fail(f"{name} contains {kind}, not a table; save it as .xlsx or .csv ({ACCEPTED} are accepted)")
    delimiter = _detect_delimiter(text, len(head) < size, prefer_tab=".tsv" in (Path(name).suffix.lower(), path.suffix.lower()))

    def raw() -> Iterator[Row]:
        with path.open(encoding=encoding, errors=errors, newline="") as f:
            number = 0
            try:
                for number, cells in enumerate(csv.reader(f, delimiter=delimiter), 1):
                    yield number, [c if c and not c.isspace() else None for c in cells]
            except csv.Error as exc:
                raise FileImportError(f"{name} row {number + 1}: the CSV is malformed ({exc})",
                                      file=name, row=number + 1) from exc

    header_row, headers, titles = located = _locate_header(raw(), name, fail)
    _require_data(raw(), located, name, fail)
    info = TableInfo(name, "csv", encoding, delimiter, None, [], header_row, headers, titles)
    return TableReader(info, raw)


# --- XLSX ---------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """A read-only workbook with cached values (formulas are never evaluated), closed on exit."""
    from openpyxl import load_workbook  # imported here: CSV-only imports never pay for it

    with path.open("rb") as handle:  # a file object: openpyxl would refuse an upload saved without .xlsx
        wb = load_workbook(handle, read_only=True, data_only=True)
        try:
            yield wb
        finally:
            wb.close()


def _sheet_rows(ws: Any) -> Iterator[Row]:
    ws.reset_dimensions()  # a wrong <dimension> in the file would silently truncate rows and columns
    for number, cells in enumerate(ws.iter_rows(values_only=True), 1):
        yield number, [None if c.__class__ is str and (not c or c.isspace()) else c for c in cells]


def _open_xlsx(path: Path, name: str, sheet: str | None, fail: Callable[[str], FileImportError]) -> TableReader:
    """Pick the sheet (the named one, or the first that holds a header and data, preferring a sheet known to be
    longer) by reading only the first rows of each."""
    try:
        with _workbook(path) as wb:
            names = list(wb.sheetnames)
            wanted = names
            if sheet is not None:
                wanted = ([n for n in names if n == sheet]
                          or [n for n in names if n.strip().lower() == sheet.strip().lower()])
                if not wanted:
                    raise fail(f"{name} has no sheet named '{sheet}'; its sheets are: {', '.join(map(repr, names))}")
            found: list[tuple[tuple[bool, int], str, tuple[int, list[str], list[str]]]] = []
            reasons: list[str] = []
            for title in wanted:
                ws = wb[title]
                if not hasattr(ws, "iter_rows"):  # a chart sheet
                    continue
                known_rows = ws.max_row or 0  # from the sheet's <dimension>: cheap, but may be missing
                try:
                    located = _locate_header(_sheet_rows(ws), f"{name} (sheet '{title}')", fail)
                    _require_data(_sheet_rows(ws), located, f"{name} (sheet '{title}')", fail)
                except FileImportError as exc:
                    reasons.append(exc.message)
                    continue
                found.append(((len(located[1]) > 1, known_rows), title, located))
    except FileImportError:
        raise
    except Exception as exc:  # openpyxl raises many kinds (KeyError, ValueError, zip errors) for damaged files
        raise fail(f"{name} could not be read as an Excel workbook ({exc}); re-save it as .xlsx or .csv") from exc
    if not found:
        if len(reasons) == 1:
            raise fail(reasons[0])
        raise fail(f"{name}: none of its sheets ({', '.join(map(repr, names))}) holds a header row followed by data")
    best = found[0]
    for candidate in found[1:]:
        if candidate[0] > best[0]:  # a multi-column sheet known to hold more rows than the first one found
            best = candidate
    _, title, (header_row, headers, titles) = best

    def raw() -> Iterator[Row]:
        with _workbook(path) as wb:
            yield from _sheet_rows(wb[title])

    return TableReader(TableInfo(name, "xlsx", None, None, title, names, header_row, headers, titles), raw)


# --- header, footer, blank rows -----------------------------------------------------------------------------------

_NUMBER_LIKE = re.compile(r"^[-+(]?\s*[$€£¥]?\s*\d[\d\s.,']*\s*[%)]?\s*[a-z]{0,3}$", re.I)
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")
_TOTAL = re.compile(r"^(grand\s+|sub-?)?totals?(\s*\(\s*[\d,.\s]+records?\s*\))?\s*:?$", re.I)
_FOOTER = re.compile(
    r"^(copyright\b|©|\(c\)\s*\d{4}).*(salesforce\.com|all rights reserved)"
    r"|^confidential information\b|^generated by:", re.I)
_FOOTER_INITIALS = frozenset("gstc©(")  # first letters of every _TOTAL and _FOOTER match


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _width(cells: list[Any]) -> int:
    for i in range(len(cells) - 1, -1, -1):
        if not _blank(cells[i]):
            return i + 1
    return 0


def _is_label(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    return bool(text) and not _NUMBER_LIKE.match(text) and not _DATE_LIKE.match(text)


def _label_text(value: Any) -> str:
    if isinstance(value, datetime) and value == datetime.combine(value.date(), datetime.min.time()):
        return value.date().isoformat()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\ufeff", "").strip()


def _looks_like_header(cells: list[Any], following: list[list[Any]]) -> bool:
    """Mostly distinct text labels, about as wide as the rows that follow it (a title line is much narrower)."""
    filled = [c for c in cells if not _blank(c)]
    width = _width(cells)
    if not filled or sum(map(_is_label, filled)) < 0.75 * len(filled):
        return False
    if len({_label_text(c).lower() for c in filled}) < 0.5 * len(filled) or len(filled) < 0.5 * width:
        return False
    widths = sorted(_width(r) for r in following if not _is_footer(r))
    if not widths:
        return True
    typical = widths[len(widths) * 3 // 4]  # upper quartile: a footer or a sparse row must not drag it down
    return len(filled) >= min(2, typical) and 0.5 * width <= typical <= width + max(1, width / 4)


def _locate_header(
    raw: Iterator[Row], name: str, fail: Callable[[str], FileImportError]
) -> tuple[int, list[str], list[str]]:
    """(header row number, unique headers, title lines) from the first rows of the table."""
    prefix: list[Row] = []
    for number, cells in raw:
        if number > MAX_SCAN_RAW_ROWS or len(prefix) >= HEADER_SEARCH_ROWS + LOOKAHEAD_ROWS:
            break
        if _width(cells):
            prefix.append((number, cells))
    if hasattr(raw, "close"):
        raw.close()  # type: ignore[attr-defined]
    if not prefix:
        raise fail(f"{name} has no rows (it contains only blank lines or empty cells)")
    for i, (number, cells) in enumerate(prefix[:HEADER_SEARCH_ROWS]):
        following = [c for _, c in prefix[i + 1:i + 1 + LOOKAHEAD_ROWS]]
        if not _looks_like_header(cells, following):
            continue
        if not following:
            raise fail(f"{name} has a header row but no data rows")
        # Columns that most rows below fill but the header left blank still get a name ("Column 9").
        widths = sorted(_width(c) for c in following if not _is_footer(c)) or [0]
        width = max(_width(cells), widths[(len(widths) - 1) // 2])
        titles = [" ".join(_label_text(c) for c in row if not _blank(c)) for _, row in prefix[:i]]
        return number, _unique_headers(cells[:width] + [None] * (width - len(cells))), titles
    raise fail(f"{name}: no header row found in the first {HEADER_SEARCH_ROWS} non-blank rows "
               "(expected a row of column names such as Name, Email, Amount)")


def _unique_headers(cells: list[Any]) -> list[str]:
    """Stripped labels; a blank label becomes "Column 7", a repeated one "Amount (2)" (compared case-insensitively)."""
    headers: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        base = _label_text(cell) if not _blank(cell) else f"Column {i + 1}"
        label, n = base, 1
        while label.lower() in seen:
            n += 1
            label = f"{base} ({n})"
        seen.add(label.lower())
        headers.append(label)
    return headers


def _is_footer(cells: list[Any]) -> bool:
    """Totals rows and the copyright/confidential/generated-by lines CRM report exports append."""
    first = cells[0] if cells and cells[0] is not None else next((c for c in cells if c is not None), None)
    if first.__class__ is not str or first.lstrip()[:1].lower() not in _FOOTER_INITIALS:
        return False  # the cheap test that every data row of a million-row file takes
    first = first.strip()
    return bool(_TOTAL.match(first)) or (len(cells) - cells.count(None) == 1 and bool(_FOOTER.search(first)))


def _fit(cells: list[Any], width: int) -> list[Any]:
    return cells[:width] if len(cells) >= width else cells + [None] * (width - len(cells))


def _data_rows(raw: Iterable[Row], header_row: int, width: int) -> Iterator[Row]:
    """Rows below the header, without blank rows, totals and the trailing footer.

    A nearly empty row (≤ 1 filled cell in a table of ≥ 3 columns) is held back: if a normal row follows, it is a
    real (if bad) row and is emitted in order; if the file ends first, it was footer (a company name, a note)."""
    held: list[Row] = []
    for number, cells in raw:
        if number <= header_row:
            continue
        if len(cells) != width:
            cells = _fit(cells, width)
        filled = width - cells.count(None)  # raw rows carry None for every empty or whitespace-only cell
        if not filled or _is_footer(cells):
            continue
        if width >= 3 and filled <= 1:
            held.append((number, cells))
            if len(held) > MAX_HELD_ROWS:
                yield held.pop(0)
            continue
        yield from held
        held.clear()
        yield number, cells


def _require_data(raw: Iterator[Row], located: tuple[int, list[str], list[str]], name: str,
                  fail: Callable[[str], FileImportError]) -> None:
    """Fail unless a data row follows the header (cheap: reading stops at the first one)."""
    header_row, headers, _ = located
    rows = _data_rows(raw, header_row, len(headers))
    found = next(rows, None) is not None
    rows.close()
    if hasattr(raw, "close"):
        raw.close()  # type: ignore[attr-defined]
    if not found:
        raise fail(f"{name} has a header row ({', '.join(headers[:4])}{', …' if len(headers) > 4 else ''}) "
                   "but no data rows")
