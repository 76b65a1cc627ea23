"""The one router: command text in, `Reply` out, whoever asked (Slack, `pandora say`, REST actions).

`route(db, settings, workspace_id, "/pandora forecast period=…")` parses the text and dispatches: `help`,
every skill by name or short alias (with NAME=VALUE parameters), `connect`, `sync`, `status`, `import`,
`context`, `quota` (bot/router_admin.py), `digest …` (bot.digests) and free text (bot.conversation). The
digest and conversation modules are imported lazily, so the router works before they exist.

`route` never raises for anything a user typed: unknown input gets help, a PandoraError becomes an
ok=False Reply with its message, and an unexpected exception becomes an ok=False Reply (logged with its
traceback, never shown). It never talks to Slack: opening a modal is asked for with `Reply.modal`.
"""
from __future__ import annotations

import importlib
import logging
import re
import shlex
from typing import Any, Callable

from bot import router_admin as admin
from bot.render.blocks import (context, fields_blocks, header, mrkdwn_escape as esc, render_result, reply_from_blocks,
                               section)
from bot.reply import Progress, Reply
from core.errors import InputError, NotFound, PandoraError
from core.settings import Settings
from skills import registry
from skills.runtime import run_skill

log = logging.getLogger("pandora.router")

# Short names people type that the skills themselves do not declare.
EXTRA_ALIASES = {"pipeline": "pipeline-coverage"}
TRIGGERS = {"cli": "cli", "slack": "slack", "rest": "api"}
_MENTION = re.compile(r"^(<@[A-Z0-9]+(\|[^>]*)?>\s*)+")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})

COMMANDS: list[tuple[str, str, str]] = [  # (name, example, what it does)
    ("help", "help", "this list"),
    ("<skill>", "forecast", "run a skill (see the list below); add NAME=VALUE parameters, e.g. `risk limit=5`"),
    ("status", "status", "connections, last syncs, row counts, pending imports"),
    ("connect", "connect hubspot", "connect a source (opens a form in Slack); `connect gong reps` picks tracked reps"),
    ("sync", "sync hubspot", "sync a connected source now"),
    ("import", "import", "how to import a CSV or Excel export"),
    ("context", "context show", "the business context (opens the editor in Slack)"),
    ("quota", "quota show", "this period's team and per-rep quotas (opens the editor in Slack)"),
    ("digest", "digest set weekly mon 09:00 #revops", "scheduled digests: `digest list`, `digest remove ID`"),
    ("<question>", "which deals over 50k slipped this month?", "ask in plain language"),
]


def route(db, settings: Settings, workspace_id, text: str, *, source: str = "cli", user_id: str | None = None,
          channel_id: str | None = None, progress: Progress | None = None) -> Reply:
    """Answer one command. Never raises for user input (see the module docstring)."""
    try:
        if not workspace_id:  # e.g. a Slack team that never finished installing
            words = tokenize(normalize(text or ""))
            if not words or words[0].lower() in ("help", "?", "commands"):
                return help_reply(source)
            raise NotFound("No Pandora workspace is linked here yet: install Pandora to this Slack workspace "
                           "again, or from a shell create one with `pandora workspace create NAME`.")
        return _dispatch(db, settings, str(workspace_id), text or "", source=source, user_id=user_id,
                         channel_id=channel_id, progress=progress)
    except PandoraError as exc:
        return error_reply(exc.message, data={"error": exc.to_dict()})
    except Exception as exc:  # a bug, not the user's fault: log it, answer in one line
        log.exception("router failed on %r", text)
        return error_reply(f"Something went wrong on our side ({type(exc).__name__}). The error is logged; "
                           "try again, and if it keeps happening tell your Pandora admin.",
                           data={"error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}})


def error_reply(message: str, *, data: dict[str, Any] | None = None) -> Reply:
    reply = reply_from_blocks(message, [section(f"⚠️ {esc(message)}")], data=data or {}, ok=False)
    reply.ephemeral = True
    return reply


def normalize(text: str) -> str:
    """The command part of what was typed: without "/pandora", a leading @mention and smart quotes."""
    text = _MENTION.sub("", text.strip().translate(_QUOTES)).strip()
    if text.lower().startswith("/pandora"):
        text = text[len("/pandora"):].strip()
    elif text.lower().startswith("pandora "):
        text = text[len("pandora "):].strip()
    return text


def tokenize(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        return text.split()


def _dispatch(db, settings, workspace_id: str, raw: str, *, source, user_id, channel_id, progress) -> Reply:
    text = normalize(raw)
    words = tokenize(text)
    if not words:
        return help_reply(source)
    command, args = words[0].lower(), words[1:]
    rest = text[len(text.split(None, 1)[0]):].strip()  # the arguments as typed (digest wants its own parsing)
    if command in ("help", "?", "commands"):
        return help_reply(source)
    if command == "digest":
        digest_command = _optional("bot.digests", "digest_command")
        if digest_command is None:
            return help_reply(source, note="Scheduled digests are not available in this installation yet.")
        return digest_command(db, settings, workspace_id, rest, channel_id=channel_id, user_id=user_id)
    handler = admin.HANDLERS.get(command)
    if handler is not None:
        return handler(db, settings, workspace_id, args, source=source, progress=progress)
    skill = _skill(command)
    if skill is not None:
        params, loose = _params(args)
        if loose:  # "forecast for Q3?" is a question, not parameters
            return _converse(db, settings, workspace_id, text, progress, source,
                             fallback=InputError(f"{skill.name} takes NAME=VALUE parameters "
                                                 f"({_param_list(skill)}), got {loose[0]!r}", field=loose[0]))
        if progress:
            progress(f"Running {skill.name}…")
        result = run_skill(db, settings, workspace_id, skill.name, params, trigger=TRIGGERS.get(source, source))
        return render_result(result)
    if len(words) == 1 and not text.endswith("?"):
        return help_reply(source, note=f"I don't know the command {words[0]!r}.", ok=False)
    return _converse(db, settings, workspace_id, text, progress, source)


def _skill(command: str) -> registry.Skill | None:
    try:
        return registry.get(EXTRA_ALIASES.get(command, command))
    except NotFound:
        return None


def _params(args: list[str]) -> tuple[dict[str, str], list[str]]:
    params, loose = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.strip():
            params[key.strip().lower().replace("-", "_")] = value.strip()
        else:
            loose.append(arg)
    return params, loose


def _param_list(skill: registry.Skill) -> str:
    return ", ".join(f"{p.name}={p.default}" if p.default is not None else p.name for p in skill.params) or "none"


def _optional(module: str, attr: str) -> Callable | None:
    """`module.attr` when that module exists (another part of the app may not be installed yet)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, attr, None)


def _converse(db, settings, workspace_id, text, progress, source, *, fallback: PandoraError | None = None) -> Reply:
    answer = _optional("bot.conversation", "answer")
    if answer is None:
        if fallback is not None:
            raise fallback
        return help_reply(source, note="I can't answer questions in plain language yet; try one of these commands.",
                          ok=False)
    return answer(db, settings, workspace_id, text, progress=progress)


def short_name(skill: registry.Skill) -> str:
    """What to type for a skill: our extra alias, else its first alias that is not a router command."""
    extra = next((a for a, name in EXTRA_ALIASES.items() if name == skill.name), None)
    taken = {c for c, _, _ in COMMANDS} | set(admin.HANDLERS)
    return extra or next((a for a in skill.aliases if a not in taken), skill.name)


def _prefix(source: str) -> str:
    return "/pandora " if source == "slack" else ""


def help_reply(source: str = "cli", *, note: str | None = None, ok: bool = True) -> Reply:
    """Every command with a one-line example, then the skills with their aliases and parameters."""
    p = _prefix(source)
    skills = registry.all_skills()
    lines = [note, ""] if note else []
    lines.append("Pandora commands" + ("" if source == "slack" else ' (from a shell: pandora say "…" --workspace W)'))
    lines += [f"  {p}{example:<42} {what}" for _, example, what in COMMANDS]
    lines += ["", "Skills (name or alias):"]
    lines += [f"  {p}{short_name(s):<24} {s.name}: {s.description}"
              + (f" [{_param_list(s)}]" if s.params else "") for s in skills]
    blocks = [header("Pandora commands")]
    if note:
        blocks.append(section(f"*{esc(note)}*"))
    blocks.append(section("\n".join(f"• `{p}{esc(example)}` — {esc(what)}" for _, example, what in COMMANDS)))
    blocks += fields_blocks([(f"`{p}{short_name(s)}`",
                              esc(s.description) + (f"\n_{esc(_param_list(s))}_" if s.params else ""))
                             for s in skills])
    blocks.append(context("Skills answer by name (`forecast-rollup`) or alias (`forecast`); "
                          "`pandora skills list` shows them all from a shell."))
    data = {"commands": [{"command": c, "example": f"{p}{e}", "help": w} for c, e, w in COMMANDS],
            "skills": [{"name": s.name, "command": short_name(s), "aliases": list(s.aliases),
                        "description": s.description,
                        "params": [prm.name for prm in s.params]} for s in skills]}
    reply = reply_from_blocks("\n".join(lines), blocks, data=data, ok=ok)
    reply.ephemeral = True
    return reply
