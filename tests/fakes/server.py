"""What every local fake server shares: a threaded HTTP server on 127.0.0.1 (port chosen by the OS) in a daemon
thread, start/stop and context-manager use, and JSON replies. Each fake (one per service) subclasses
`FakeServer` and implements `handle_get` / `handle_post`; it never listens beyond loopback."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeServer:
    base_path = ""   # appended to the URL clients are given (e.g. "/inference/v1")
    http11 = True    # keep-alive like the real APIs (the SDKs reuse connections)

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()  # handlers sleeping on a scripted delay wake up on stop

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.http11 else "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                fake.handle_get(self)

            def do_POST(self) -> None:  # noqa: N802
                fake.handle_post(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def on_stop(self) -> None:
        """Release anything a handler may be waiting on, before the server shuts down."""

    def stop(self) -> None:
        self._stopping.set()
        self.on_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def scripted_reply(self, handler: BaseHTTPRequestHandler, body: Any, error_body: Callable[[int, str], Any]):
        """For the LLM fakes (knobs `replies`, `delay`, `status`, `status_headers`, `_reply_for`): record the
        request, pick its reply and play any scripted delay or error status. Returns the reply to send, or
        None when the request was already answered (or dropped because the server is stopping)."""
        with self._lock:
            self.requests.append(body)
            self.headers.append(handler.headers)
            queued = self.replies.pop(0) if self.replies else None
        reply = self._reply_for(body, queued)
        wait = self.delay + reply.delay
        if wait > 0 and self._stopping.wait(wait):
            return None
        if self.status is not None and self.status != 200:
            send_json(handler, self.status, error_body(self.status, f"scripted HTTP {self.status}"), self.status_headers)
            return None
        if reply.status != 200:
            send_json(handler, reply.status, error_body(reply.status, reply.error or f"scripted HTTP {reply.status}"),
                      reply.headers)
            return None
        return reply

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 405, {"error": "GET not supported"})

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 405, {"error": "POST not supported"})


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test): nothing to answer
        pass
