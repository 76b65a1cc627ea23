"""Modal submissions through the real Bolt app: errors come back in the ack under the field, good input is
saved in Postgres and confirmed to the user in their DM."""
from __future__ import annotations

from core.context import get_context
from core.workspaces import get_workspace
from tests.fakes.slack_requests import USER_ID, view_submission
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)


def _open(sender, slack, command: str) -> dict:
    sender.command(command)
    return slack.calls_to("views.open")[-1]["view"]


def _values(view: dict, typed: dict[str, str]) -> dict:
    """state.values as Slack sends them: every input block, with `typed` text where given, else its initial."""
    values = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        value = typed.get(block["block_id"], element.get("initial_value"))
        values[block["block_id"]] = {element["action_id"]: {"type": element["type"], "value": value}}
    return values


def _workspace(db, settings) -> str:
    with db.connection() as conn:
        return str(get_workspace(conn, settings.default_workspace)["id"])


def test_bad_context_input_is_shown_under_its_field_and_nothing_is_saved(sender, slack, db, slack_settings):
    view = _open(sender, slack, "context")
    before = _context(db, slack_settings)
    response = sender.interactive(view_submission(view, _values(view, {"ctx_business_model": "{not json"})))
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors" and "not valid JSON" in body["errors"]["ctx_business_model"]
    assert _context(db, slack_settings) == before
    assert slack.messages == []


def test_good_context_input_is_saved_and_confirmed_in_a_dm(sender, slack, db, slack_settings):
    view = _open(sender, slack, "context")
    response = sender.interactive(view_submission(
        view, _values(view, {"ctx_business_model": "fiscal_year_start_month: 2"})))
    assert response.status_code == 200 and response.text in ("", "null")  # a plain ack closes the modal
    assert _context(db, slack_settings)["business_model"]["fiscal_year_start_month"] == 2
    [msg] = slack.messages
    assert msg["channel"] == USER_ID and "Saved business context" in msg["text"]


def test_a_submission_that_blows_up_is_explained_under_the_first_field(sender, slack):
    view = _open(sender, slack, "context")
    view = {**view, "callback_id": "quota_submit"}  # a quota handler reading a context form: fields missing
    response = sender.interactive(view_submission(view, _values(view, {})))
    body = response.json()
    assert body["response_action"] == "errors"
    assert all("Traceback" not in text for text in body["errors"].values())


def _context(db, settings) -> dict:
    with db.connection() as conn:
        return get_context(conn, _workspace(db, settings))
