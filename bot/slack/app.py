"""The Bolt app: `build_app(db, settings)` wires signing-secret verification, authorization (one bot token, or
OAuth installs kept in Postgres), Slack-team → Pandora-workspace resolution and the listeners.

Modes:
- single workspace: SLACK_BOT_TOKEN; every request is served for PANDORA_WORKSPACE (created if missing), or,
  without it, for the workspace mapped to the Slack team (created from the team's name on first contact);
- multi workspace: SLACK_CLIENT_ID + SLACK_CLIENT_SECRET; Bolt's OAuth flow (/slack/install,
  /slack/oauth_redirect) stores installations with bot/install_store.py, each team mapped to its workspace.

Listeners find `context["workspace_id"]` set by the resolver middleware. This module never posts to Slack by
itself and never holds a token outside the WebClient / installation store.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from slack_bolt import App, BoltResponse
from slack_bolt.lazy_listener.internals import build_runnable_function
from slack_bolt.lazy_listener.runner import LazyListenerRunner
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.slack import registry
from bot.slack.post import make_client
from core.credentials import Vault
from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger("pandora.slack")

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


@dataclass
class Deps:
    """What listeners need besides Bolt's injected arguments (closures carry it: Bolt deep-copies the context
    for lazy listeners, and a connection pool must not be copied)."""
    db: Any
    settings: Settings
    vault: Vault | None = None
    resolver: Any = None   # the WorkspaceResolver (uninstall events drop its cached team)


class InlineLazyListenerRunner(LazyListenerRunner):
    """Runs lazy listeners in the request's own thread (tests: the HTTP response returns after the slow work,
    so a test can assert on what was posted without waiting)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        build_runnable_function(func=function, logger=self.logger, request=request)()


@contextlib.contextmanager
def awaiting_ack(app: App):
    """Around the dispatch of one Slack request (over HTTP or Socket Mode) until its ack is out: lazy work holds
    back meanwhile (AcksFirstLazyRunner; other runners ignore it)."""
    lazy = app.listener_runner.lazy_listener_runner
    tracking = hasattr(lazy, "request_started")
    if tracking:
        lazy.request_started()
    try:
        yield
    finally:
        if tracking:
            lazy.request_finished()


class AcksFirstLazyRunner(ThreadLazyListenerRunner):
    """Lazy listeners on their own thread pool, started only once no Slack request is waiting for its ack (or
    after `max_wait`, so steady traffic cannot starve them). On a small box, skills and syncs holding the GIL
    would otherwise push a burst of acks towards Slack's 3 s limit. The HTTP and Socket Mode handlers
    (bot/serve.py) report requests through `awaiting_ack`."""

    def __init__(self, logger: logging.Logger, executor: ThreadPoolExecutor, *, max_wait: float = 1.0) -> None:
        super().__init__(logger=logger, executor=executor)
        self.max_wait = max_wait
        self._pending = 0
        self._idle = threading.Condition()

    def request_started(self) -> None:
        with self._idle:
            self._pending += 1

    def request_finished(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        runnable = build_runnable_function(func=function, logger=self.logger, request=request)

        def when_acks_are_out() -> None:
            deadline = time.monotonic() + self.max_wait
            with self._idle:
                while self._pending > 0 and (left := deadline - time.monotonic()) > 0:
                    self._idle.wait(left)
            runnable()

        self.executor.submit(when_acks_are_out)


def oauth_mode(settings: Settings) -> bool:
    return bool(settings.slack_client_id and settings.slack_client_secret)


def check_settings(settings: Settings, *, socket_mode: bool = False) -> None:
    """Clear errors naming the variables, before Bolt reports something vaguer."""
    if socket_mode:
        settings.require("slack_app_token", "SLACK_APP_TOKEN")
    else:  # over HTTP every request must be verified; Socket Mode connections are authenticated by the app token
        settings.require("slack_signing_secret", "SLACK_SIGNING_SECRET")
    if bool(settings.slack_client_id) != bool(settings.slack_client_secret):
        missing = "SLACK_CLIENT_SECRET" if settings.slack_client_id else "SLACK_CLIENT_ID"
        raise ConfigError(f"{missing} is not set (OAuth installs need both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)",
                          variable=missing)
    if not oauth_mode(settings) and not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (or set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install "
                          "Pandora into Slack teams through OAuth)", variable="SLACK_BOT_TOKEN")


class _TokenIsTheClients(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and, given our client (which carries that very
    token), warns at every start that the token "will be unused": true of its own copy, and misleading to
    whoever set the variable as the README says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_app(db, settings: Settings, *, client: WebClient | None = None, token_verification: bool = False,
              lazy_inline: bool = False, socket_mode: bool = False, lazy_workers: int = 8) -> App:
    """The Bolt app for `pandora serve`. `token_verification` calls auth.test at start (off by default so a
    server starts even while Slack is unreachable); `lazy_inline` runs lazy listeners synchronously (tests);
    `socket_mode` drops request signing (Socket Mode has none) and needs SLACK_APP_TOKEN instead."""
    check_settings(settings, socket_mode=socket_mode)
    bolt_log = get_bolt_logger(App)
    if not any(isinstance(f, _TokenIsTheClients) for f in bolt_log.filters):
        bolt_log.addFilter(_TokenIsTheClients())
    vault = Vault.from_settings(settings)
    deps = Deps(db=db, settings=settings, vault=vault)
    common: dict[str, Any] = {
        "signing_secret": settings.slack_signing_secret or "", "name": "pandora",
        "request_verification_enabled": not socket_mode,
        # inline lazy listeners also need the ack listener to run before them, in the request's thread
        "process_before_response": lazy_inline,
        # ack listeners get their own pool: lazy work (skills, syncs) must never queue an ack past 3 s
        "listener_executor": ThreadPoolExecutor(max_workers=32, thread_name_prefix="slack-ack")}
    if oauth_mode(settings):
        from bot.install_store import PostgresInstallationStore, PostgresOAuthStateStore

        app = App(client=client or make_client(settings), oauth_settings=OAuthSettings(
            client_id=settings.slack_client_id, client_secret=settings.slack_client_secret,
            scopes=list(registry.BOT_SCOPES), install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH,
            redirect_uri=settings.public_url.rstrip("/") + REDIRECT_PATH,
            installation_store=PostgresInstallationStore(db, vault),
            state_store=PostgresOAuthStateStore(db, expiration_seconds=600),
            callback_options=CallbackOptions(success=_installed(deps), failure=_install_failed)), **common)
    else:
        app = App(client=client or make_client(settings, settings.slack_bot_token),
                  token_verification_enabled=token_verification, **common)
    if lazy_inline:
        app.listener_runner.lazy_listener_runner = InlineLazyListenerRunner(app.logger)
    else:
        app.listener_runner.lazy_listener_runner = AcksFirstLazyRunner(
            app.logger, ThreadPoolExecutor(max_workers=lazy_workers, thread_name_prefix="slack-lazy"))
    resolver = WorkspaceResolver(deps)

    def resolve_workspace(context, next, logger):  # noqa: A002 (Bolt injects arguments by these names)
        return resolver(context, next, logger)

    app.use(skip_event_retries)
    app.use(resolve_workspace)
    deps.resolver = resolver
    from bot.slack.listeners import register

    register(app, deps)
    return app


def skip_event_retries(request, body, next):  # noqa: A002 (Bolt injects arguments by these names)
    """Slack re-sends an event it thinks was not acked in 3 s (X-Slack-Retry-Num 1, 2, ...). The first delivery
    was acked and its lazy work started, so answering a retry would answer the user twice: ack it, do nothing.
    Over Socket Mode every envelope carries `retry_attempt`, 0 on the first delivery, and Bolt turns it into the
    same header: 0 is not a retry (skipping it dropped every mention, DM and file share in Socket Mode)."""
    retries = request.headers.get("x-slack-retry-num") or ()
    if body.get("type") == "event_callback" and any(str(n).strip() not in ("", "0") for n in retries):
        return BoltResponse(status=200, body="")
    return next()


def _installed(deps: Deps):
    def success(args: SuccessArgs):
        inst = args.installation
        workspace_id = _workspace_for_team(deps, inst.team_id, enterprise_id=inst.enterprise_id,
                                           team_name=inst.team_name, is_enterprise_install=inst.is_enterprise_install)
        log.info("installed into Slack team %s → workspace %s", inst.team_id, workspace_id)
        return args.default.success(args)
    return success


def _install_failed(args: FailureArgs):
    log.warning("Slack install failed: %s", args.reason)
    return args.default.failure(args)  # Bolt's page: "Something went wrong … try again"


def _workspace_for_team(deps: Deps, team_id, *, enterprise_id=None, team_name=None, is_enterprise_install=False):
    from bot.install_store import workspace_for_team

    return workspace_for_team(deps.db, team_id, enterprise_id=enterprise_id, team_name=team_name, create=True,
                              is_enterprise_install=is_enterprise_install)


class WorkspaceResolver:
    """Global middleware: sets context["workspace_id"] for the Slack team of the request. Results are cached
    per team (a slash command must ack within 3 s, so one database round trip per team, not per request)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def __call__(self, context, next, logger) -> Any:  # noqa: A002 (Bolt injects by these names)
        if context.get("workspace_id") is None:
            try:
                context["workspace_id"] = self.resolve(context)
            except Exception:  # noqa: BLE001 — the listener explains a missing workspace; never a 500 to Slack
                logger.exception("could not resolve the Pandora workspace of team %s", context.team_id)
                context["workspace_id"] = None
        return next()

    def resolve(self, context) -> str | None:
        key = (context.enterprise_id or "", context.team_id or "")
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        workspace_id = self._lookup(context)
        if workspace_id:
            with self._lock:
                self._cache[key] = workspace_id
        return workspace_id

    def forget(self, enterprise_id: str | None, team_id: str | None) -> None:
        with self._lock:
            self._cache.pop((enterprise_id or "", team_id or ""), None)

    def _lookup(self, context) -> str | None:
        settings = self.deps.settings
        if settings.default_workspace and not oauth_mode(settings):
            from core.workspaces import ensure_workspace

            with self.deps.db.connection() as conn:
                return str(ensure_workspace(conn, settings.default_workspace)["id"])
        if not (context.team_id or context.enterprise_id):
            return None
        team_name = None
        if not oauth_mode(settings) and context.client is not None:
            try:  # first contact with this team: name its workspace after it
                team_name = context.client.auth_test().get("team")
            except Exception:  # noqa: BLE001 — a name is a nicety; the team id will do
                team_name = None
        return _workspace_for_team(self.deps, context.team_id, enterprise_id=context.enterprise_id,
                                   team_name=team_name, is_enterprise_install=bool(context.is_enterprise_install))
