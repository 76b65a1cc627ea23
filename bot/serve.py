"""`pandora serve`: one ASGI app (Starlette) serving Slack (Bolt over HTTP), the sidecar's REST API and
webhooks, and a health check, with the digest scheduler running for the life of the process.

Routes: POST /slack/events (slash commands, events, interactivity — one Request URL for all three),
GET /slack/install and /slack/oauth_redirect (OAuth mode), GET /healthz, and bot.sidecar.api_routes.
Bolt's dispatch is synchronous (it waits for the ack), so it runs in Starlette's thread pool: the event loop
must never block on one Slack request while fifty others wait.

This module never reads the environment (settings come in) and never starts anything at import time.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import SlackRequestHandler, to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.reply import Reply
from bot.slack.app import awaiting_ack
from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger("pandora.serve")


class ThreadedSlackRequestHandler(SlackRequestHandler):
    """Bolt's Starlette adapter, with the blocking dispatch / OAuth handling moved off the event loop."""

    async def handle(self, req: Request, addition_context_properties: dict[str, Any] | None = None) -> Response:
        body = await req.body()
        bolt_req = to_bolt_request(req, body, addition_context_properties)
        flow = self.app.oauth_flow
        if req.method == "GET" and flow is not None:
            if req.url.path == flow.install_path:
                return to_starlette_response(await run_in_threadpool(flow.handle_installation, bolt_req))
            if req.url.path == flow.redirect_uri_path:
                return to_starlette_response(await run_in_threadpool(flow.handle_callback, bolt_req))
        elif req.method == "POST":
            return to_starlette_response(await run_in_threadpool(self._dispatch, bolt_req))
        return Response(status_code=404, content="Not found")


    def _dispatch(self, bolt_req):
        # Tell the lazy runner a request awaits its ack, so slow work started by earlier requests waits for it.
        with awaiting_ack(self.app):
            return self.app.dispatch(bolt_req)


def digest_poster(db, settings: Settings) -> Callable[[str, str, Reply], None]:
    """The scheduler's `post`: a digest Reply to a channel, with the bot token of the workspace's Slack team."""
    from bot.slack.app import oauth_mode
    from bot.slack.post import make_client, post_reply

    def post(workspace_id: str, channel: str, reply: Reply) -> None:
        if oauth_mode(settings):
            from bot.install_store import bot_token_for_workspace

            token = bot_token_for_workspace(db, settings, workspace_id)
        else:
            token = settings.slack_bot_token
        if not token:
            raise ConfigError(f"Pandora is not installed in the Slack team of workspace {workspace_id}; "
                              "reinstall the app to receive digests")
        post_reply(make_client(settings, token), channel, reply)

    return post


def _sidecar_routes(db, settings: Settings) -> list[BaseRoute]:
    try:
        from bot.sidecar import api_routes
    except ImportError:  # the sidecar is optional: Slack works without it
        log.warning("bot.sidecar is not available: serving Slack without the REST API and webhooks")
        return []
    return list(api_routes(db, settings))


def _scheduler(db, settings: Settings):
    try:
        from bot.digests import DigestScheduler
    except ImportError:
        log.warning("bot.digests is not available: no scheduled digests")
        return None
    return DigestScheduler(db, settings, digest_poster(db, settings))


def build_asgi(db, settings: Settings, *, bolt_app: App | None = None, scheduler: bool = True) -> Starlette:
    """The app `pandora serve` runs. The digest scheduler starts with the app's lifespan (Starlette's
    TestClient runs it only inside `with TestClient(app)`)."""
    if bolt_app is None:
        from bot.slack.app import build_app

        bolt_app = build_app(db, settings)
    handler = ThreadedSlackRequestHandler(bolt_app)

    async def slack(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "oauth": bolt_app.oauth_flow is not None})

    routes: list[BaseRoute] = [Route("/slack/events", slack, methods=["POST"]),
                               Route("/healthz", healthz, methods=["GET"])]
    if bolt_app.oauth_flow is not None:
        routes += [Route(bolt_app.oauth_flow.install_path, slack, methods=["GET"]),
                   Route(bolt_app.oauth_flow.redirect_uri_path, slack, methods=["GET"])]
    routes += _sidecar_routes(db, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        digests = _scheduler(db, settings) if scheduler else None
        if digests is not None:
            await run_in_threadpool(digests.start)
        app.state.digests = digests
        try:
            yield
        finally:
            if digests is not None:
                await run_in_threadpool(digests.shutdown)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        # Unknown paths and wrong methods answer in the REST API's JSON error shape, not Starlette's plain text.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": f"{request.method} {request.url.path}: {exc.detail}"}},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    asgi = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    asgi.state.bolt = bolt_app
    return asgi


@contextlib.contextmanager
def serving_in_thread(asgi: Starlette, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 15.0):
    """Run `asgi` under uvicorn in a background thread (port 0: the OS picks one); yields the base URL and
    stops the server on exit. For the benchmark and end-to-end tests; `serve` is the real entry point."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="pandora-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def socket_mode_handler(bolt_app: App, app_token: str):
    """Bolt's Socket Mode handler, telling the lazy runner about each envelope until its ack is sent, as the HTTP
    handler does for each request (`awaiting_ack`). Not connected yet: `.connect()` starts its threads."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    class AcksFirstSocketModeHandler(SocketModeHandler):
        def handle(self, client, req):  # sends the envelope's ack before it returns
            with awaiting_ack(self.app):
                super().handle(client, req)

    return AcksFirstSocketModeHandler(bolt_app, app_token)


def _return_after_sigterm() -> None:
    """uvicorn shuts down gracefully on SIGTERM (a deploy, `kill`, systemd) and then raises the signal again for
    the handler that was there before its own; Python's default one would end the process at once, before
    serve() closes the Socket Mode connection and the database pool. This one exits through them (status 0)."""
    import signal
    import threading

    def stop(signum, frame):
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, stop)


def serve(settings: Settings, *, socket: bool = False, host: str | None = None, port: int | None = None) -> None:
    """Run until interrupted. Over HTTP, Slack posts to PANDORA_PUBLIC_URL/slack/events; with `socket`, Slack
    traffic comes over a Socket Mode connection (no public URL needed) and the sidecar still serves HTTP."""
    import uvicorn

    from bot.slack.app import build_app, check_settings
    from core.db.database import open_database

    check_settings(settings, socket_mode=socket)  # fail before the database starts
    db = open_database(settings)
    try:
        bolt_app = build_app(db, settings, socket_mode=socket)
        asgi = build_asgi(db, settings, bolt_app=bolt_app)
        socket_handler = None
        if socket:
            socket_handler = socket_mode_handler(bolt_app, settings.slack_app_token)
            socket_handler.connect()  # background threads; uvicorn below keeps the process (and sidecar) up
        try:
            _return_after_sigterm()
            uvicorn.run(asgi, host=host or settings.serve_host, port=port or settings.serve_port,
                        log_level="info", access_log=False)
        finally:
            if socket_handler is not None:
                socket_handler.close()
    finally:
        db.close()
