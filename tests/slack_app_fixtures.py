"""Fixtures shared by tests/test_slack_*.py: the fake Slack, settings pointing at it, the real Bolt app inside
the real ASGI app (lazy listeners inline), and a sender of signed Slack requests. Imported by those modules
with `from tests.slack_app_fixtures import *`."""
from __future__ import annotations

import dataclasses
import uuid

import pytest
from starlette.testclient import TestClient

from bot.serve import build_asgi
from bot.slack.app import build_app
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackSender

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

__all__ = ["SECRET", "slack_settings", "slack_http", "sender", "make_http"]


def make_settings(base, slack: FakeSlack, **overrides):
    return dataclasses.replace(base, slack_bot_token=slack.bot_token, slack_signing_secret=SECRET,
                               slack_api_url=slack.url, **overrides)


def make_http(db, settings) -> TestClient:
    app = build_app(db, settings, lazy_inline=True)
    return TestClient(build_asgi(db, settings, bolt_app=app, scheduler=False))


@pytest.fixture
def slack_settings(settings, slack):
    return make_settings(settings, slack, default_workspace=f"Slack Test {uuid.uuid4().hex[:6]}")


@pytest.fixture
def slack_http(db, slack_settings):
    return make_http(db, slack_settings)


@pytest.fixture
def sender(slack_http):
    return SlackSender(slack_http, SECRET)
