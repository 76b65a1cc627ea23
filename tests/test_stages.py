"""Specs for the one stage vocabulary: default maps, keyword and probability guesses, workspace precedence."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import InputError
from core.stages import (
    CLOSED_STAGES,
    DEFAULT_MAPS,
    OPEN_STAGES,
    STAGE_ORDER,
    STAGES,
    closed_flags,
    default_probability,
    forecast_category_for,
    guess_stage,
    normalize_stage,
    to_percent,
    validate_stage,
)


def test_vocabulary_is_the_originals_in_order():
    assert STAGES == ("awareness", "qualification", "evaluation", "decision", "negotiation",
                      "closed_won", "closed_lost")
    assert OPEN_STAGES + CLOSED_STAGES == STAGES
    assert [STAGE_ORDER[s] for s in STAGES] == list(range(7))


def test_every_default_map_targets_the_vocabulary():
    for source, table in DEFAULT_MAPS.items():
        assert set(table.values()) <= set(STAGES), source
        assert all(raw == raw.casefold() for raw in table), source


@pytest.mark.parametrize("source, raw, expected", [
    ("salesforce", "Prospecting", "awareness"),
    ("salesforce", "Qualification", "qualification"),
    ("salesforce", "Needs Analysis", "qualification"),
    ("salesforce", "Value Proposition", "evaluation"),
    ("salesforce", "Id. Decision Makers", "evaluation"),
    ("salesforce", "Perception Analysis", "evaluation"),
    ("salesforce", "Proposal/Price Quote", "decision"),
    ("salesforce", "Negotiation/Review", "negotiation"),
    ("salesforce", "Closed Won", "closed_won"),
    ("salesforce", "Closed Lost", "closed_lost"),
    ("hubspot", "appointmentscheduled", "qualification"),
    ("hubspot", "qualifiedtobuy", "qualification"),
    ("hubspot", "presentationscheduled", "evaluation"),
    ("hubspot", "decisionmakerboughtin", "evaluation"),
    ("hubspot", "contractsent", "negotiation"),
    ("hubspot", "closedwon", "closed_won"),
    ("hubspot", "closedlost", "closed_lost"),
    ("hubspot", "Appointment Scheduled", "qualification"),
    ("hubspot", "Qualified To Buy", "qualification"),
    ("hubspot", "Presentation Scheduled", "evaluation"),
    ("hubspot", "Decision Maker Bought-In", "evaluation"),
    ("hubspot", "Contract Sent", "negotiation"),
    ("pipedrive", "Lead In", "awareness"),
    ("pipedrive", "Contact Made", "qualification"),
    ("pipedrive", "Demo Scheduled", "evaluation"),
    ("pipedrive", "Needs Defined", "evaluation"),
    ("pipedrive", "Proposal Made", "decision"),
    ("pipedrive", "Negotiations Started", "negotiation"),
    ("pipedrive", "won", "closed_won"),
    ("pipedrive", "lost", "closed_lost"),
])
def test_default_maps_normalize_standard_stages(source, raw, expected):
    stage, confidence, reason = normalize_stage(raw, source, {})
    assert stage == expected
    assert confidence >= 0.95
    assert reason.startswith(f"default {source} stage")


def test_default_maps_match_loosely_by_letters_and_digits():
    assert normalize_stage("  negotiation / review ", "salesforce", {})[0] == "negotiation"
    assert normalize_stage("Decision maker bought in", "hubspot", {})[0] == "evaluation"


def test_other_sources_defaults_are_a_confident_guess():
    stage, confidence, reason = normalize_stage("Qualified To Buy", "csv_import", {})
    assert (stage, confidence) == ("qualification", 0.85)
    assert "default hubspot stage" in reason


@pytest.mark.parametrize("raw, expected", [
    ("Closed - Won (paid)", "closed_won"),
    ("closed_lost: no budget", "closed_lost"),
    ("Won", "closed_won"),
    ("Lost to competitor", "closed_lost"),
    ("Disqualified", "closed_lost"),
    ("Verbal commitment", "negotiation"),
    ("Contract out for signature", "negotiation"),
    ("In negotiation", "negotiation"),
    ("Proposal delivered", "decision"),
    ("Quote sent", "decision"),
    ("Security reviewed", "decision"),
    ("Technical demo", "evaluation"),
    ("POC running", "evaluation"),
    ("Free trial", "evaluation"),
    ("Qualified opportunity", "qualification"),
    ("Meeting scheduled", "qualification"),
    ("Discovery call scheduled", "awareness"),
    ("Intro", "awareness"),
    ("Prospect", "awareness"),
])
def test_keyword_guesses_follow_the_originals_order(raw, expected):
    stage, confidence, reason = guess_stage(raw)
    assert stage == expected, reason
    assert 0.5 < confidence < 1


def test_contract_outranks_decision_keyword():
    assert guess_stage("Decision: contract drafted")[0] == "negotiation"


@pytest.mark.parametrize("probability, expected", [
    (5, "awareness"), (0.25, "qualification"), ("45%", "evaluation"), (65, "decision"), (0.85, "negotiation"),
    (100, "closed_won"),
])
def test_probability_guesses_an_unrecognisable_stage(probability, expected):
    stage, confidence, reason = guess_stage("Stage 7", probability=probability)
    assert stage == expected
    assert confidence == 0.5
    assert reason.startswith("probability")


def test_nothing_recognisable_is_awareness_with_low_confidence():
    stage, confidence, reason = guess_stage("Zeta")
    assert (stage, confidence) == ("awareness", 0.2)
    assert "'Zeta'" in reason


def test_source_flags_beat_the_label():
    assert guess_stage("Negotiation", is_closed=True, is_won=True)[0] == "closed_won"
    assert guess_stage("Negotiation", is_closed=True, is_won=False)[0] == "closed_lost"
    assert guess_stage("Closed won", is_closed=False)[0] == "awareness"
    assert guess_stage("Won", is_closed=False, probability=90)[0] == "negotiation"
    assert guess_stage("Stage 9", is_closed=True)[0] == "closed_lost"


def test_workspace_map_beats_defaults_and_guesses():
    workspace = {"Closed Won": "negotiation", "Demo Done": "decision"}
    assert normalize_stage("Closed Won", "salesforce", workspace) == (
        "negotiation", 1.0, "workspace stage mapping for 'Closed Won'")
    assert normalize_stage("demo done", "csv_import", workspace)[0] == "decision"
    assert normalize_stage("DEMO-DONE", "csv_import", workspace)[0] == "decision"
    assert normalize_stage("Prospecting", "salesforce", workspace)[0] == "awareness"


def test_workspace_entries_with_unknown_stages_are_ignored():
    assert normalize_stage("Demo Done", "csv_import", {"Demo Done": "discovery"})[0] == "evaluation"


def test_validate_stage_accepts_loose_spelling_and_names_valid_stages():
    assert validate_stage("Closed Won") == "closed_won"
    with pytest.raises(InputError, match="valid stages: awareness"):
        validate_stage("proposal")


@pytest.mark.parametrize("raw, expected", [
    (None, None), ("", None), (0, Decimal("0.00")), (0.6, Decimal("60.00")), (1, Decimal("100.00")),
    ("1.0", Decimal("100.00")), (60, Decimal("60.00")), ("75%", Decimal("75.00")), ("0.5%", Decimal("0.50")),
    (Decimal("33.333"), Decimal("33.33")), ("0,25", Decimal("25.00")),
])
def test_to_percent_stores_zero_to_hundred(raw, expected):
    assert to_percent(raw) == expected


@pytest.mark.parametrize("raw", ["high", "150", "-5", "nan"])
def test_to_percent_rejects_non_probabilities(raw):
    with pytest.raises(InputError):
        to_percent(raw)


@pytest.mark.parametrize("stage, probability, expected", [
    ("closed_won", None, "closed"), ("closed_lost", 0, "not_forecasted"), ("negotiation", 95, "commit"),
    ("decision", 0.6, "best_case"), ("evaluation", 40, "pipeline"), ("qualification", 0, "not_forecasted"),
    ("negotiation", None, "best_case"), ("evaluation", None, "pipeline"), ("negotiation", 100, "commit"),
    (None, 1, "closed"), (None, None, "not_forecasted"),
])
def test_forecast_category_from_stage_and_probability(stage, probability, expected):
    assert forecast_category_for(stage, probability) == expected


def test_default_probabilities_rise_through_the_funnel():
    assert [default_probability(s) for s in OPEN_STAGES] == sorted(default_probability(s) for s in OPEN_STAGES)
    assert default_probability("closed_won") == 100 and default_probability("closed_lost") == 0
    assert default_probability(None) == 0


@pytest.mark.parametrize("status, is_closed, is_won, expected", [
    ("won", None, None, (True, True)), ("Lost", None, None, (True, False)), ("open", None, None, (False, None)),
    (None, "true", "false", (True, False)), (None, None, "Yes", (True, True)), ("weird", None, None, (None, None)),
    (None, None, None, (None, None)),
])
def test_closed_flags_from_status_and_checkboxes(status, is_closed, is_won, expected):
    assert closed_flags(status, is_closed, is_won) == expected


def test_a_won_pipedrive_deal_in_an_open_stage_is_closed_won():
    closed, won = closed_flags("won")
    assert normalize_stage("Negotiations Started", "pipedrive", {}, is_closed=closed, is_won=won)[0] == "closed_won"
    closed, won = closed_flags("open")
    assert normalize_stage("Closed Won", "salesforce", {}, is_closed=closed, is_won=won)[0] == "awareness"
