"""Benchmark: how fast `pandora serve` acknowledges slash commands under a burst.

Run:  .venv/bin/python bench/slack_ack.py [--n 50] [--rounds 3] [--empty]
(DATABASE_URL if set, else the embedded server; a scratch database `pandora_bench_<pid>` is created, migrated and
dropped at the end, also on error or Ctrl-C.) Not a test: CI never runs it, and it always exits 0.

The real ASGI app of `pandora serve` (Bolt over Starlette, threaded lazy listeners, sidecar routes) runs under
uvicorn in a thread on loopback, against a Demo Co workspace (--empty: an empty one) and the fake Slack Web API
(tests/fakes/slack_api.py) for what the listeners post. Each round sends --n concurrent signed `/pandora forecast`
slash commands (httpx, one thread each) and records the time to ack (the HTTP response Slack waits for). The
reference, measured in the same run with the same concurrency, is a GET /healthz round trip: the ratio says
what acking costs over the server's bare request handling. Target: p99 time to ack < 300 ms (Slack's limit is
3 s). It also reports when the last forecast answer reached the (fake) channel.
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402 (the path fix above must come first)
import dataclasses  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import date  # noqa: E402

import httpx  # noqa: E402

from bench._scratch import scratch_database  # noqa: E402
from core.db.database import Database  # noqa: E402
from core.settings import Settings  # noqa: E402

SECRET = "bench-signing-secret"
TARGET_P99_MS = 300.0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest but none)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def burst(n: int, fn) -> list[float]:
    """Start n calls at once (a barrier), return each one's wall time in ms."""
    import threading

    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def run(args, url: str) -> None:
    from bot.serve import build_asgi, serving_in_thread
    from bot.slack.app import build_app
    from core.workspaces import create_workspace
    from tests.fakes.slack_api import FakeSlack
    from tests.fakes.slack_requests import SlackSender

    base = Settings(database_url=url, secret_key="bench-secret", pandora_home=Path(f"/tmp/pandora_bench_{os.getpid()}"))
    if args.empty:
        with Database(url, min_size=1, max_size=2) as tmp, tmp.connection() as conn:
            ws_name = create_workspace(conn, "Bench Co")["name"]
    else:
        from bot.demo import demo

        t0 = time.perf_counter()
        data, _ = demo(argparse.Namespace(seed=7, scale=1, today=date.today()), base)
        ws_name = data["workspace"]["name"]
        print(f"Demo Co workspace built in {time.perf_counter() - t0:.1f} s")
    with FakeSlack() as slack:
        settings = dataclasses.replace(base, slack_bot_token=slack.bot_token, slack_signing_secret=SECRET,
                                       slack_api_url=slack.url, default_workspace=ws_name)
        db = Database(url, min_size=2, max_size=12)
        try:
            asgi = build_asgi(db, settings, bolt_app=build_app(db, settings), scheduler=False)
            limits = httpx.Limits(max_connections=args.n + 10, max_keepalive_connections=args.n + 10)
            with serving_in_thread(asgi) as base_url, httpx.Client(base_url=base_url, timeout=30, limits=limits) as http:
                sender = SlackSender(http, SECRET)
                http.get("/healthz")
                sender.command("status")  # warm up: team → workspace resolution, auth.test, pools
                time.sleep(1.0)
                for round_no in range(1, args.rounds + 1):
                    before = len(slack.messages)
                    ref = burst(args.n, lambda: http.get("/healthz").raise_for_status())
                    started = time.perf_counter()
                    statuses: list[int] = []

                    def command():
                        statuses.append(sender.command("forecast").status_code)

                    acks = burst(args.n, command)
                    answered = _wait_answers(slack, before, args.n, started)
                    p50, p99, r50, r99 = pct(acks, 50), pct(acks, 99), pct(ref, 50), pct(ref, 99)
                    verdict = "OK" if p99 < TARGET_P99_MS else "OVER TARGET"
                    print(f"round {round_no}: {args.n} concurrent /pandora forecast — ack p50 {p50:.0f} ms, p99 "
                          f"{p99:.0f} ms (target < {TARGET_P99_MS:.0f} ms: {verdict}); statuses "
                          f"{sorted(set(statuses))}")
                    print(f"         reference GET /healthz x{args.n} — p50 {r50:.0f} ms, p99 {r99:.0f} ms; "
                          f"ratio ack/reference p50 {p50 / max(r50, 0.1):.1f}x, p99 {p99 / max(r99, 0.1):.1f}x; "
                          f"all {args.n} answers posted after {answered}")
        finally:
            db.close()


def _wait_answers(slack, before: int, n: int, started: float, timeout: float = 300.0) -> str:
    """Each forecast posts a 'Working…' message that its answer then replaces: wait until n are finished."""
    while time.perf_counter() - started < timeout:
        mine = slack.messages[before:]
        done = [m for m in mine if not m.get("ephemeral") and not str(m.get("text", "")).startswith(("Working", "Running"))]
        if len(done) >= n:
            took = time.perf_counter() - started
            _settle(slack)  # charts are uploaded after the answer: let them land before the next round
            return f"{took:.1f} s"
        time.sleep(0.1)
    return f"more than {timeout:.0f} s (gave up)"


def _settle(slack, quiet: float = 1.0) -> None:
    seen, since = len(slack.calls), time.perf_counter()
    while time.perf_counter() - since < quiet:
        time.sleep(0.1)
        if len(slack.calls) != seen:
            seen, since = len(slack.calls), time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="concurrent slash commands per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--empty", action="store_true", help="an empty workspace instead of Demo Co")
    args = parser.parse_args()
    print(f"slack_ack bench — Python {platform.python_version()}, {os.cpu_count()} CPUs")
    settings = Settings.from_env()
    try:
        with scratch_database(settings) as url:  # dropped on the way out, also on error or Ctrl-C
            run(args, url)
    except KeyboardInterrupt:
        print("interrupted")
    except Exception:  # noqa: BLE001 — a benchmark reports and exits 0
        traceback.print_exc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
