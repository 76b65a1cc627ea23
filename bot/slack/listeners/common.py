"""What the listeners share: answering a piece of command text in a channel (through the one router, with a
progress message for slow work), opening the modal a Reply asks for, and telling a user what went wrong.

Nothing here raises into Bolt: a failure becomes a short message to the user (ephemeral where Slack allows)
and a log line with the traceback. Tracebacks are never shown in Slack.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.reply import Reply
from bot.slack.post import ProgressMessage, post_reply
from core.errors import ConfigError, PandoraError

log = logging.getLogger("pandora.slack")

# Where a channel post is impossible (the bot is not in that channel / a DM between two people), the answer
# goes back through the slash command's response_url instead.
UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
NO_WORKSPACE = ("This Slack workspace is not linked to Pandora yet. Reinstall the app, or ask your Pandora admin "
                "to set PANDORA_WORKSPACE.")


def explain(exc: BaseException) -> str:
    """One line a RevOps person can act on."""
    if isinstance(exc, PandoraError):
        return exc.message
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error")
        if error in UNREACHABLE:
            return "I can't post in this channel: invite me with `/invite @Pandora`, or DM me instead."
        return f"Slack refused the request ({error}). Try again in a minute."
    return (f"Something went wrong on our side ({type(exc).__name__}). It is logged; try again, and if it keeps "
            "happening tell your Pandora admin.")


def tell(client: WebClient, channel: str | None, user: str | None, text: str, *,
         respond: Callable[..., Any] | None = None, thread_ts: str | None = None) -> None:
    """Show `text` to one user: response_url when we have one, else an ephemeral message, else their DM."""
    try:
        if respond is not None:
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif channel and user:
            client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        elif user:
            client.chat_postMessage(channel=user, text=text)
    except Exception:  # noqa: BLE001 — nothing left to tell the user with; the log has it
        log.exception("could not tell user %s: %s", user, text)


def fail(client: WebClient, exc: BaseException, *, channel: str | None, user: str | None,
         respond: Callable[..., Any] | None = None, thread_ts: str | None = None) -> None:
    if not isinstance(exc, PandoraError):
        log.error("listener failed", exc_info=exc)
    tell(client, channel, user, f":warning: {explain(exc)}", respond=respond, thread_ts=thread_ts)


@contextmanager
def failures_told(client: WebClient, *, channel: str | None, user: str | None,
                  respond: Callable[..., Any] | None = None, thread_ts: str | None = None) -> Iterator[None]:
    """A listener's work: whatever it raises is explained to the user (`fail`), never a traceback to Bolt."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 — explained to the user, never a traceback
        fail(client, exc, channel=channel, user=user, respond=respond, thread_ts=thread_ts)


def is_slow(words: list[str]) -> bool:
    """Syncs and skills take seconds to minutes: they get a progress message first."""
    if not words:
        return False
    command = words[0].lower()
    if command == "sync":
        return True
    from bot.router import EXTRA_ALIASES
    from core.errors import NotFound
    from skills import registry

    try:
        registry.get(EXTRA_ALIASES.get(command, command))
        return True
    except NotFound:
        return False


def answer(deps, client: WebClient, workspace_id: str | None, text: str, *, channel: str, user: str | None,
           thread_ts: str | None = None, respond: Callable[..., Any] | None = None) -> Reply | None:
    """Route `text` and post the answer in `channel` (in `thread_ts` when given). Slow commands first post
    "Working on it…" and keep it current through the router's progress callback; the answer replaces it."""
    if not workspace_id:
        tell(client, channel, user, NO_WORKSPACE, respond=respond, thread_ts=thread_ts)
        return None
    from bot.router import normalize, route, tokenize

    words = tokenize(normalize(text))
    progress = None
    if is_slow(words):
        try:
            progress = ProgressMessage(client, channel, f"Working on `{' '.join(words)[:200]}`…", thread_ts=thread_ts)
        except SlackApiError as exc:
            if exc.response.get("error") not in UNREACHABLE:
                raise
    reply = route(deps.db, deps.settings, workspace_id, text, source="slack", user_id=user, channel_id=channel,
                  progress=progress.update if progress else None)
    if reply.modal:
        reply = with_modal_button(reply)
    try:
        if progress is not None:
            if reply.ephemeral and user:  # e.g. an error: show it privately and drop the placeholder
                client.chat_delete(channel=channel, ts=progress.ts)
                post_reply(client, channel, reply, thread_ts=thread_ts, user=user)
            else:
                progress.finish(reply)
        else:
            post_reply(client, channel, reply, thread_ts=thread_ts, user=user)
    except SlackApiError as exc:
        if respond is None or exc.response.get("error") not in UNREACHABLE:
            raise
        respond(text=reply.text[:3000], blocks=reply.blocks or None, response_type="ephemeral")
    return reply


OPEN_MODAL_ACTION = "pandora_open_modal"


def with_modal_button(reply: Reply) -> Reply:
    """Where there is no trigger_id (a mention, a DM), a modal reply becomes its text plus an Open button."""
    from bot.render.blocks import actions, button, section

    blocks = [section(reply.text[:2900]), actions([button("Open", OPEN_MODAL_ACTION, reply.modal, style="primary")])]
    return Reply(text=reply.text, blocks=blocks, data=reply.data, ok=reply.ok)


def view_for(deps, workspace_id: str, modal: str) -> dict[str, Any]:
    """The view a Reply's `modal` names ("connect:<source>", "tracked_reps:<source>", "context", "quota",
    "mapping:<batch id>"), built by bot/modals.py."""
    from bot import modals

    return modals.view_for(deps.db, deps.settings, workspace_id, modal)


def open_modal(deps, client: WebClient, workspace_id: str | None, modal: str, trigger_id: str) -> None:
    if not workspace_id:
        raise ConfigError(NO_WORKSPACE)
    client.views_open(trigger_id=trigger_id, view=view_for(deps, workspace_id, modal))


def private_metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
