"""The one Block Kit renderer: helpers that build blocks within Slack's limits, `validate`, `paginate`, and
`render_result` / `reply_from_text`, which turn a SkillResult or a piece of text into a `Reply`.

Everyone who builds blocks (router, modals, import previews, digests, conversation) uses these helpers and
`validate`; there is no second renderer. Helpers truncate user-visible text to Slack's limits (with "…") so
a long deal name never costs a message; identifiers that routing depends on (action_id, button value) are
never truncated — a too-long one is a programming error and raises ValueError.

This module never talks to Slack and never reads the database: it only shapes data.
"""
from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.reply import Reply
from skills.result import SkillResult

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2000
MAX_BLOCK_ID = 255
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def mrkdwn_escape(s: Any) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters (so a deal named "<A&B>"
    shows as typed and never becomes a link or a mention)."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def header(text: str) -> dict[str, Any]:
    return {"type": "header",
            "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT) or " ", "emoji": True}}


def section(mrkdwn: str, *, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _mrkdwn(mrkdwn)}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """One section of up to 10 "*label*\\nvalue" fields (use `fields_blocks` for more)."""
    if len(pairs) > MAX_FIELDS:
        raise ValueError(f"a section holds at most {MAX_FIELDS} fields, got {len(pairs)} (use fields_blocks)")
    return {"type": "section", "fields": [_mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs]}


def fields_blocks(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [fields(pairs[i:i + MAX_FIELDS]) for i in range(0, len(pairs), MAX_FIELDS)]


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, *, style: str | None = None, url: str | None = None
           ) -> dict[str, Any]:
    """A button; with `url` it opens that page in the browser (Slack still sends the click, to be acked)."""
    if len(action_id) > MAX_ACTION_ID:
        raise ValueError(f"button action_id is {len(action_id)} characters (Slack allows {MAX_ACTION_ID})")
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError(f"button value is {len(value)} characters (Slack allows {MAX_BUTTON_VALUE})")
    if style not in (None, "primary", "danger"):
        raise ValueError(f"button style must be primary or danger, got {style!r}")
    out: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT),
                                                      "emoji": True}, "action_id": action_id, "value": value}
    if style:
        out["style"] = style
    if url:
        if len(url) > 3000:
            raise ValueError(f"button url is {len(url)} characters (Slack allows 3000)")
        out["url"] = url
    return out


def actions(elements: list[dict[str, Any]], *, block_id: str | None = None) -> dict[str, Any]:
    if len(elements) > MAX_ACTION_ELEMENTS:
        raise ValueError(f"an actions block holds at most {MAX_ACTION_ELEMENTS} elements, got {len(elements)}")
    block: dict[str, Any] = {"type": "actions", "elements": elements}
    if block_id:
        block["block_id"] = block_id
    return block


def split_text(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Cut text into pieces of at most `limit` characters, at line breaks where possible."""
    pieces: list[str] = []
    current = ""
    for line in str(text).split("\n"):
        while len(line) > limit:  # one overlong line: hard cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


# --- validation -------------------------------------------------------------------------------------------------

def _name(i: int, block: dict[str, Any]) -> str:
    bid = f" (block_id {block['block_id']!r})" if isinstance(block, dict) and block.get("block_id") else ""
    kind = block.get("type") if isinstance(block, dict) else type(block).__name__
    return f"block {i} ({kind}){bid}"


def _check_limits(block: dict[str, Any]) -> str | None:
    kind = block.get("type")
    if len(str(block.get("block_id") or "")) > MAX_BLOCK_ID:
        return f"block_id longer than {MAX_BLOCK_ID} characters"
    if kind == "header":
        text = (block.get("text") or {}).get("text") or ""
        if not text.strip():
            return "header text is empty"
        if len(text) > MAX_HEADER_TEXT:
            return f"header text is {len(text)} characters (max {MAX_HEADER_TEXT})"
    if kind == "section":
        text = (block.get("text") or {}).get("text")
        if text is not None and len(text) > MAX_SECTION_TEXT:
            return f"section text is {len(text)} characters (max {MAX_SECTION_TEXT})"
        if text is None and not block.get("fields"):
            return "section has neither text nor fields"
        items = block.get("fields") or []
        if len(items) > MAX_FIELDS:
            return f"section has {len(items)} fields (max {MAX_FIELDS})"
        for f in items:
            if len(f.get("text") or "") > MAX_FIELD_TEXT:
                return f"a field is {len(f['text'])} characters (max {MAX_FIELD_TEXT})"
    if kind == "context" and len(block.get("elements") or []) > MAX_CONTEXT_ELEMENTS:
        return f"context has {len(block['elements'])} elements (max {MAX_CONTEXT_ELEMENTS})"
    if kind == "actions" and len(block.get("elements") or []) > MAX_ACTION_ELEMENTS:
        return f"actions has {len(block['elements'])} elements (max {MAX_ACTION_ELEMENTS})"
    elements = list(block.get("elements") or []) + ([block["accessory"]] if block.get("accessory") else [])
    for el in elements:
        if el.get("type") == "button":
            text = (el.get("text") or {}).get("text") or ""
            if len(text) > MAX_BUTTON_TEXT:
                return f"button text {text[:20]!r}… is {len(text)} characters (max {MAX_BUTTON_TEXT})"
        if len(str(el.get("action_id") or "")) > MAX_ACTION_ID:
            return f"action_id longer than {MAX_ACTION_ID} characters"
    return None


def validate(blocks: list[dict[str, Any]], *, max_blocks: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """Parse every block with slack_sdk's models (which check types, required parts and most limits, nested
    elements included) and apply our own limit checks. Returns the blocks; raises ValueError naming the
    first bad block."""
    if len(blocks) > max_blocks:
        raise ValueError(f"{len(blocks)} blocks in one message (Slack allows {max_blocks}; paginate them)")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ValueError(f"{_name(i, block)}: a block must be a dict")
        problem = _check_limits(block)
        if problem:
            raise ValueError(f"{_name(i, block)}: {problem}")
        try:
            parsed = Block.parse(block)
        except (SlackObjectFormationError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{_name(i, block)}: {exc}") from None
        if parsed is None or type(parsed) is Block:  # slack_sdk returns None (or a bare Block) for unknown types
            raise ValueError(f"{_name(i, block)}: unknown block type {block.get('type')!r}")
        try:
            parsed.validate_json()
            parsed.to_dict()  # validates nested elements and composition objects too
        except (SlackObjectFormationError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{_name(i, block)}: {exc}") from None
    return blocks


def paginate(blocks: list[dict[str, Any]], limit: int = MAX_BLOCKS) -> list[list[dict[str, Any]]]:
    """Split blocks into messages of at most `limit` blocks. A page never ends on a header or divider (it moves
    to the next page with what it introduces)."""
    pages: list[list[dict[str, Any]]] = []
    rest = list(blocks)
    while rest:
        page = rest[:limit]
        if len(rest) > limit:
            cut = len(page)
            while cut > 1 and page[cut - 1].get("type") in ("header", "divider"):
                cut -= 1
            page = page[:cut]
        pages.append(page)
        rest = rest[len(page):]
    return pages or [[]]


# --- replies ----------------------------------------------------------------------------------------------------

def reply_from_blocks(text: str, blocks: list[dict[str, Any]], *, data: dict[str, Any] | None = None,
                      files: list[str] | None = None, ok: bool = True) -> Reply:
    """A Reply whose blocks are validated and paginated (first page in `blocks`, the rest in `more_blocks`)."""
    pages = paginate(blocks)
    for page in pages:
        validate(page)
    return Reply(text=text.strip() or "(no content)", blocks=pages[0], more_blocks=pages[1:], data=data or {},
                 files=files or [], ok=ok)


def reply_from_text(text: str, *, title: str | None = None, data: dict[str, Any] | None = None,
                    ok: bool = True) -> Reply:
    """A plain answer as a Reply: an optional header, then the text (mrkdwn, already escaped where it holds
    user data) in as many sections as it needs. The text fallback is the title and text."""
    blocks = [header(title)] if title else []
    blocks += [section(piece) for piece in split_text(text)]
    fallback = f"{title}\n{text}" if title else text
    return reply_from_blocks(fallback, blocks, data=data, ok=ok)


def render_result(result: SkillResult) -> Reply:
    """A skill result as a Reply: the skill's formatter (or the default layout) as Block Kit, the CLI text as
    the fallback, the result's dict as data and its rendered charts as files."""
    from bot.render.formatters import blocks_for
    from bot.render.text import render_text

    files = [c.path for c in result.charts if c.path]
    return reply_from_blocks(render_text(result), blocks_for(result), data=result.to_dict(), files=files)
