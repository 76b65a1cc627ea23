"""Cell values as people write them: amounts, dates, percentages, emails, domains, flags, counts, names.

Every parser takes one cell, either text from a CSV or a native value from Excel (int, float, Decimal, datetime,
date, bool, None), and returns the typed value; an empty or whitespace-only cell is None, not an error. A value
that cannot be read raises `ValueError` whose message a user can act on once the caller prefixes row and column:
"'TBD' is not a date (expected e.g. 2026-03-15 or 3/15/2026)".

Nothing here evaluates a cell: text starting with `=`, `+`, `-` or `@` stays verbatim text (`is_formula_like`
tells callers which text a spreadsheet would run as a formula if it were ever written back).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CURRENCY_CODES = frozenset(
    "USD EUR GBP JPY CHF CAD AUD NZD SEK NOK DKK PLN CZK HUF RON BGN INR CNY HKD SGD BRL MXN ARS CLP COP ZAR "
    "ILS AED SAR KRW TRY RUB THB IDR MYR PHP TWD VND NGN EGP KES".split())
_SYMBOLS = {"US$": "USD", "CA$": "CAD", "C$": "CAD", "AU$": "AUD", "A$": "AUD", "NZ$": "NZD", "HK$": "HKD",
            "S$": "SGD", "R$": "BRL", "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW",
            "₪": "ILS"}  # a bare $ is USD: most CRM exports are American
_CURRENCY = r"US\$|CA\$|C\$|AU\$|A\$|NZ\$|HK\$|S\$|R\$|[$€£¥₹₩₪]|[A-Za-z]{3}"
_LEADING_CURRENCY = re.compile(rf"^({_CURRENCY})(?![A-Za-z])\s*")
_TRAILING_CURRENCY = re.compile(rf"(?<![A-Za-z])({_CURRENCY})$")
_MULTIPLIERS = {"k": 10**3, "m": 10**6, "mm": 10**6, "mn": 10**6, "b": 10**9, "bn": 10**9}
_WITH_MULTIPLIER = re.compile(r"^(.*?\d)\s*(k|mm|mn|m|bn|b)?$", re.I)
_SPACE_GROUPS = re.compile(r"^\d{1,3}([ '’]\d{3})+([.,]\d+)?$")
_GROUP_SPACE = re.compile(r"[ '’]")
_NUMBER_TEXT = re.compile(r"\d[\d.,]*|[.,]\d+")
_GROUPED_WHOLE = {mark: re.compile(rf"\d{{1,3}}(\{mark}\d{{3}})*") for mark in ",."}
_LONE_GROUP = {mark: re.compile(rf"[1-9]\d{{0,2}}\{mark}\d{{3}}") for mark in ",."}
_GROUPED = {mark: re.compile(rf"\d{{1,3}}(\{mark}\d{{3}})+") for mark in ",."}

EXCEL_SERIAL_RANGE = (20000, 80000)  # 1954-10-03 … 2119-01-10: a plain number outside this is not a date
_MONTHS = {name: i for i, names in enumerate(
    ["jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july",
     "aug august", "sep sept september", "oct october", "nov november", "dec december"], 1) for name in names.split()}
_IGNORED_WORDS = {"mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "monday", "tuesday",
                  "wednesday", "thursday", "friday", "saturday", "sunday", "st", "nd", "rd", "th", "of"}
_COMPACT_DATE = re.compile(r"(19|20)\d{6}")
_DIGITS = re.compile(r"\d+(\.\d+)?")
_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_WORDS = re.compile(r"[A-Za-z0-9\s,./'-]+")
_DATE_TOKEN = re.compile(r"[a-z]+|\d+")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})\.?$")
_TIME = re.compile(r"(?:T|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(?:([AaPp])\.?[Mm]\.?)?"
                   r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2}|[+-]\d{2})?$")

_TRUE = {"true", "t", "yes", "y", "1", "x", "checked", "on", "✓", "✔"}
_FALSE = {"false", "f", "no", "n", "0", "unchecked", "off"}
_RANGE = re.compile(r"^(\d[\d.,\s]*[km]?)\s*(?:-|–|—|to)\s*(\d[\d.,\s]*[km]?)$", re.I)
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63})$")
_LABEL = r"[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]*[a-z0-9\u00a1-\uffff])?"
_DOMAIN = re.compile(rf"^(?:{_LABEL}\.)+[a-z\u00a1-\uffff]{{2,63}}$")  # the last label (TLD) has no digits
_ANGLE_ADDRESS = re.compile(r"<([^<>]*)>\s*$")
_MAILTO = re.compile(r"^mailto:", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_PATH_START = re.compile(r"[/?#]")
_PORT = re.compile(r":\d*$")
_NON_WORD = re.compile(r"[\W_]+")
LEGAL_SUFFIXES = frozenset(
    "inc incorporated llc ltd limited corp corporation co company group holdings technologies tech solutions "
    "services gmbh ag sa sas bv nv plc pty srl oy ab kk".split())


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _show(value: Any) -> str:
    text = str(value).strip()
    return f"'{text[:47]}…'" if len(text) > 50 else f"'{text}'"


def _bad(value: Any, what: str, expected: str) -> ValueError:
    return ValueError(f"{_show(value)} is not {what} (expected e.g. {expected})")


def _native_number(value: Any) -> Decimal | None:
    """Excel's int/float/Decimal as an exact Decimal (floats via their shortest repr); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{_show(value)} is not a number")
    return number


def _plain_number(text: str, point_groups: bool = False) -> Decimal:
    """Digits with thousands separators and a decimal point or comma, decided like a person would.

    Both `.` and `,` → the last one is the decimal mark. One kind repeated → thousands. A single comma followed by
    exactly three digits (`1,234`) → thousands, otherwise (`1,5`) → decimal. A single point is decimal, except with
    `point_groups` (money and counts never carry three decimals, so `1.234 €` is 1234) when three digits follow."""
    s = text.replace("\u00a0", " ").replace("\u202f", " ").strip()
    if _GROUP_SPACE.search(s):
        if not _SPACE_GROUPS.match(s):
            raise ValueError(s)
        s = _GROUP_SPACE.sub("", s)
    if not _NUMBER_TEXT.fullmatch(s):
        raise ValueError(s)
    if "." in s and "," in s:
        mark = "." if s.rfind(".") > s.rfind(",") else ","
        whole, frac = s.rsplit(mark, 1)
        thousands = "," if mark == "." else "."
        if not _GROUPED_WHOLE[thousands].fullmatch(whole) or not frac.isdigit():
            raise ValueError(s)
        return Decimal(whole.replace(thousands, "") + "." + frac)
    for mark in ",.":
        count = s.count(mark)
        lone_group = (mark == "," or point_groups) and _LONE_GROUP[mark].fullmatch(s)
        if count > 1 or lone_group:
            if not _GROUPED[mark].fullmatch(s):
                raise ValueError(s)
            return Decimal(s.replace(mark, ""))
    return Decimal(s.replace(",", "."))


def _number(text: str) -> Decimal:
    """An amount or count: a plain number optionally followed by k / M / MM / B / bn (12.5k → 12500)."""
    match = _WITH_MULTIPLIER.match(text.strip())
    if not match:
        raise ValueError(text)
    number = _plain_number(match.group(1), point_groups=True)
    return number * _MULTIPLIERS[match.group(2).lower()] if match.group(2) else number


def parse_amount(value: Any) -> tuple[Decimal | None, str | None]:
    """(amount, ISO currency code or None): `$12,500.00`, `8,000 USD`, `1.234,56 €`, `(1,200.00)`, `1.2M`."""
    if _blank(value):
        return None, None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return _native_number(value), None
    text = str(value).strip().replace("\u2212", "-")
    negative, currency = False, None
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1].strip()
    try:
        for _ in range(3):  # peel signs and currency marks from both ends, in any order: "-$500", "$-500", "500 EUR"
            if text[:1] in ("+", "-"):
                negative, text = negative ^ (text[0] == "-"), text[1:].strip()
            for pattern in (_LEADING_CURRENCY, _TRAILING_CURRENCY):
                match = pattern.search(text)
                if match:
                    code = _SYMBOLS.get(match.group(1)) or match.group(1).upper()
                    if code not in CURRENCY_CODES or (currency and currency != code):
                        raise ValueError(code)
                    currency, text = code, (text[:match.start()] + text[match.end():]).strip()
        amount = _number(text)
    except (ValueError, InvalidOperation):
        raise _bad(value, "an amount", "12500, $12,500.00 or 1.234,56 €") from None
    return (-amount if negative else amount), currency


def parse_int(value: Any) -> int | None:
    """A whole number: `1,200`, `1.2k`. An employee range `51-200` becomes its midpoint rounded half up (126),
    and an open range `10,001+` its lower bound, so a size band still sorts and buckets sensibly."""
    if _blank(value):
        return None
    expected = "1200, 1,200, 1.2k or 51-200"
    number = _native_number(value)
    try:
        if number is None:
            if isinstance(value, bool):
                raise ValueError
            text = str(value).strip().replace("\u2212", "-")
            if (match := _RANGE.match(text)) is not None:
                low, high = _number(match.group(1)), _number(match.group(2))
                if low > high:
                    raise ValueError
                number = ((low + high) / 2).quantize(Decimal(1), ROUND_HALF_UP)
            elif text.endswith("+") and text[:1].isdigit():
                number = _number(text[:-1])
            else:
                number = -_number(text[1:]) if text.startswith("-") else _number(text.lstrip("+"))
    except (ValueError, InvalidOperation):
        raise _bad(value, "a whole number", expected) from None
    if number != number.to_integral_value():
        raise _bad(value, "a whole number", expected)
    return int(number)


def parse_percent(value: Any) -> Decimal | None:
    """On a 0–100 scale: `45%`, `45.5 %`, `45` → 45; a number ≤ 1 without `%` is a fraction (Excel's 0.45 → 45).
    Outside 0–100 is an error: a probability or a share cannot be 150%."""
    if _blank(value):
        return None
    number = _native_number(value)
    try:
        if number is None:
            if isinstance(value, bool):
                raise ValueError
            text = str(value).strip().replace("\u2212", "-")
            sign = -1 if text.startswith("-") else 1
            text = text.lstrip("+-").strip()
            if text.endswith("%"):
                number = sign * _plain_number(text[:-1])
            else:
                number = _plain_number(text)
                number = sign * (number * 100 if number <= 1 else number)
        elif abs(number) <= 1:
            number *= 100
    except (ValueError, InvalidOperation):
        raise _bad(value, "a percentage", "45%, 0.45 or 45") from None
    if not 0 <= number <= 100:
        raise ValueError(f"{_show(value)} is not a percentage between 0 and 100")
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def parse_bool(value: Any) -> bool | None:
    """true/false, yes/no, y/n, 1/0, x, checked/unchecked. Won/lost is a stage, not a flag."""
    if _blank(value) or isinstance(value, bool):
        return value if isinstance(value, bool) else None
    if isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _bad(value, "yes/no", "true/false, yes/no, y/n or 1/0")


def parse_text(value: Any) -> str | None:
    """Text stripped of surrounding whitespace and nothing else; `=SUM(A1)` stays exactly that, never evaluated."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an Excel number cell holding a zip code or an ID
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value).strip()


def is_formula_like(text: Any) -> bool:
    """Whether a spreadsheet would run this text as a formula if we wrote it back (CSV injection)."""
    if not isinstance(text, str) or not text:
        return False
    return text[0] in "\t\r" or text.lstrip(" ")[:1] in ("=", "+", "-", "@")


def spreadsheet_safe(text: str) -> str:
    """The text to write into a spreadsheet cell: formula-like text gets a leading quote so it stays text."""
    return "'" + text if is_formula_like(text) else text


def parse_email(value: Any) -> str | None:
    """Trimmed, lower-cased, validated: `"Jane Doe" <JANE@ACME.IO>` and `mailto:jane@acme.io` → `jane@acme.io`."""
    if _blank(value):
        return None
    text = str(value).strip()
    if (match := _ANGLE_ADDRESS.search(text)) is not None:
        text = match.group(1)
    text = _MAILTO.sub("", text.strip()).split("?")[0].strip().lower()
    if not _EMAIL.match(text):
        raise _bad(value, "an email address", "jane@acme.io")
    return text


def parse_domain(value: Any) -> str | None:
    """The bare host: `https://www.Acme.io/about`, `WWW.ACME.IO`, `acme.io:8080`, `jane@acme.io` → `acme.io`."""
    if _blank(value):
        return None
    text = str(value).strip().lower()
    if "://" not in text and "@" in text:
        text = text.rsplit("@", 1)[1]
    text = _SCHEME.sub("", text)
    text = _PATH_START.split(text, maxsplit=1)[0].rsplit("@", 1)[-1]
    text = _PORT.sub("", text).rstrip(".")
    text = text[4:] if text.startswith("www.") else text
    if not _DOMAIN.match(text):
        raise _bad(value, "a domain", "acme.io")
    return text


def normalize_company_name(name: Any) -> str:
    """A key for matching companies across files: `Acme, Inc.`, `ACME Inc` and `Acme` all → `acme`.

    Lower-cased, `&` → and, every run of punctuation/whitespace → one space, legal or corporate suffix words dropped
    wherever they stand; "" when nothing is left. It must agree exactly with the SQL `pandora_normalize_company`
    (migrations/0004_file_import.sql) that indexes accounts, so it folds no accents and joins no "L.L.C."."""
    if _blank(name):
        return ""
    text = _NON_WORD.sub(" ", str(name).lower().replace("&", " and "))
    return " ".join(word for word in text.split() if word not in LEGAL_SUFFIXES)


# --- dates --------------------------------------------------------------------------------------------------------

def excel_serial_to_datetime(serial: float | Decimal) -> datetime:
    """Excel's day count (1 = 1900-01-01). Excel believes 1900 was a leap year, so serial 60 (1900-02-29) does not
    exist and serials from 61 on are one day ahead of a plain count."""
    serial = Decimal(str(serial))
    if serial < 1 or 60 <= serial < 61:
        raise ValueError(f"{serial} is not an Excel date")
    base = datetime(1899, 12, 30) if serial >= 61 else datetime(1899, 12, 31)
    days = int(serial)
    seconds = round((serial - days) * 86400)
    return base + timedelta(days=days, seconds=seconds)


def _split_time(text: str) -> tuple[str, re.Match[str] | None]:
    match = _TIME.search(text)
    if match and match.start() > 0:
        return text[:match.start()].strip().rstrip(","), match
    return text, None


def _year(text: str) -> int:
    year = int(text)
    return year if len(text) > 2 else (2000 + year if year < 70 else 1900 + year)


def _date_part(text: str, order: str) -> date:
    if _COMPACT_DATE.fullmatch(text):  # 20260315
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    if (match := _NUMERIC_DATE.match(text)) is not None:
        a, _, b, c = match.groups()
        if len(a) > 2 or (order == "ymd" and len(c) <= 2):
            year, month, day = _year(a), int(b), int(c)
        else:
            month, day = (int(a), int(b)) if order != "dmy" else (int(b), int(a))
            if month > 12 >= day:  # only one reading makes sense: take it
                month, day = day, month
            year = _year(c)
        return date(year, month, day)
    if not _DATE_WORDS.fullmatch(text):
        raise ValueError(text)
    words = [w for w in _DATE_TOKEN.findall(text.lower()) if w not in _IGNORED_WORDS]
    months = [w for w in words if not w.isdigit()]
    numbers = [w for w in words if w.isdigit()]
    if len(months) != 1 or months[0] not in _MONTHS or len(numbers) != 2:
        raise ValueError(text)
    day, year = (numbers[1], numbers[0]) if len(numbers[0]) == 4 else (numbers[0], numbers[1])
    return date(_year(year), _MONTHS[months[0]], int(day))


def _numeric_datetime(value: Any) -> datetime | None:
    """Compact 20260315, epoch milliseconds (13 digits), epoch seconds (10 digits) or an Excel serial; None if
    the value is not a number at all."""
    if _COMPACT_DATE.fullmatch(str(value).strip()):
        return datetime.combine(_date_part(str(value).strip(), "ymd"), time(), timezone.utc)
    number = _native_number(value)
    if number is None and isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = Decimal(value.strip())
    if number is None:
        return None
    if 10**12 <= number < 10**13:
        return datetime.fromtimestamp(float(number) / 1000, timezone.utc)
    if 10**9 <= number < 10**10:
        return datetime.fromtimestamp(float(number), timezone.utc)
    if EXCEL_SERIAL_RANGE[0] <= number <= EXCEL_SERIAL_RANGE[1]:
        return excel_serial_to_datetime(number).replace(tzinfo=timezone.utc)
    raise ValueError(str(value))


def parse_date(value: Any, order: str = "mdy") -> date | None:
    """A calendar date from ISO, US, European, month-name, two-digit-year, Excel-serial or datetime input."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        numeric = _numeric_datetime(value)
        if numeric is not None:
            return numeric.date()
        text = str(value).strip()
        if _ISO_DATE_START.match(text):
            try:
                return datetime.fromisoformat(text).date()
            except ValueError:
                pass
        date_text, _ = _split_time(text)
        return _date_part(date_text, order)
    except (ValueError, OverflowError, InvalidOperation):
        raise _bad(value, "a date", "2026-03-15 or 3/15/2026") from None


def parse_datetime(value: Any, order: str = "mdy") -> datetime | None:
    """A timezone-aware moment; naive input (and a bare date, at midnight) is taken as UTC."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(), timezone.utc)
    try:
        numeric = _numeric_datetime(value)
        if numeric is not None:
            return numeric
        text = str(value).strip()
        if _ISO_DATE_START.match(text):
            try:
                moment = datetime.fromisoformat(text)
                return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            except ValueError:
                pass
        date_text, match = _split_time(text)
        day = _date_part(date_text, order)
        if match is None:
            return datetime.combine(day, time(), timezone.utc)
        hour, minute, second, fraction, meridiem, zone = match.groups()
        hour = int(hour)
        if meridiem:
            if not 1 <= hour <= 12:
                raise ValueError(text)
            hour = hour % 12 + (12 if meridiem.lower() == "p" else 0)
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        tz = timezone.utc
        if zone and zone[0] in "+-":
            digits = zone[1:].replace(":", "").ljust(4, "0")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tz = timezone(offset if zone[0] == "+" else -offset)
        return datetime.combine(day, time(hour, int(minute), int(second or 0), micro), tz)
    except (ValueError, OverflowError, InvalidOperation):
        raise _bad(value, "a date and time", "2026-03-15 10:22 or 2026-03-15T10:22:00Z") from None


def infer_date_order(values: Iterable[Any]) -> str:
    """Day/month order of a column from a sample: a first part > 12 means dmy, a second part > 12 means mdy
    (the majority wins if a column has both); with no such evidence, dotted dates (15.03.) are European and
    everything else is US (mdy), as most CRM exports are. A column of only year-first dates is "ymd"."""
    day_first = month_first = dotted = ambiguous = year_first = 0
    for value in values:
        if not isinstance(value, str):
            continue
        match = _NUMERIC_DATE.match(_split_time(value.strip())[0])
        if not match:
            continue
        a, separator, b, _ = match.groups()
        if len(a) > 2:
            year_first += 1
            continue
        ambiguous += 1
        day_first += int(a) > 12
        month_first += int(b) > 12
        dotted += separator == "."
    if day_first or month_first:
        return "dmy" if day_first > month_first else "mdy"
    if year_first and not ambiguous:
        return "ymd"
    return "dmy" if dotted > ambiguous / 2 else "mdy"


@dataclass(frozen=True)
class DateParser:
    """The date/datetime parsers of one column, with its day/month order decided once from a sample."""

    order: str = "mdy"

    @classmethod
    def for_column(cls, sample: Iterable[Any]) -> DateParser:
        return cls(infer_date_order(sample))

    def parse_date(self, value: Any) -> date | None:
        return parse_date(value, self.order)

    def parse_datetime(self, value: Any) -> datetime | None:
        return parse_datetime(value, self.order)
