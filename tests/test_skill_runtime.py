from __future__ import annotations

import pytest

from core.errors import InputError, NotFound, SkillError
from skills import registry
from skills.registry import Param, Skill
from skills.result import SkillResult
from skills.runtime import run_skill


class Boom(Skill):
    name = "boom-test"
    params = (Param("n", int, 1),)

    def compute(self, ctx):
        if ctx.params["n"] < 0:
            raise ZeroDivisionError("negative n")
        return {"n": ctx.params["n"]}

    def synthesize(self, ctx, computed, classified):
        return SkillResult(self.name, f"n is {computed['n']}", data=computed)


@pytest.fixture(autouse=True)
def boom():
    registry.register(Boom)
    yield
    registry._SKILLS.pop("boom-test", None)


def runs(db, ws):
    with db.connection() as conn:
        return conn.execute("SELECT skill, status, params, output, error, timings FROM skill_runs"
                            " WHERE workspace_id = %s ORDER BY started_at", (ws["id"],)).fetchall()


def test_a_run_is_recorded_with_its_params_output_and_phase_timings(db, settings, workspace):
    result = run_skill(db, settings, workspace["id"], "boom-test", {"n": "3"})
    assert result.headline == "n is 3" and result.run_id
    [row] = runs(db, workspace)
    assert (row["status"], row["params"], row["output"]["data"]) == ("succeeded", {"n": 3}, {"n": 3})
    assert set(row["timings"]) == {"compute", "classify", "synthesize"}


def test_a_failing_run_is_recorded_and_raised_as_a_skill_error(db, settings, workspace):
    with pytest.raises(SkillError, match="negative n"):
        run_skill(db, settings, workspace["id"], "boom-test", {"n": -1})
    [row] = runs(db, workspace)
    assert row["status"] == "failed" and "ZeroDivisionError" in row["error"]


def test_unknown_parameters_and_bad_values_are_named(db, settings, workspace):
    with pytest.raises(InputError, match="no parameter 'x'"):
        run_skill(db, settings, workspace["id"], "boom-test", {"x": 1})
    with pytest.raises(InputError, match="n must be a whole number"):
        run_skill(db, settings, workspace["id"], "boom-test", {"n": "many"})


def test_skills_are_found_by_name_or_alias():
    assert registry.get("forecast").name == "forecast-rollup"
    assert registry.get("Forecast_Rollup").name == "forecast-rollup"
    with pytest.raises(NotFound, match="no skill"):
        registry.get("astrology")


def test_prompts_carry_the_business_context_as_data(db, settings, workspace):
    from dataclasses import replace

    from core.context import update_section
    from core.llm import LLMConfig
    from tests.fakes.anthropic_api import FakeAnthropic

    with db.connection() as conn:
        update_section(conn, workspace["id"], "business_model", {"company_name": "Initech", "gtm_motion": "PLG"})
    with FakeAnthropic(api_key="k", replies=["A fine quarter."]) as fake:
        llm = replace(LLMConfig.from_settings(settings), anthropic_api_key="k", anthropic_base_url=fake.url)
        result = run_skill(db, settings, workspace["id"], "forecast-rollup", llm=llm)
    assert result.ai_written and "A fine quarter." in result.sections[0].text
    body = str(fake.requests[0])
    assert "Initech" in body and "PLG" in body and "DATA" in body


class Memo(Skill):
    name = "memo-test"
    params = (Param("n", int, 1),)

    def compute(self, ctx):
        return {"n": ctx.params["n"], "previous_n": (ctx.previous_output() or {}).get("data", {}).get("n")}

    def synthesize(self, ctx, computed, classified):
        return SkillResult(self.name, f"n is {computed['n']}", data=computed)


def test_the_previous_run_compared_against_is_never_one_made_for_a_conversation(db, settings, workspace):
    registry.register(Memo)
    try:
        run_skill(db, settings, workspace["id"], "memo-test", {"n": "1"}, trigger="schedule")
        asked = run_skill(db, settings, workspace["id"], "memo-test", {"n": "2"}, trigger="conversation")
        posted = run_skill(db, settings, workspace["id"], "memo-test", {"n": "3"}, trigger="schedule")
    finally:
        registry._SKILLS.pop("memo-test", None)
    assert asked.data["previous_n"] == 1
    assert posted.data["previous_n"] == 1
