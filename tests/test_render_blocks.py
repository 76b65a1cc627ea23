"""The Block Kit renderer: every skill's real result on the Demo Co workspace renders to valid, paginated
messages; Slack's limits are enforced by the helpers and caught by `validate`."""
from __future__ import annotations

import argparse
import json
from datetime import date

import pytest

from bot.demo import demo
from bot.render import blocks as bk
from bot.render.blocks import paginate, render_result, reply_from_text, validate
from bot.render.formatters import NOT_AI
from skills import registry
from skills.result import Chart, Evidence, Metric, Section, SkillResult, Table
from skills.runtime import run_skill

TODAY = date(2026, 5, 14)


@pytest.fixture(scope="module")
def demo_results(module_db, module_settings):
    data, _ = demo(argparse.Namespace(seed=7, scale=1, today=TODAY), module_settings)
    ws = data["workspace"]["id"]
    return {s.name: run_skill(module_db, module_settings, ws, s.name, today=TODAY) for s in registry.all_skills()}


def _all_text(reply) -> str:
    return json.dumps([reply.blocks, *reply.more_blocks], ensure_ascii=False)


def test_every_skill_result_renders_to_valid_pages_of_at_most_50_blocks(demo_results):
    assert len(demo_results) >= 10
    for name, result in demo_results.items():
        reply = render_result(result)
        assert reply.ok and reply.text.strip(), name
        for page in [reply.blocks, *reply.more_blocks]:
            assert 0 < len(page) <= 50, name
            validate(page)
        assert reply.blocks[0]["type"] == "header", name
        assert reply.data["skill"] == name and reply.data["headline"] == result.headline
        if not result.ai_written:
            assert NOT_AI in _all_text(reply), name


def test_skill_text_fallback_is_the_cli_text(demo_results):
    from bot.render.text import render_text

    result = demo_results["pipeline-coverage"]
    assert render_result(result).text == render_text(result).strip()


def test_forecast_leads_with_attainment_and_a_status_emoji(demo_results):
    result = demo_results["forecast-rollup"]
    reply = render_result(result)
    first_fields = next(b for b in reply.blocks if b.get("fields"))["fields"]
    assert first_fields[0]["text"].startswith("*Attainment")
    band = result.metric("attainment").status
    assert band.replace("_", " ") in first_fields[0]["text"]
    header_text = reply.blocks[0]["text"]["text"]
    assert header_text.split(" ", 1)[0] in {"🚀", "🟢", "🟡", "🟠", "🔴"}
    reps = next(b for b in reply.blocks if b.get("text", {}).get("text", "").startswith("*Reps*"))
    for row in result.tables[0].rows:
        assert row[0] in reps["text"]["text"]
    assert reply.files == [c.path for c in result.charts if c.path]


def test_hygiene_groups_issues_and_stale_deals_by_severity(demo_results):
    result = demo_results["pipeline-hygiene"]
    text = _all_text(render_result(result))
    assert "*Issues*" in text and "Stale deals by severity" in text
    stale = result.data["findings"]["stale"]
    assert f"{stale['deals']} deals" in text
    assert stale["top"][0]["name"] in text


def test_deal_risk_shows_each_top_deal_with_its_risk_factors(demo_results):
    result = demo_results["deal-risk-review"]
    reply = render_result(result)
    top = result.data["deals"][0]
    deal_block = next(b for b in reply.blocks if b.get("text", {}).get("text", "").startswith("*1. "))
    assert top["name"] in deal_block["text"]["text"] and "Risk *" in deal_block["text"]["text"]
    if top["factors"]:
        assert "_Factors: " + str(top["factors"][0]["factor"]).replace("_", " ") in deal_block["text"]["text"]


def test_evidence_names_the_records_labels(demo_results):
    result = demo_results["forecast-rollup"]
    text = _all_text(render_result(result))
    assert "*Evidence*" in text
    assert result.evidence[0].labels[0] in text


def _big_result(rows: int = 200, sections: int = 200) -> SkillResult:
    return SkillResult(
        "pipeline-coverage", "A very big result",
        sections=[Section(f"Part {i}", "x" * 500, [f"point {j}" for j in range(3)]) for i in range(sections)],
        metrics=[Metric(f"m{i}", f"Metric {i}", i * 1000, "$") for i in range(23)],
        tables=[Table("Everything", ["Deal", "Amount"], [[f"Deal {i}", 1000 * i] for i in range(rows)])],
        evidence=[Evidence("all deals", "deals", [str(i) for i in range(rows)], [f"Deal {i}" for i in range(rows)])],
        charts=[Chart("bar", "Coverage", {}, path=None)],
    )


def test_a_huge_result_paginates_into_valid_messages():
    reply = render_result(_big_result())
    pages = [reply.blocks, *reply.more_blocks]
    assert len(pages) >= 5
    assert all(len(p) <= 50 for p in pages)
    for p in pages:
        validate(p)
    assert sum(len(p) for p in pages) > 200
    text = _all_text(reply)
    assert "Part 199" in text and "190 more rows" in text and "pandora run pipeline-coverage --json" in text
    assert "Deal 0, Deal 1, Deal 2, Deal 3, Deal 4 and 195 more" in text
    assert reply.files == []  # the chart was not rendered
    metrics = [b for b in reply.blocks if b.get("fields")]
    assert [len(b["fields"]) for b in metrics] == [10, 10, 3]


def test_long_texts_are_cut_to_slack_limits():
    result = SkillResult("x", "H" * 400, sections=[Section("S", "y" * 9000)],
                         metrics=[Metric("m", "L" * 3000, "v" * 3000)],
                         tables=[Table("T", ["a"], [["z" * 5000]])], notes=["n" * 5000])
    reply = render_result(result)
    for p in [reply.blocks, *reply.more_blocks]:
        validate(p)
    assert len(reply.blocks[0]["text"]["text"]) <= 150
    assert "H" * 400 in _all_text(reply)  # the full headline is kept as text below a short header


def test_user_data_is_escaped_in_mrkdwn():
    result = SkillResult("x", "ok", tables=[Table("T", ["Deal"], [["<!channel> & <http://evil|x>"]])])
    text = _all_text(render_result(result))
    assert "&lt;!channel&gt; &amp; &lt;http://evil|x&gt;" in text and "<!channel>" not in text


@pytest.mark.parametrize("block, fragment", [
    (bk.section("x") | {"text": {"type": "mrkdwn", "text": "x" * 3001}}, "3001 characters"),
    ({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}, "header text is 151"),
    ({"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}, "11 fields"),
    ({"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}, "2001 characters"),
    ({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 76},
                                       "action_id": "a", "value": "v"}]}, "button text"),
    ({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"},
                                       "action_id": "a" * 256, "value": "v"}]}, "action_id"),
    ({"type": "fancy"}, "unknown block type"),
    ({"type": "section"}, "neither text nor fields"),
    ({"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}, "11 elements"),
])
def test_validate_names_the_block_that_breaks_a_limit(block, fragment):
    with pytest.raises(ValueError) as err:
        validate([bk.divider(), block])
    assert "block 1" in str(err.value) and fragment in str(err.value)


def test_validate_rejects_more_than_50_blocks():
    with pytest.raises(ValueError, match="51 blocks"):
        validate([bk.divider()] * 51)


def test_helpers_truncate_text_and_refuse_bad_identifiers():
    assert len(bk.header("h" * 300)["text"]["text"]) == 150
    assert len(bk.section("s" * 5000)["text"]["text"]) == 3000
    assert len(bk.button("b" * 100, "go", "1")["text"]["text"]) == 75
    with pytest.raises(ValueError, match="action_id"):
        bk.button("ok", "a" * 256, "1")
    with pytest.raises(ValueError, match="fields"):
        bk.fields([("a", "b")] * 11)
    with pytest.raises(ValueError, match="style"):
        bk.button("ok", "go", "1", style="loud")
    blocks = [bk.header("t"), bk.fields([("a", "1")]), bk.context("c"),
              bk.actions([bk.button("Confirm", "import_confirm", "b1", style="primary")], block_id="imp"),
              bk.section("s", accessory=bk.button("Go", "go", "1"))]
    validate(blocks)


def test_paginate_keeps_a_header_with_what_it_introduces():
    blocks = [bk.section(str(i)) for i in range(49)] + [bk.header("Next part")] + [bk.section("a"), bk.section("b")]
    pages = paginate(blocks)
    assert [len(p) for p in pages] == [49, 3]
    assert pages[1][0]["type"] == "header"
    assert paginate([]) == [[]]


def test_reply_from_text_splits_long_text_and_keeps_a_fallback():
    text = "\n".join(f"line {i} " + "w" * 100 for i in range(200))
    reply = reply_from_text(text, title="Status", data={"a": 1})
    assert reply.text.startswith("Status\nline 0") and reply.data == {"a": 1} and reply.ok
    assert reply.blocks[0] == bk.header("Status")
    for p in [reply.blocks, *reply.more_blocks]:
        validate(p)
    assert "line 199" in _all_text(reply)
    assert reply_from_text("", ok=False).text == "(no content)"
