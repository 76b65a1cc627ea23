"""`pandora say`: the router's answer from a shell, through bot.cli.main, as text, Block Kit JSON or JSON."""
from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.render.blocks import validate


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PANDORA_SECRET_KEY", "cli-test-key")
    monkeypatch.setenv("PANDORA_HOME", str(tmp_path))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def demo_co(cli):
    code, _, _ = cli("demo", "--json")
    assert code == 0
    return "Demo Co"


def test_say_prints_the_text_reply(cli):
    cli("workspace", "create", "Acme", "--json")
    code, out, _ = cli("say", "/pandora help", "--workspace", "Acme")
    assert code == 0 and out.startswith("Pandora commands") and "forecast" in out and "status" in out


def test_say_json_prints_the_whole_reply(cli, demo_co):
    code, out, err = cli("say", "/pandora forecast", "--workspace", demo_co, "--json")
    reply = json.loads(out)
    assert code == 0 and reply["ok"] and reply["data"]["skill"] == "forecast-rollup"
    assert reply["blocks"][0]["type"] == "header" and reply["data"]["headline"] in reply["text"]
    assert reply["files"] and reply["files"][0].endswith(".png")  # the waterfall chart, for files_upload_v2
    assert err == ""  # no progress lines in JSON mode


def test_say_blocks_prints_valid_block_kit_json(cli, demo_co):
    code, out, err = cli("say", "hygiene", "--workspace", demo_co, "--blocks")
    assert code == 0
    message = json.loads(out)
    assert set(message) <= {"blocks", "more_blocks"}
    validate(message["blocks"])
    assert message["blocks"][0]["text"]["text"].startswith("Pipeline hygiene")
    assert "Running pipeline-hygiene…" in err  # progress goes to stderr, never into the JSON


def test_say_a_bad_parameter_exits_nonzero_with_the_error_and_the_reply(cli, demo_co):
    code, out, _ = cli("say", "/pandora forecast period=2026-Q3", "--workspace", demo_co, "--json")
    error = json.loads(out)["error"]
    assert code == 1 and error["code"] == "input_error" and "period" in error["message"]
    assert error["reply"]["ok"] is False and error["reply"]["data"]["error"]["field"] == "period"


def test_say_an_unknown_command_exits_nonzero_and_shows_help(cli):
    cli("workspace", "create", "Acme", "--json")
    code, out, err = cli("say", "frobnicate", "--workspace", "Acme")
    assert code == 1 and out == ""
    assert "I don't know the command 'frobnicate'" in err and "forecast" in err


def test_say_in_an_unknown_workspace_is_not_found(cli):
    code, out, _ = cli("say", "status", "--workspace", "nope", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "not_found"


def test_say_modal_commands_print_the_shell_equivalent(cli):
    cli("workspace", "create", "Acme", "--json")
    code, out, _ = cli("say", "/pandora quota", "--workspace", "Acme", "--json")
    reply = json.loads(out)
    assert code == 0 and reply["modal"] == "quota" and "pandora quota set --workspace W" in reply["text"]
