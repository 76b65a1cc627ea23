"""What the router answers with, whoever asked (Slack, `pandora say`, REST).

One `Reply` carries every rendering of the same answer: `text` for the CLI and as Slack's notification
fallback, `blocks` (Block Kit, already validated and ≤ 50 per message; `more_blocks` holds the overflow
messages to thread under the first), `data` for JSON consumers, `files` (chart PNGs to upload). `modal` asks
the Slack layer to open a view (e.g. "connect:hubspot", "quota", "context", "tracked_reps:gong"); other
callers show the text, which always says how to do the same thing from the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Progress = Callable[[str], None]
"""Called with a short status line while slow work runs ("Syncing HubSpot… 12,400 deals")."""


@dataclass
class Reply:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    more_blocks: list[list[dict[str, Any]]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    modal: str | None = None
    ephemeral: bool = False
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text, "blocks": self.blocks, "more_blocks": self.more_blocks,
                "data": self.data, "files": self.files, "modal": self.modal}
