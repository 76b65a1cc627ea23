"""The `pandora` command line. Other tools rely on its contract (see shared/DESIGN.md):
every command takes `--json` and then prints exactly one JSON document on stdout; errors are printed as
`{"error": {"code", "message", …}}` with a non-zero exit. Without `--json` output is for people.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable
from uuid import UUID

from core.errors import PandoraError
from core.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], tuple[Any, str]]


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value) if isinstance(value, UUID) else float(value)
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


def build_parser() -> argparse.ArgumentParser:
    from bot import commands

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    parser = argparse.ArgumentParser(prog="pandora", description="GTM intelligence for RevOps teams", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = getattr(args, "json", False)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        # Every connector, and with it its post-sync steps (Salesforce merges and contact roles, Monday task
        # deals, Drive links): an import, `stages set` or `relink` runs the pipeline too, and without them it
        # would run without those steps.
        from connectors import load_all

        load_all()
        data, text = args.handler(args, Settings.from_env())
    except PandoraError as exc:
        return _fail(as_json, exc.to_dict())
    except KeyboardInterrupt:
        return _fail(as_json, {"code": "interrupted", "message": "interrupted"})
    except Exception as exc:  # never a traceback for users; PANDORA_DEBUG=1 shows it
        if os.environ.get("PANDORA_DEBUG"):
            traceback.print_exc()
        return _fail(as_json, {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
    if as_json:
        print(to_json(data))
    elif text:
        print(text)
    return 0


def _fail(as_json: bool, error: dict[str, Any]) -> int:
    if as_json:
        print(to_json({"error": error}))
    else:
        print(f"error: {error['message']}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
