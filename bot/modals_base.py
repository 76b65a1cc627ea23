"""What every Pandora modal shares: the `ModalOutcome` a submission returns, input-block builders, the modal
wrapper (validated with slack_sdk's view model and A's block validator), and readers for a submitted view's
state and private_metadata.

Display blocks (section, context, header) come from `bot.render.blocks`; this module only adds what that
renderer has no use for: input blocks and the modal envelope. It never talks to Slack, never reads the
database, and never puts a secret into a view.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

from bot.render.blocks import truncate, validate

MAX_VIEW_BLOCKS = 100      # Slack's limit for a modal
MAX_TITLE = 24             # modal title, submit and close texts
MAX_LABEL = 2000
MAX_HINT = 2000
MAX_INPUT_VALUE = 3000     # plain_text_input initial_value / max_length
MAX_OPTIONS = 100          # options (or option groups) per select
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_METADATA = 3000
MAX_ERROR_TEXT = 500       # an inline error under an input; longer ones are cut


@dataclass
class ModalOutcome:
    """What a view submission produced.

    - `errors`: {block_id: message}: the listener acks with response_action="errors" (nothing was saved).
    - `next_view`: a view to show instead (response_action="update"), e.g. step two of a connect flow.
    - `message`: a line to post to the user after the modal closes (what was saved).
    - `after`: slow work to run after the ack (in a lazy listener): e.g. re-previewing an import with the
      edited mapping. Only set when `errors` is empty.
    - `data`: JSON-able details for tests and REST callers.
    """

    errors: dict[str, str] = field(default_factory=dict)
    next_view: dict[str, Any] | None = None
    message: str | None = None
    after: Callable[[], None] | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def plain(text: str, limit: int = MAX_LABEL) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def option(text: str, value: str) -> dict[str, Any]:
    if len(value) > MAX_OPTION_VALUE:
        raise ValueError(f"option value is {len(value)} characters (Slack allows {MAX_OPTION_VALUE})")
    return {"text": plain(text, MAX_OPTION_TEXT), "value": value}


def text_input(block_id: str, label: str, *, initial: str | None = None, multiline: bool = False,
               optional: bool = False, hint: str | None = None, placeholder: str | None = None) -> dict[str, Any]:
    """An input block holding one plain_text_input (action_id "value")."""
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline,
                               "max_length": MAX_INPUT_VALUE}
    if initial:
        element["initial_value"] = initial[:MAX_INPUT_VALUE]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    return _input(block_id, label, element, optional=optional, hint=hint)


def select_input(block_id: str, label: str, options: list[dict[str, Any]], *, initial: str | None = None,
                 optional: bool = False, hint: str | None = None) -> dict[str, Any]:
    """An input block holding one static_select (action_id "value"); `initial` is the selected option's value."""
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
    chosen = next((o for o in options if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return _input(block_id, label, element, optional=optional, hint=hint)


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool, hint: str | None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                             "optional": optional}
    if hint:
        block["hint"] = plain(hint, MAX_HINT)
    return block


def modal(callback_id: str, title: str, blocks: list[dict[str, Any]], *, submit: str | None = "Save",
          close: str = "Cancel", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The modal envelope, validated: raises ValueError naming the problem (a bug in the caller, never input)."""
    view: dict[str, Any] = {"type": "modal", "callback_id": callback_id, "title": plain(title, MAX_TITLE),
                            "close": plain(close, MAX_TITLE), "blocks": blocks}
    if submit:
        view["submit"] = plain(submit, MAX_TITLE)
    if metadata is not None:
        encoded = json.dumps(metadata, separators=(",", ":"), default=str)
        if len(encoded) > MAX_METADATA:
            raise ValueError(f"private_metadata is {len(encoded)} characters (Slack allows {MAX_METADATA})")
        view["private_metadata"] = encoded
    return validate_view(view)


def validate_view(view: dict[str, Any]) -> dict[str, Any]:
    validate(view["blocks"], max_blocks=MAX_VIEW_BLOCKS)
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, TypeError) as exc:
        raise ValueError(f"view {view.get('callback_id')!r}: {exc}") from None
    return view


# --- reading a submitted view ------------------------------------------------------------------------------------

def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _state(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    block = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    return block.get("value") or next(iter(block.values()), {}) if block else {}


def text_value(view: dict[str, Any], block_id: str) -> str:
    """The text typed into a plain_text_input ("" when empty or absent), stripped."""
    return (_state(view, block_id).get("value") or "").strip()


def selected(view: dict[str, Any], block_id: str) -> list[str]:
    """Values of a multi-select's selected options (or a single select's one), [] when none."""
    state = _state(view, block_id)
    if state.get("selected_options") is not None:
        return [o["value"] for o in state["selected_options"]]
    chosen = state.get("selected_option")
    return [chosen["value"]] if chosen else []


def error_text(message: str) -> str:
    return truncate(message, MAX_ERROR_TEXT)
