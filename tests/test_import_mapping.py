"""Specs for the heuristic side of imports: which entity a file is, which column is which field, the user's
overrides, and stable ids for rows without a record id column."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from connectors.file_import.mapping import (
    CUSTOM,
    FIELDS,
    ColumnMapping,
    apply_overrides,
    detect_entity,
    map_columns,
    natural_key,
    parse_overrides,
    stable_source_id,
)
from core.errors import InputError

SF_OPPORTUNITIES = ["Opportunity Name", "Account Name", "Amount", "Close Date", "Stage", "Probability (%)",
                    "Opportunity Owner", "Opportunity ID", "Type", "Lead Source", "Next Step", "Created Date",
                    "Forecast Category", "Fiscal Period"]
SF_CONTACTS = ["First Name", "Last Name", "Email", "Title", "Account Name", "Mailing Country", "Contact ID",
               "Account ID", "Phone"]
SF_ACCOUNTS = ["Account Name", "Account ID", "Website", "Industry", "Employees", "Annual Revenue", "Billing Country",
               "Type", "Account Owner", "Billing City", "Billing State/Province"]
SF_LEADS = ["First Name", "Last Name", "Email", "Title", "Company / Account", "Lead Status", "Converted", "Lead ID",
            "Lead Source", "Rating", "Lead Owner"]
HS_DEALS = ["Record ID", "Deal Name", "Deal Stage", "Pipeline", "Amount", "Close Date", "Deal owner", "Create Date",
            "Last Modified Date", "Associated Company", "Associated Company IDs", "Associated Contacts"]
HS_CONTACTS = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Job Title", "Company Name",
               "Lifecycle Stage", "Lead Status", "Contact owner", "Create Date", "Associated Deals"]
HS_COMPANIES = ["Record ID", "Company name", "Company Domain Name", "Website URL", "Number of Employees",
                "Annual Revenue", "Industry", "Country/Region", "City", "State/Region", "Company owner", "Create Date"]
PD_DEALS = ["Deal - ID", "Deal - Title", "Deal - Value", "Deal - Currency of Value", "Deal - Stage", "Deal - Status",
            "Deal - Expected close date", "Deal - Owner", "Deal - Organization", "Person - Name", "Person - Email",
            "Person - Phone", "Organization - Name", "Organization - Address"]
GENERIC_DEALS = ["Company", "Deal", "Value", "ARR", "ACV", "Rep", "Expected Close", "Status"]


def assert_maps(headers, entity, expected):
    detection = detect_entity(headers)
    assert detection.entity == entity, detection.scores
    assert detection.confidence >= 0.7
    mapping = map_columns(headers, entity)
    assert mapping.columns == {h: expected.get(h) for h in headers}
    return mapping


def test_salesforce_opportunity_report():
    mapping = assert_maps(SF_OPPORTUNITIES, "deals", {
        "Opportunity Name": "name", "Account Name": "account_name", "Amount": "amount", "Close Date": "close_date",
        "Stage": "stage", "Probability (%)": "probability", "Opportunity Owner": "owner",
        "Opportunity ID": "source_id", "Type": "deal_type", "Lead Source": "lead_source", "Next Step": "next_step",
        "Created Date": "source_created_at", "Forecast Category": "forecast_category"})
    assert mapping.id_column == "Opportunity ID"
    assert mapping.confidence["Stage"] == 0.95
    assert mapping.custom_headers == ["Fiscal Period"]
    assert mapping.warnings == []


def test_salesforce_contacts_report():
    assert_maps(SF_CONTACTS, "contacts", {
        "First Name": "first_name", "Last Name": "last_name", "Email": "email", "Title": "title",
        "Account Name": "company_name", "Contact ID": "source_id", "Account ID": "account_source_id",
        "Phone": "phone"})


def test_salesforce_accounts_report():
    assert_maps(SF_ACCOUNTS, "accounts", {
        "Account Name": "name", "Account ID": "source_id", "Website": "website", "Industry": "industry",
        "Employees": "employee_count", "Annual Revenue": "annual_revenue", "Billing Country": "country",
        "Type": "account_type", "Account Owner": "owner", "Billing City": "city", "Billing State/Province": "state"})


def test_salesforce_leads_report():
    assert_maps(SF_LEADS, "leads", {
        "First Name": "first_name", "Last Name": "last_name", "Email": "email", "Title": "title",
        "Company / Account": "company", "Lead Status": "status", "Converted": "is_converted", "Lead ID": "source_id",
        "Lead Source": "lead_source", "Rating": "rating", "Lead Owner": "owner"})


def test_hubspot_deals_export():
    assert_maps(HS_DEALS, "deals", {
        "Record ID": "source_id", "Deal Name": "name", "Deal Stage": "stage", "Pipeline": "pipeline",
        "Amount": "amount", "Close Date": "close_date", "Deal owner": "owner", "Create Date": "source_created_at",
        "Last Modified Date": "source_updated_at", "Associated Company": "account_name",
        "Associated Company IDs": "account_source_id"})


def test_hubspot_contacts_export_detects_associated_deals():
    mapping = assert_maps(HS_CONTACTS, "contacts", {
        "Record ID": "source_id", "First Name": "first_name", "Last Name": "last_name", "Email": "email",
        "Phone Number": "phone", "Job Title": "title", "Company Name": "company_name",
        "Lifecycle Stage": "lifecycle_stage", "Lead Status": "lead_status", "Contact owner": "owner",
        "Create Date": "source_created_at", "Associated Deals": "associated_deals"})
    assert mapping.header_for("associated_deals") == "Associated Deals"


def test_generic_deals_column_on_a_contact_file_is_associated_deals():
    mapping = map_columns(["Name", "Email", "Deals"], "contacts")
    assert mapping.columns == {"Name": "full_name", "Email": "email", "Deals": "associated_deals"}


def test_hubspot_companies_export():
    assert_maps(HS_COMPANIES, "accounts", {
        "Record ID": "source_id", "Company name": "name", "Company Domain Name": "domain",
        "Website URL": "website", "Number of Employees": "employee_count", "Annual Revenue": "annual_revenue",
        "Industry": "industry", "Country/Region": "country", "City": "city", "State/Region": "state",
        "Company owner": "owner", "Create Date": "source_created_at"})


def test_pipedrive_deals_export():
    mapping = assert_maps(PD_DEALS, "deals", {
        "Deal - ID": "source_id", "Deal - Title": "name", "Deal - Value": "amount",
        "Deal - Currency of Value": "currency", "Deal - Stage": "stage", "Deal - Status": "deal_status",
        "Deal - Expected close date": "close_date", "Deal - Owner": "owner", "Organization - Name": "account_name"})
    assert mapping.confidence["Deal - Expected close date"] == 0.90


def test_generic_spreadsheet_of_deals():
    mapping = assert_maps(GENERIC_DEALS, "deals", {
        "Company": "account_name", "Deal": "name", "Value": "amount", "Rep": "owner",
        "Expected Close": "close_date", "Status": "stage"})
    assert mapping.columns["ARR"] is None and mapping.columns["ACV"] is None  # amount is claimed once
    assert mapping.id_column is None
    assert any(w.startswith("no record id column") for w in mapping.warnings)


def test_status_of_only_won_and_lost_stays_a_status():
    rows = [["Acme", "won"], ["Globex", "open"], ["Initech", "lost"]]
    mapping = map_columns(["Deal", "Status"], "deals", rows)
    assert mapping.columns["Status"] == "deal_status"


def test_each_field_is_claimed_once_by_the_best_column():
    for headers, entity in [(SF_OPPORTUNITIES, "deals"), (HS_CONTACTS, "contacts"), (PD_DEALS, "deals"),
                            (GENERIC_DEALS, "deals"), (SF_ACCOUNTS, "accounts")]:
        fields = [f for f in map_columns(headers, entity).columns.values() if f]
        assert len(fields) == len(set(fields))
    mapping = map_columns(["Opportunity Name", "Amount (converted)", "Amount Currency", "Amount",
                           "Amount (converted) Currency"], "deals")
    assert mapping.fields["amount"] == "Amount"
    assert mapping.header_for("currency") == "Amount Currency"
    assert mapping.columns["Amount (converted)"] is None


def test_converted_amount_is_used_when_it_is_the_only_amount():
    mapping = map_columns(["Opportunity Name", "Amount (converted)"], "deals")
    assert mapping.columns["Amount (converted)"] == "amount"
    assert mapping.confidence["Amount (converted)"] < 0.75


def test_api_names_and_spacing_variants_match():
    mapping = map_columns(["Id", "Name", "StageName", "CloseDate", "AccountId", "IsWon", "IsClosed"], "deals")
    assert mapping.columns == {"Id": "source_id", "Name": "name", "StageName": "stage", "CloseDate": "close_date",
                               "AccountId": "account_source_id", "IsWon": "is_won", "IsClosed": "is_closed"}


def test_unmapped_columns_go_to_custom_fields():
    mapping = map_columns(["Deal Name", "Favourite Colour", "Internal Notes ID"], "deals")
    assert mapping.columns["Favourite Colour"] is None
    assert mapping.columns["Internal Notes ID"] is None
    assert mapping.custom_headers == ["Favourite Colour", "Internal Notes ID"]


def test_sample_values_find_the_email_column():
    rows = [["Ada Lovelace", "ada@example.com"], ["Alan Turing", "alan@example.org"]]
    mapping = map_columns(["Person", "Reach me at"], "contacts", rows)
    assert mapping.columns["Reach me at"] == "email"
    assert mapping.confidence["Reach me at"] == 0.6


def test_sample_values_that_do_not_fit_drop_a_partial_match_and_warn_on_an_exact_one():
    rows = [["Acme", "lots", "TBD"], ["Globex", "some", "soon"]]
    mapping = map_columns(["Deal Name", "Amount Bucket", "Close Date"], "deals", rows)
    assert mapping.columns["Amount Bucket"] is None
    assert mapping.columns["Close Date"] == "close_date"
    assert any("don't look like dates" in w for w in mapping.warnings)


def test_required_field_warnings():
    assert "no column looks like a deal name" in map_columns(["Amount", "Stage"], "deals").warnings
    assert "no column looks like a contact email or name" in map_columns(["Phone"], "contacts").warnings
    assert "no column looks like an account name or domain" in map_columns(["Industry"], "accounts").warnings
    assert "no column looks like a lead email or company" in map_columns(["Rating"], "leads").warnings
    assert "no column looks like an activity date or subject" in map_columns(["Body"], "activities").warnings


def test_activities_export():
    headers = ["Subject", "Activity Type", "Activity Date", "Assigned", "Account Name", "Opportunity", "Comments",
               "Call Duration", "Contact Email"]
    mapping = assert_maps(headers, "activities", {
        "Subject": "subject", "Activity Type": "activity_type", "Activity Date": "occurred_at",
        "Assigned": "owner", "Account Name": "account_name", "Opportunity": "deal_name", "Comments": "body",
        "Call Duration": "duration_seconds", "Contact Email": "contact_email"})
    assert mapping.id_column is None


def _table_columns(table: str) -> set[str]:
    sql = (Path(__file__).resolve().parent.parent / "migrations" / "0002_entities.sql").read_text()
    body = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", sql, re.S).group(1)
    return {line.split()[0] for line in body.splitlines() if line.strip() and line.startswith("    ")}


def test_targets_are_real_columns_or_declared_pseudo_fields():
    for entity, specs in FIELDS.items():
        columns = _table_columns(entity)
        for name, spec in specs.items():
            assert (name in columns) != spec.pseudo, (entity, name)
        assert {"source_id", "custom_fields"} <= columns


def test_mapping_round_trips_through_a_dict():
    mapping = map_columns(HS_DEALS, "deals")
    assert ColumnMapping.from_dict(mapping.to_dict()) == mapping


def test_salesforce_opportunity_columns_are_a_strong_deals_signal():
    detection = detect_entity(["Opportunity Record Type", "Opportunity Currency", "Account Name", "Owner"])
    assert detection.entity == "deals"


def test_pipedrive_prefixes_decide_the_entity():
    assert detect_entity(["Person - Name", "Person - Email", "Person - Organization", "Person - ID"]).entity \
        == "contacts"
    assert detect_entity(["Organization - Name", "Organization - Address", "Organization - ID"]).entity \
        == "accounts"


def test_an_empty_header_list_is_deals_at_no_confidence():
    assert detect_entity([]).confidence == 0.0


# --- overrides --------------------------------------------------------------------------------------------------

def test_parse_overrides_reads_commas_repeats_and_quotes():
    assert parse_overrides("Close Date=close_date,Amount=amount") == {"Close Date": "close_date", "Amount": "amount"}
    assert parse_overrides(["Close Date=close_date", "Amount = amount"]) == {
        "Close Date": "close_date", "Amount": "amount"}
    assert parse_overrides('"Revenue, USD"=amount,\'A=B\'=name') == {"Revenue, USD": "amount", "A=B": "name"}
    assert parse_overrides("Notes=,Region=-") == {"Notes": CUSTOM, "Region": CUSTOM}
    assert parse_overrides("") == {} and parse_overrides(None) == {}


@pytest.mark.parametrize("spec", ["Close Date", '"Close Date=close_date', "=amount"])
def test_parse_overrides_rejects_malformed_specs(spec):
    with pytest.raises(InputError):
        parse_overrides(spec)


def test_override_maps_a_column_and_takes_the_field_from_its_holder():
    mapping = map_columns(["Deal", "Close Date", "Expected Close"], "deals")
    assert mapping.columns["Close Date"] == "close_date"
    changed = apply_overrides(mapping, parse_overrides("Expected Close=close_date"))
    assert changed.columns["Expected Close"] == "close_date"
    assert changed.columns["Close Date"] is None
    assert changed.confidence["Expected Close"] == 1.0
    assert changed.overrides == {"Expected Close": "close_date"}
    assert mapping.columns["Close Date"] == "close_date"  # the original is untouched


def test_override_fixes_a_missing_required_field():
    mapping = map_columns(["Thing", "Amount"], "deals")
    assert "no column looks like a deal name" in mapping.warnings
    fixed = apply_overrides(mapping, {"thing": "Name"})
    assert fixed.columns["Thing"] == "name"
    assert "no column looks like a deal name" not in fixed.warnings


def test_override_unknown_field_names_the_field_and_lists_valid_ones():
    mapping = map_columns(["Deal", "Close Date"], "deals")
    with pytest.raises(InputError) as info:
        apply_overrides(mapping, {"Close Date": "clos_date"})
    assert "'clos_date'" in info.value.message and "close_date" in info.value.message
    assert info.value.details["field"] == "clos_date"


def test_override_unknown_header_names_the_header():
    mapping = map_columns(["Deal", "Close Date"], "deals")
    with pytest.raises(InputError) as info:
        apply_overrides(mapping, {"Closing": "close_date"})
    assert "'Closing'" in info.value.message
    assert info.value.details["column"] == "Closing"


def test_override_can_send_a_column_to_custom_fields():
    mapping = map_columns(["Deal", "Type"], "deals")
    changed = apply_overrides(mapping, parse_overrides("Type=-"))
    assert changed.columns["Type"] is None and "Type" not in changed.confidence
    assert apply_overrides(mapping, {"Type": None}).columns["Type"] is None


def test_overrides_apply_to_a_plain_header_to_field_dict():
    columns = map_columns(["Deal", "Close Date", "Expected Close"], "deals").columns
    changed = apply_overrides(columns, {"Expected Close": "close_date"}, "deals")
    assert changed == {"Deal": "name", "Close Date": None, "Expected Close": "close_date"}


def test_two_overrides_for_one_field_are_rejected():
    mapping = map_columns(["A", "B"], "deals")
    with pytest.raises(InputError, match="several columns to amount"):
        apply_overrides(mapping, {"A": "amount", "B": "amount"})


def test_stored_workspace_mapping_skips_what_this_file_lacks():
    mapping = map_columns(["Deal", "Amt"], "deals")
    stored = {"Amt": "amount", "Region": "pipeline", "Deal": "not_a_field"}
    changed = apply_overrides(mapping, stored, strict=False)
    assert changed.columns == {"Deal": "name", "Amt": "amount"}


# --- identity ---------------------------------------------------------------------------------------------------

def test_natural_keys_per_entity():
    assert natural_key("deals", {"name": " Acme  Renewal ", "account_name": "Acme, Inc."}) == "deal:acme renewal|acme"
    assert natural_key("deals", {"account_name": "Acme"}) is None
    assert natural_key("contacts", {"email": "Ada@Example.com", "first_name": "Ada"}) == "email:ada@example.com"
    assert natural_key("contacts", {"first_name": "Ada", "last_name": "Lovelace", "company_name": "Analytical Ltd"}) \
        == "name:ada lovelace|analytical"
    assert natural_key("leads", {"full_name": "Ada Lovelace", "company": "Analytical"}) == "name:ada lovelace|analytical"
    assert natural_key("accounts", {"website": "https://www.acme.com/about", "name": "Acme"}) == "domain:acme.com"
    assert natural_key("accounts", {"name": "ACME Corp."}) == "name:acme"
    assert natural_key("activities", {"occurred_at": date(2026, 3, 15), "subject": "Call", "owner": "Sam"}) \
        == "activity:2026-03-15|call|sam"
    assert natural_key("activities", {"owner": "Sam"}) is None


def test_close_date_is_not_part_of_a_deals_identity():
    row = {"name": "Acme Renewal", "account_name": "Acme", "close_date": date(2026, 3, 31)}
    moved = dict(row, close_date=date(2026, 6, 30))
    assert stable_source_id("deals", row) == stable_source_id("deals", moved)


def test_stable_ids_repeat_for_the_same_row_and_differ_between_rows():
    row = {"email": "ada@example.com", "first_name": "Ada"}
    first = stable_source_id("contacts", row)
    assert first == stable_source_id("contacts", dict(row))
    assert first.startswith("h:") and len(first) == 18
    assert first != stable_source_id("contacts", {"email": "alan@example.com"})
    assert first != stable_source_id("contacts", row, occurrence=1)
    assert stable_source_id("contacts", {"email": "ADA@example.com "}) == first


def test_a_row_with_nothing_to_identify_it_is_an_input_error():
    with pytest.raises(InputError, match="deal name"):
        stable_source_id("deals", {"amount": 5})
