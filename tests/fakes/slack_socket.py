"""A fake of Slack's Socket Mode endpoint: the WebSocket a Socket Mode app connects to with the URL that
`apps.connections.open` returns (tests/fakes/slack_api.py hands out this server's URLs to app-level tokens).

It speaks the real protocol, as Slack documents it (api.slack.com/apis/socket-mode): an RFC 6455 handshake on a
single-use ticket, a `hello` message, then envelopes `{"envelope_id", "type": "slash_commands" | "interactive" |
"events_api", "payload", "accepts_response_payload", "retry_attempt", "retry_reason"}` that the app acknowledges
by sending `{"envelope_id", "payload"?}` back; pings are answered with pongs carrying the same data, and
`disconnect` asks the app to reconnect (`refresh_requested`). Plain `ws://` on loopback: slack_sdk's built-in
client uses a plain socket for any port but 443 ("for library testing").

    socket = slack.socket_mode()          # the FakeSlack's endpoint
    socket.wait_connected()
    envelope_id = socket.send("slash_commands", payload)
    ack = socket.wait_ack(envelope_id)
"""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, data: bytes) -> bytes:
    """A final, unmasked frame (servers never mask)."""
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + data


def _read_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """(opcode, payload) of one client frame; clients must mask every frame (RFC 6455 5.1)."""
    b0, b1 = _read_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(sock, 8))[0]
    if not b1 & 0x80:
        raise ConnectionError("an unmasked client frame")
    mask = _read_exact(sock, 4)
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(_read_exact(sock, n)))
    return b0 & 0x0F, data


class FakeSocketMode:
    app_id = "A0PANDORA"

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._client: socket.socket | None = None
        self._send_lock = threading.Lock()
        self.connections = 0                               # handshakes accepted
        self.refused: list[str] = []                       # why a connection attempt was turned away
        self.acks: dict[str, dict[str, Any]] = {}          # envelope_id -> the app's acknowledgement
        self.received: list[dict[str, Any]] = []           # every other message the app sent
        self._closing = False
        threading.Thread(target=self._accept, name="fake-socket-mode", daemon=True).start()

    # ---- scripting -------------------------------------------------------------------------------------------
    def new_url(self) -> str:
        """A connection URL with a fresh single-use ticket (what apps.connections.open returns)."""
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def wait_connected(self, timeout: float = 10.0, *, count: int = 1) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections >= count and self._client is not None, timeout):
                raise TimeoutError(f"no Socket Mode connection within {timeout} s (refused: {self.refused})")

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = True,
             retry_attempt: int = 0, retry_reason: str = "") -> str:
        """Deliver an envelope; `retry_attempt` 1, 2, ... (with a `retry_reason` such as "timeout") is how Slack
        re-delivers an event it thinks was not acknowledged (0: the first delivery, as every envelope says)."""
        envelope_id = str(uuid.uuid4())
        self._send_json({"envelope_id": envelope_id, "type": kind, "payload": payload,
                         "accepts_response_payload": accepts_response_payload, "retry_attempt": retry_attempt,
                         "retry_reason": retry_reason})
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"envelope {envelope_id} was not acknowledged within {timeout} s")
            return self.acks[envelope_id]

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect, as Slack does every few hours; the old connection is then closed."""
        self._send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}})

    def close(self) -> None:
        self._closing = True
        with self._cond:
            client, self._client = self._client, None
        for s in (client, self._server):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    # ---- the server ------------------------------------------------------------------------------------------
    def _send_json(self, message: dict[str, Any]) -> None:
        with self._cond:
            client = self._client
        if client is None:
            raise ConnectionError("no app is connected")
        with self._send_lock:
            client.sendall(_frame(TEXT, json.dumps(message).encode()))

    def _accept(self) -> None:
        while not self._closing:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            request += chunk
        lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        target = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        ticket = (parse_qs(urlsplit(target).query).get("ticket") or [""])[0]
        with self._cond:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # single use
        if not valid or headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            self.refused.append("invalid ticket" if not valid else "not a WebSocket upgrade")
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + _ACCEPT_GUID).encode()).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        return True

    def _serve(self, sock: socket.socket) -> None:
        try:
            if not self._handshake(sock):
                sock.close()
                return
            with self._cond:
                previous, self._client = self._client, sock
                self.connections += 1
                self._cond.notify_all()
            self._send_json({"type": "hello", "num_connections": 1,
                             "debug_info": {"host": "fake", "build_number": 1, "approximate_connection_time": 18060},
                             "connection_info": {"app_id": self.app_id}})
            if previous is not None:  # the app reconnected: Slack closes the link it replaced
                time.sleep(0.05)
                try:
                    previous.close()
                except OSError:
                    pass
            while True:
                opcode, data = _read_frame(sock)
                if opcode == PING:
                    with self._send_lock:
                        sock.sendall(_frame(PONG, data))
                elif opcode == TEXT:
                    message = json.loads(data)
                    with self._cond:
                        if "envelope_id" in message:
                            self.acks[message["envelope_id"]] = message
                        else:
                            self.received.append(message)
                        self._cond.notify_all()
                elif opcode == CLOSE:
                    with self._send_lock:
                        sock.sendall(_frame(CLOSE, data[:2]))
                    return
        except (ConnectionError, OSError, ValueError):
            return
        finally:
            with self._cond:
                if self._client is sock:
                    self._client = None
                self._cond.notify_all()
            try:
                sock.close()
            except OSError:
                pass
