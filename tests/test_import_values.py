"""Specs for cell values as people write them: each parser reads what CRM exports and spreadsheets contain, returns
None for an empty cell, and explains a value it cannot read in words a user can act on."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connectors.file_import.values import (
    DateParser,
    excel_serial_to_datetime,
    infer_date_order,
    is_formula_like,
    normalize_company_name,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_domain,
    parse_email,
    parse_int,
    parse_percent,
    parse_text,
    spreadsheet_safe,
)

EMPTY = [None, "", "   ", "\t"]
UTC = timezone.utc


@pytest.mark.parametrize("parser", [parse_date, parse_datetime, parse_percent, parse_email, parse_domain,
                                    parse_bool, parse_int, parse_text])
@pytest.mark.parametrize("cell", EMPTY)
def test_an_empty_cell_is_none_not_an_error(parser, cell):
    assert parser(cell) is None


@pytest.mark.parametrize("cell", EMPTY)
def test_an_empty_amount_is_none_without_currency(cell):
    assert parse_amount(cell) == (None, None)


# --- amounts ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "amount", "currency"), [
    ("$12,500.00", "12500.00", "USD"),
    ("USD 8,000", "8000", "USD"),
    ("8,000 USD", "8000", "USD"),
    ("1.234,56 €", "1234.56", "EUR"),
    ("€1.234,56", "1234.56", "EUR"),
    ("1 234,56", "1234.56", None),
    ("1\u00a0234,56 EUR", "1234.56", "EUR"),
    ("CHF 1'234.50", "1234.50", "CHF"),
    ("12.5k", "12500", None),
    ("1.2M", "1200000", None),
    ("3B", "3000000000", None),
    ("$1.5MM", "1500000", "USD"),
    ("(1,200.00)", "-1200.00", None),
    ("-500", "-500", None),
    ("-$500", "-500", "USD"),
    ("£250", "250", "GBP"),
    ("¥3000", "3000", "JPY"),
    ("eur 10", "10", "EUR"),
    ("1,234", "1234", None),
    ("1,5", "1.5", None),
    ("1.234.567", "1234567", None),
    ("1.234 €", "1234", "EUR"),
    ("0.125", "0.125", None),
    ("12.50", "12.50", None),
    ("1,234,567.89", "1234567.89", None),
    ("0.5", "0.5", None),
    (12500, "12500", None),
    (8000.5, "8000.5", None),
    (Decimal("99.99"), "99.99", None),
])
def test_amounts_as_people_write_them(cell, amount, currency):
    assert parse_amount(cell) == (Decimal(amount), currency)


@pytest.mark.parametrize("cell", ["TBD", "€", "1.2.3", "12 34", "USD 5 EUR", "5 XYZ", "1,23,4", True])
def test_an_unreadable_amount_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_amount(cell)
    assert str(caught.value) == f"'{cell}' is not an amount (expected e.g. 12500, $12,500.00 or 1.234,56 €)"


# --- dates -----------------------------------------------------------------------------------------------------------

MARCH_15 = date(2026, 3, 15)


@pytest.mark.parametrize(("cell", "order"), [
    ("2026-03-15", "mdy"),
    ("3/15/2026", "mdy"),
    ("03/15/2026", "mdy"),
    ("15/03/2026", "dmy"),
    ("15.03.2026", "dmy"),
    ("2026/03/15", "mdy"),
    ("Mar 15, 2026", "mdy"),
    ("15 Mar 2026", "mdy"),
    ("15-Mar-2026", "mdy"),
    ("March 15 2026", "mdy"),
    ("Sunday, March 15th, 2026", "mdy"),
    ("3/15/26", "mdy"),
    ("15/03/26", "dmy"),
    ("20260315", "mdy"),
    ("3/15/2026 10:22 AM", "mdy"),
    ("2026-03-15T10:22:33.123Z", "mdy"),
    (46096, "mdy"),
    (46096.75, "mdy"),
    ("46096", "mdy"),
    (datetime(2026, 3, 15, 23, 59), "mdy"),
    (MARCH_15, "mdy"),
])
def test_dates_in_every_common_shape(cell, order):
    assert parse_date(cell, order) == MARCH_15


def test_the_column_order_decides_an_ambiguous_date():
    assert parse_date("04/05/2026", "mdy") == date(2026, 4, 5)
    assert parse_date("04/05/2026", "dmy") == date(2026, 5, 4)


def test_a_date_that_only_fits_the_other_order_is_read_that_way():
    assert parse_date("15/03/2026", "mdy") == MARCH_15


@pytest.mark.parametrize("cell", ["TBD", "13/13/2026", "2/30/2026", "next week", 5, "2026", 99999, "10:22"])
def test_an_unreadable_date_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_date(cell)
    assert str(caught.value) == f"'{cell}' is not a date (expected e.g. 2026-03-15 or 3/15/2026)"


def test_excel_serials_skip_the_1900_leap_year_that_never_was():
    assert excel_serial_to_datetime(59) == datetime(1900, 2, 28)
    assert excel_serial_to_datetime(61) == datetime(1900, 3, 1)
    assert excel_serial_to_datetime(46096.5) == datetime(2026, 3, 15, 12, 0)
    with pytest.raises(ValueError):
        excel_serial_to_datetime(60)


@pytest.mark.parametrize(("sample", "order"), [
    (["3/15/2026", "4/1/2026"], "mdy"),
    (["1/2/2026", "15/03/2026"], "dmy"),
    (["01/02/2026", "02/03/2026"], "mdy"),
    (["01.02.2026", "02.03.2026"], "dmy"),
    (["2026-03-15", "2026-04-01"], "ymd"),
    (["15/03/2026", "16/03/2026", "3/17/2026"], "dmy"),
    ([None, "", datetime(2026, 3, 15), 46096], "mdy"),
])
def test_a_columns_day_month_order_is_inferred_from_its_sample(sample, order):
    assert infer_date_order(sample) == order


def test_a_date_parser_keeps_the_order_of_its_column():
    parser = DateParser.for_column(["25/12/2025", "04/05/2026"])
    assert parser.order == "dmy"
    assert parser.parse_date("04/05/2026") == date(2026, 5, 4)
    assert parser.parse_datetime("04/05/2026 10:00") == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("cell", "moment"), [
    ("2026-03-15T10:22:33Z", datetime(2026, 3, 15, 10, 22, 33, tzinfo=UTC)),
    ("2026-03-15T10:22:33.123Z", datetime(2026, 3, 15, 10, 22, 33, 123000, tzinfo=UTC)),
    ("2026-03-15T10:22:33+02:00", datetime(2026, 3, 15, 8, 22, 33, tzinfo=UTC)),
    ("2026-03-15 10:22", datetime(2026, 3, 15, 10, 22, tzinfo=UTC)),
    ("3/15/2026 10:22 AM", datetime(2026, 3, 15, 10, 22, tzinfo=UTC)),
    ("3/15/2026 12:05 AM", datetime(2026, 3, 15, 0, 5, tzinfo=UTC)),
    ("3/15/2026 10:22 PM", datetime(2026, 3, 15, 22, 22, tzinfo=UTC)),
    ("3/15/2026 10:22 PM -0500", datetime(2026, 3, 16, 3, 22, tzinfo=UTC)),
    ("Mar 15, 2026 10:22:33", datetime(2026, 3, 15, 10, 22, 33, tzinfo=UTC)),
    ("2026-03-15", datetime(2026, 3, 15, tzinfo=UTC)),
    ("1773570153000", datetime(2026, 3, 15, 10, 22, 33, tzinfo=UTC)),
    (1773570153, datetime(2026, 3, 15, 10, 22, 33, tzinfo=UTC)),
    (46096.5, datetime(2026, 3, 15, 12, 0, tzinfo=UTC)),
    (datetime(2026, 3, 15, 10, 22), datetime(2026, 3, 15, 10, 22, tzinfo=UTC)),
    (MARCH_15, datetime(2026, 3, 15, tzinfo=UTC)),
])
def test_datetimes_are_timezone_aware_and_naive_ones_are_utc(cell, moment):
    parsed = parse_datetime(cell)
    assert parsed == moment and parsed.tzinfo is not None


def test_an_aware_datetime_keeps_its_offset():
    plus_two = timezone(timedelta(hours=2))
    assert parse_datetime(datetime(2026, 3, 15, 10, 0, tzinfo=plus_two)).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("cell", ["TBD", "3/15/2026 13:00 PM", "3/15/2026 25:00", "yesterday at noon"])
def test_an_unreadable_datetime_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_datetime(cell)
    assert str(caught.value) == (
        f"'{cell}' is not a date and time (expected e.g. 2026-03-15 10:22 or 2026-03-15T10:22:00Z)")


# --- percentages, flags, counts -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "percent"), [
    ("45%", "45"), ("0.45", "45"), ("45", "45"), ("45.5 %", "45.5"), ("45,5%", "45.5"), (0.45, "45"),
    (45, "45"), ("100%", "100"), ("0", "0"), ("1", "100"), (Decimal("0.125"), "12.5"), ("12.345%", "12.345"),
])
def test_percentages_are_on_a_0_to_100_scale(cell, percent):
    assert parse_percent(cell) == Decimal(percent)


@pytest.mark.parametrize(("cell", "message"), [
    ("101", "'101' is not a percentage between 0 and 100"),
    ("150%", "'150%' is not a percentage between 0 and 100"),
    (-0.2, "'-0.2' is not a percentage between 0 and 100"),
    ("-5%", "'-5%' is not a percentage between 0 and 100"),
    ("high", "'high' is not a percentage (expected e.g. 45%, 0.45 or 45)"),
])
def test_an_unreadable_percentage_explains_itself(cell, message):
    with pytest.raises(ValueError) as caught:
        parse_percent(cell)
    assert str(caught.value) == message


@pytest.mark.parametrize(("cell", "flag"), [
    ("true", True), ("FALSE", False), ("Yes", True), ("no", False), ("Y", True), ("n", False), ("1", True),
    ("0", False), ("x", True), ("checked", True), ("Unchecked", False), (True, True), (False, False), (1, True),
    (0.0, False),
])
def test_flags_in_their_usual_spellings(cell, flag):
    assert parse_bool(cell) is flag


@pytest.mark.parametrize("cell", ["won", "lost", "maybe", 2])
def test_a_value_that_is_not_a_flag_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_bool(cell)
    assert str(caught.value) == f"'{cell}' is not yes/no (expected e.g. true/false, yes/no, y/n or 1/0)"


@pytest.mark.parametrize(("cell", "number"), [
    ("1,200", 1200), ("1.2k", 1200), ("1200", 1200), (" 42 ", 42), ("-5", -5), (1200, 1200), (1200.0, 1200),
    ("51-200", 126), ("1-10", 6), ("1,001–5,000", 3001), ("11 to 50", 31), ("10,001+", 10001), ("1M", 1000000),
    ("1.234", 1234),
])
def test_whole_numbers_and_employee_ranges(cell, number):
    assert parse_int(cell) == number


@pytest.mark.parametrize("cell", ["many", "1.5", 2.5, "200-51", True])
def test_a_value_that_is_not_a_whole_number_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_int(cell)
    assert str(caught.value) == f"'{cell}' is not a whole number (expected e.g. 1200, 1,200, 1.2k or 51-200)"


# --- emails, domains -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "email"), [
    ("jane@acme.io", "jane@acme.io"),
    ("  Jane.Doe+crm@Acme.IO ", "jane.doe+crm@acme.io"),
    ('"Jane Doe" <JANE@ACME.IO>', "jane@acme.io"),
    ("Jane Doe <jane@acme.co.uk>", "jane@acme.co.uk"),
    ("mailto:Jane@Acme.io", "jane@acme.io"),
])
def test_emails_are_trimmed_lowercased_and_unwrapped(cell, email):
    assert parse_email(cell) == email


@pytest.mark.parametrize("cell", [
    "jane", "jane@acme", "jane@@acme.io", "a@b.io; c@d.io", "jane doe@acme.io", "@acme.io"])
def test_an_invalid_email_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_email(cell)
    assert str(caught.value) == f"'{cell}' is not an email address (expected e.g. jane@acme.io)"


@pytest.mark.parametrize(("cell", "domain"), [
    ("https://www.Acme.io/about", "acme.io"),
    ("WWW.ACME.IO", "acme.io"),
    ("acme.io:8080", "acme.io"),
    ("http://acme.co.uk/?q=1#top", "acme.co.uk"),
    ("jane@Acme.io", "acme.io"),
    ("acme.io.", "acme.io"),
    ("app.acme.io", "app.acme.io"),
])
def test_domains_are_bare_lowercase_hosts(cell, domain):
    assert parse_domain(cell) == domain


@pytest.mark.parametrize("cell", ["acme", "localhost", "http://", "192.168.0.1", "acme .io"])
def test_a_value_that_is_not_a_domain_explains_itself(cell):
    with pytest.raises(ValueError) as caught:
        parse_domain(cell)
    assert str(caught.value) == f"'{cell}' is not a domain (expected e.g. acme.io)"


# --- text and formulas ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "text"), [
    ("  Acme  Corp ", "Acme  Corp"),
    ("=HYPERLINK(\"http://evil\",\"x\")", "=HYPERLINK(\"http://evil\",\"x\")"),
    ("+1 555 0100", "+1 555 0100"),
    ("@mention", "@mention"),
    (2134, "2134"),
    (2134.0, "2134"),
    (True, "true"),
    (MARCH_15, "2026-03-15"),
])
def test_text_is_stripped_and_never_evaluated(cell, text):
    assert parse_text(cell) == text


@pytest.mark.parametrize(("text", "formula_like"), [
    ("=1+1", True), ("+1 555 0100", True), ("-5", True), ("@SUM(A1)", True), ("\t=1", True), (" =1", True),
    ("Acme", False), ("a=b", False), ("", False),
])
def test_formula_like_text_is_recognised(text, formula_like):
    assert is_formula_like(text) is formula_like


def test_formula_like_text_gets_a_quote_when_written_to_a_spreadsheet():
    assert spreadsheet_safe("=1+1") == "'=1+1"
    assert spreadsheet_safe("Acme") == "Acme"


# --- company names ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "key"), [
    ("Acme, Inc.", "acme"),
    ("ACME Inc", "acme"),
    ("Acme", "acme"),
    ("Acme Corporation", "acme"),
    ("AT&T Corp", "at and t"),
    ("Globex Holdings Group", "globex"),
    ("Müller GmbH & Co. KG", "müller and kg"),
    ("  Initech   Technologies, LLC ", "initech"),
    ("Stark Industries", "stark industries"),
    ("The Group", "the"),
    ("Group", ""),
    (None, ""),
])
def test_company_names_normalise_to_a_matching_key(name, key):
    assert normalize_company_name(name) == key
