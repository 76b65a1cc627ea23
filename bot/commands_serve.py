"""`pandora serve [--socket] [--host H] [--port P]`: run the Slack app, the sidecar and the digest scheduler
in one process (see bot/serve.py). Returns only when the server stops."""
from __future__ import annotations

from core.settings import Settings


def serve_cmd(args, settings: Settings):
    from bot.serve import serve

    serve(settings, socket=args.socket, host=args.host, port=args.port)
    return {"stopped": True}, "Pandora stopped"


def register(add) -> None:
    p = add("serve", serve_cmd, "serve Slack (HTTP or Socket Mode), the REST API and webhooks, and run digests")
    p.add_argument("--socket", action="store_true", help="Socket Mode (development: needs SLACK_APP_TOKEN, no public URL)")
    p.add_argument("--host", default=None, help="listen address (default PANDORA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (default PORT or 3000)")
