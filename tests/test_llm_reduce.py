"""Specs for the token guardrails' arithmetic: estimates, input reduction that keeps records whole, summaries,
and the run budget's accounting."""
from __future__ import annotations

import json

from core.llm import (RunBudget, TokenUsage, CallRecord, estimate_tokens, fit_payload, fit_records, fit_text,
                      shorten, summarize_list)


def deals(n: int, notes_words: int = 60) -> list[dict]:
    return [{"id": f"d{i}", "name": f"Deal {i}", "amount": (i * 7919) % 100_000, "stage": ["evaluation", "decision",
             "negotiation"][i % 3], "owner": f"rep{i % 4}", "notes": " ".join(f"word{j}" for j in range(notes_words)),
             "source_data": {"raw": "x" * 200}, "empty": None}
            for i in range(n)]


def test_estimate_is_characters_over_four_of_the_serialised_text():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    payload = {"name": "Acme", "amount": 1200}
    assert estimate_tokens(payload) == -(-len(json.dumps(payload, separators=(",", ":"))) // 4)


def test_records_that_fit_are_returned_unchanged_without_a_note():
    records = deals(3)
    fitted = fit_records(records, 10_000, label="deals")
    assert fitted.records == records
    assert fitted.note is None and fitted.shown == fitted.total == 3


def test_reduction_drops_the_named_low_value_fields_first_and_says_so():
    records = deals(20)
    budget = estimate_tokens([{k: v for k, v in r.items() if k not in ("source_data", "empty")} for r in records])
    fitted = fit_records(records, budget, drop_fields=["source_data"], label="deals")
    assert fitted.shown == 20
    assert all("source_data" not in r and "empty" not in r for r in fitted.records)
    assert all(r["notes"] == records[0]["notes"] for r in fitted.records)   # nothing more than needed
    assert fitted.dropped_fields == ["source_data"]
    assert "fields dropped: source_data" in fitted.note


def test_long_free_text_is_cut_at_a_word_boundary_with_an_ellipsis():
    fitted = fit_records(deals(20, notes_words=200), 2_500, drop_fields=["source_data"], text_limit=120,
                         label="deals")
    assert fitted.shown == 20
    for record in fitted.records:
        assert len(record["notes"]) <= 120
        assert record["notes"].endswith(" …")
        assert record["notes"].removesuffix(" …").split(" ")[-1].startswith("word")  # a whole word
    assert "long text shortened: notes" in fitted.note


def test_sampling_keeps_whole_records_the_most_important_first_and_says_how_many():
    records = deals(312)
    fitted = fit_records(records, 1_500, key_fields=["id", "name", "amount", "stage"], drop_fields=["source_data"],
                         sort_by="amount", label="deals")
    assert 0 < fitted.shown < 312
    assert fitted.tokens <= 1_500
    originals = {r["id"]: r for r in records}
    for record in fitted.records:                          # every kept record is whole on its key fields
        assert record == {k: originals[record["id"]][k] for k in record}
        assert set(record) >= {"id", "name", "amount", "stage"}
    top = sorted(records, key=lambda r: r["amount"], reverse=True)
    head = -(-fitted.shown * 3 // 4)
    assert [r["id"] for r in fitted.records[:head]] == [r["id"] for r in top[:head]]
    assert fitted.note.startswith(f"showing {fitted.shown} of 312 deals (the first {head} by amount, ")
    assert "sampled evenly from the rest" in fitted.note
    assert "fields dropped: source_data" in fitted.note


def test_sampling_is_deterministic():
    a = fit_records(deals(200), 1_000, sort_by="amount", label="deals")
    b = fit_records(deals(200), 1_000, sort_by="amount", label="deals")
    assert a.records == b.records and a.note == b.note


def test_fit_payload_reduces_lists_and_long_text_and_keeps_the_rest():
    data = {"quarter": "2026-Q3", "deals": deals(300), "transcript": " ".join(f"w{i}" for i in range(20_000))}
    fitted, notes = fit_payload(data, 4_000)
    assert estimate_tokens(fitted) <= 4_000
    assert fitted["quarter"] == "2026-Q3"
    assert fitted["deals"]["note"].startswith("showing ")
    assert all(isinstance(r, dict) and r["id"].startswith("d") for r in fitted["deals"]["records"])
    assert fitted["transcript"].startswith("w0 w1 ") and fitted["transcript"].endswith("w19999")
    assert "words omitted" in fitted["transcript"]
    assert len(notes) == 2


def test_fit_text_keeps_short_text_as_is():
    assert fit_text("short call", 100) == ("short call", None)


def test_shorten_never_exceeds_the_limit():
    assert shorten("alpha beta gamma delta", 100) == "alpha beta gamma delta"
    assert shorten("alpha beta gamma delta", 15) == "alpha beta …"


def test_summarize_list_gives_counts_totals_and_top_groups():
    summary = summarize_list(deals(12), group_by=["stage"], sum_fields=["amount"], label="deals", top=2)
    assert summary["summary_of"] == "12 deals" and summary["count"] == 12
    assert summary["fields"]["amount"]["total"] == sum(d["amount"] for d in deals(12))
    groups = summary["by"]["stage"]
    assert [g["count"] for g in groups] == [4, 4, 4]
    assert groups[-1]["value"] == "(1 others)"


def test_run_budget_totals_are_what_skill_runs_store():
    budget = RunBudget(limit=1_000)
    budget.record(CallRecord("classify", "t", "m", "fallback", TokenUsage(100, 0, True), 1, "timed out"))
    assert budget.totals() == {"tokens_in": 100, "tokens_out": 0, "ai_used": False}
    budget.record(CallRecord("synthesize", "t", "m", "llm", TokenUsage(300, 50), 1))
    assert budget.totals() == {"tokens_in": 400, "tokens_out": 50, "ai_used": True}
    assert budget.remaining == 550
    assert budget.refusal(400, 100) is None
    assert "used 450 of 1,000" in budget.refusal(500, 100)


def test_lists_of_plain_values_are_kept_whole_or_left_out():
    data = {"emails": [f"person{i}@example.com" for i in range(2_000)]}
    fitted, notes = fit_payload(data, 500)
    assert estimate_tokens(fitted) <= 500
    assert fitted["emails"]["note"].startswith("showing ") and "of 2000 emails" in fitted["emails"]["note"]
    assert all(e.endswith("@example.com") for e in fitted["emails"]["items"])


def test_summaries_accept_database_decimals():
    from decimal import Decimal
    summary = summarize_list([{"amount": Decimal("10.50"), "stage": "a"}, {"amount": 2, "stage": "a"}],
                             group_by=["stage"], sum_fields=["amount"])
    assert summary["fields"]["amount"]["total"] == 12.5
    assert json.dumps(summary)


def test_config_comes_from_settings_with_defaults():
    from core.llm import LLMConfig
    from core.settings import Settings
    cfg = LLMConfig.from_settings(Settings.from_env({}))
    assert (cfg.fireworks_api_key, cfg.anthropic_api_key) == (None, None)
    assert cfg.classify_model == "accounts/fireworks/models/deepseek-v3"
    assert cfg.fireworks_base_url == "https://api.fireworks.ai/inference/v1"
    assert cfg.anthropic_base_url == "https://api.anthropic.com"
    assert (cfg.max_input_tokens, cfg.warn_input_tokens, cfg.max_output_tokens, cfg.run_token_budget) == (
        20_000, 8_000, 4_096, 60_000)
    cfg = LLMConfig.from_settings(Settings.from_env({"ANTHROPIC_API_KEY": "k", "PANDORA_CLASSIFY_MODEL": "m"}))
    assert (cfg.anthropic_api_key, cfg.classify_model) == ("k", "m")
