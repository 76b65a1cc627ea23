"""Plain-language questions ("which deals over 50k slipped this month?", "how is Dana tracking to quota?")
answered from the query layer and skills, with the figures AND the records they rest on.

`answer(db, settings, workspace_id, question)` returns a `Reply`:
- with ANTHROPIC_API_KEY set, Claude answers through tool use over the functions in `bot.conversation_tools`
  (a few rounds at most, the run's token budget checked before every call); the reply is Claude's text followed
  by the figures and records the tools returned, so no number rests on the model's word alone. Tool results
  reach the model only as fenced, sanitised data blocks (core.llm.safety). Any LLM failure or an exhausted
  budget falls back to keyword routing, and the reply says so;
- without a key, `bot.intents` turns the question into an intent and the same tools answer it.
It never writes to the CRM and never shows a traceback: a question it cannot place gets example questions.
"""
from __future__ import annotations

import logging
from datetime import date
from typing import Any

import anthropic

from bot import intents, transcript_tools
from bot.conversation_tools import (DEFINITIONS, Env, ToolResult, accounts_named_in, execute, rep_directory)
from bot.render.blocks import (context, fields_blocks, mrkdwn_escape, render_result, reply_from_blocks, section,
                               split_text)
from bot.reply import Progress, Reply
from core.context import get_context
from core.errors import PandoraError
from core.llm import DATA_RULES, LLMConfig, RunBudget, TokenUsage, data_block, estimate_tokens
from core.llm.budget import CallRecord
from core.llm.calls import send
from core.llm.prompt import guard

log = logging.getLogger("pandora.conversation")
MAX_TOOL_ROUNDS = 4        # rounds of tool calls before Claude must answer
MAX_OUTPUT_TOKENS = 1_500
LIST_CAP = 10              # records listed per group; the rest are counted
EXAMPLES = (
    "which deals over 50k slipped this month?",
    "how is Dana tracking to quota?",
    "what's going on with Acme?",
    "which deals are at risk?",
    "stale deals for Dana",
    "what's our open pipeline this quarter?",
    "won deals last quarter over $100k",
    "conversations without deals",
    "what did Acme say about pricing?",
    "run the forecast",
)


def answer(db, settings, workspace_id, question: str, *, progress: Progress | None = None,
           today: date | None = None) -> Reply:
    """Answer `question` for the workspace (`today` pins the date, for tests and reproducible demos)."""
    with db.connection() as conn:
        ctx = get_context(conn, str(workspace_id))
    env = Env(db, settings, str(workspace_id), today or date.today(), ctx)
    note = None
    if settings.anthropic_api_key:
        reply, reason = _ask_claude(env, question, progress)
        if reply is not None:
            return reply
        note = f"Claude could not answer ({reason}), so I matched keywords instead."
    try:
        reply = route(env, question, progress)
    except PandoraError as exc:
        reply = _text_reply(exc.message, ok=False, data={"error": exc.to_dict()})
    if note:
        reply.text = f"{reply.text.rstrip()}\n\nnote: {note}"
        reply.blocks = reply.blocks + [context(f"_{mrkdwn_escape(note)}_")] if len(reply.blocks) < 50 else reply.blocks
        reply.data["fallback_reason"] = note
    return reply


# ------------------------------------------------------------------------------------------ keyword routing

def route(env: Env, question: str, progress: Progress | None = None) -> Reply:
    """The keyword answer: intent → one tool → Reply."""
    intent = intents.parse(question, env.today, env.fy_start)
    if intent.kind == "help":
        return examples_reply(None)
    if intent.kind in transcript_tools.KINDS:  # before rep matching: "what did X say" names an account
        tool, tool_args = transcript_tools.intent_args(intent)
        if progress:
            progress("Reading call transcripts…")
        return render([execute(env, tool, tool_args)], data={"intent": intent.kind, "tool": tool,
                                                             "input": _clean(tool_args), "answered_by": "keywords"})
    reps = intents.match_reps(question, rep_directory(env))
    if len(reps) > 1:
        names = " or ".join(r["name"] for r in reps)
        return _text_reply(f"Which rep do you mean: {names}? Ask again with the full name.",
                           data={"intent": intent.kind, "candidates": [r["name"] for r in reps]})
    rep = reps[0]["name"] if reps else None
    kind = intent.kind
    if rep and (kind in ("account", "unknown") or (kind == "skill" and intent.skill == "forecast-rollup")):
        kind = "rep_quota"
    named = accounts_named_in(env, intents.normalize(question)) if kind in ("unknown", "deals", "account") else []
    if kind == "unknown" and named:
        kind, intent.account_term = "account", named[0]
    if kind == "unknown":
        return examples_reply("I couldn't tell what to look up.")
    if progress:
        progress("Looking that up…")
    if kind == "rep_quota":
        args = ("rep_quota_attainment", {"rep": rep}) if rep else ("run_skill", {"name": "forecast-rollup"})
    elif kind == "deals":
        args = ("search_deals", {**intent.deal_filters(), "owner": rep, "account": named[0] if named else None})
    elif kind == "risk":
        args = ("at_risk_deals", {"owner": rep, "amount_min": intent.amount_min})
    elif kind == "stale":
        days = next((int(w) for w, nxt in zip(intent.words, intent.words[1:] + [""]) if w.isdigit()
                     and nxt.startswith("day")), None)
        args = ("stale_deals", {"owner": rep, "days": days})
    elif kind == "pipeline":
        args = ("pipeline_summary", {"owner": rep, "period": intent.period.key if intent.period else None})
    elif kind == "cwd":
        args = ("conversations_without_deals", {"rep": rep})
    elif kind == "skill":
        args = ("run_skill", {"name": intent.skill})
    else:  # account
        try:
            args = ("get_account", {"name": intent.account_term})
            result = execute(env, *args)
        except PandoraError as exc:
            if not named or named[0].lower() == (intent.account_term or "").lower():
                return examples_reply(exc.message)
            args = ("get_account", {"name": named[0]})
            result = execute(env, *args)
        return render([result], data={"intent": kind, "tool": args[0], "input": args[1], "answered_by": "keywords"})
    result = execute(env, *args)
    return render([result], data={"intent": kind, "tool": args[0], "input": _clean(args[1]),
                                  "answered_by": "keywords"})


def _clean(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if not isinstance(v, (str, int, float, bool)) else v) for k, v in args.items()
            if v is not None}


def examples_reply(lead: str | None) -> Reply:
    head = (lead + " " if lead else "") + "Ask me about deals, reps, accounts or pipeline, for example:"
    lines = "\n".join(f"• {q}" for q in EXAMPLES)
    blocks = [section(mrkdwn_escape(head)), section(mrkdwn_escape(lines)),
              context("Or type `/pandora help` for commands.")]
    return reply_from_blocks(f"{head}\n{lines}\nOr type /pandora help for commands.", blocks,
                             data={"intent": "unknown", "examples": list(EXAMPLES)})


def _text_reply(text: str, *, ok: bool = True, data: dict[str, Any] | None = None) -> Reply:
    return reply_from_blocks(text, [section(mrkdwn_escape(piece)) for piece in split_text(text)], data=data, ok=ok)


# ------------------------------------------------------------------------------------------ rendering

def result_text(r: ToolResult) -> str:
    lines = [r.title]
    if r.figures:
        lines.append("  " + " · ".join(f"{k}: {v}" for k, v in r.figures))
    for g in r.groups:
        if not g.lines:
            continue
        lines.append(f"{g.title} ({g.total:,}):")
        lines += [f"  • {line}" for line in g.lines[:LIST_CAP]]
        if g.total > min(len(g.lines), LIST_CAP):
            lines.append(f"  … and {g.total - min(len(g.lines), LIST_CAP):,} more")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def result_blocks(r: ToolResult) -> list[dict[str, Any]]:
    if r.skill_result is not None:
        return render_result(r.skill_result).blocks
    blocks = [section(f"*{mrkdwn_escape(r.title)}*")]
    blocks += fields_blocks([(mrkdwn_escape(k), mrkdwn_escape(v)) for k, v in r.figures]) if r.figures else []
    for g in r.groups:
        if not g.lines:
            continue
        shown = g.lines[:LIST_CAP]
        body = f"*{mrkdwn_escape(g.title)}* ({g.total:,})\n" + "\n".join(f"• {mrkdwn_escape(x)}" for x in shown)
        blocks += [section(piece) for piece in split_text(body)]
        if g.total > len(shown):
            blocks.append(context(f"… and {g.total - len(shown):,} more (all rows are in the JSON reply)"))
    if r.notes:
        blocks.append(context(mrkdwn_escape(" ".join(r.notes))))
    return blocks


def render(results: list[ToolResult], *, lead: str | None = None, data: dict[str, Any] | None = None) -> Reply:
    """One Reply for the tool results (and Claude's text as `lead`): text, blocks, and the rows in data."""
    texts = [lead] if lead else []
    blocks: list[dict[str, Any]] = [section(piece) for piece in split_text(lead)] if lead else []
    files: list[str] = []
    for r in results:
        if r.skill_result is not None:
            skill_reply = render_result(r.skill_result)
            texts.append(skill_reply.text)
            files += skill_reply.files
        else:
            texts.append(result_text(r))
        blocks += result_blocks(r)
    payload = {**(data or {}), "results": [r.to_dict() for r in results]}
    if len(results) == 1:
        payload["rows"] = payload["results"][0]["records"]
        payload["total"] = results[0].total
    reply = reply_from_blocks("\n\n".join(texts), blocks, data=payload)
    reply.files = files
    return reply


# ------------------------------------------------------------------------------------------ Claude tool use

def system_prompt(today: date) -> str:
    return ("You are Pandora, a revenue-operations analyst answering a sales team's question in Slack. "
            f"Today is {today.isoformat()}. Use the tools to look up every figure; never state a number or a "
            "record that no tool returned, and say so when the tools do not have the answer. "
            f"{DATA_RULES} Tool results arrive as such data blocks. Answer in a few sentences of Slack mrkdwn: "
            "the records behind your answer are listed under it automatically, so do not repeat long lists.")


def _ask_claude(env: Env, question: str, progress: Progress | None) -> tuple[Reply | None, str | None]:
    """(Reply, None) when Claude answered; (None, reason) when it could not and keywords must answer."""
    cfg = LLMConfig.from_settings(env.settings)
    budget = RunBudget.from_config(cfg)
    system = system_prompt(env.today)
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    calls: list[dict[str, Any]] = []
    results: list[ToolResult] = []
    max_out = min(MAX_OUTPUT_TOKENS, cfg.max_output_tokens)
    extra = {"temperature": cfg.synthesize_temperature} if cfg.synthesize_temperature is not None else None
    if progress:
        progress("Thinking…")
    with anthropic.Anthropic(api_key=cfg.anthropic_api_key, base_url=cfg.anthropic_base_url,
                             timeout=cfg.synthesize_timeout, max_retries=0) as client:
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            tokens = estimate_tokens(system) + estimate_tokens(messages) + estimate_tokens(DEFINITIONS)
            refusal = guard(tokens, max_out, budget, max_input_tokens=cfg.max_input_tokens,
                            warn_input_tokens=cfg.warn_input_tokens, what="conversation")
            if refusal:
                return None, refusal
            outcome = send(lambda: client.messages.create(model=cfg.synthesize_model, max_tokens=max_out,
                                                          system=system, tools=DEFINITIONS, messages=messages,
                                                          extra_body=extra),
                           name="Claude", timeout=cfg.synthesize_timeout, retries=cfg.max_retries,
                           max_wait=cfg.max_retry_wait, input_estimate=tokens)
            if outcome.response is None:
                budget.record(CallRecord("synthesize", "conversation", cfg.synthesize_model, "fallback",
                                         TokenUsage(outcome.lost_tokens, 0, True), outcome.attempts, outcome.reason))
                return None, outcome.reason or "Claude failed"
            response = outcome.response
            budget.record(CallRecord("synthesize", "conversation", cfg.synthesize_model, "llm",
                                     _usage(response, tokens), outcome.attempts))
            uses = [b for b in response.content or [] if getattr(b, "type", "") == "tool_use"]
            if response.stop_reason != "tool_use" or not uses:
                text = "".join(getattr(b, "text", "") for b in response.content or []
                               if getattr(b, "type", "") == "text").strip()
                if not text:
                    return None, f"Claude returned no text (stop reason {response.stop_reason})"
                data = {"answered_by": "claude", "model": cfg.synthesize_model, "tool_calls": calls,
                        "tokens": budget.totals()}
                reply = render(results, lead=text, data=data)
                reply.blocks = reply.blocks + [context("_Figures and records above come from Pandora's database; "
                                                       "the summary was written by Claude._")] \
                    if len(reply.blocks) < 50 else reply.blocks
                return reply, None
            if round_ == MAX_TOOL_ROUNDS:
                return None, f"Claude still wanted more lookups after {MAX_TOOL_ROUNDS} rounds"
            messages.append({"role": "assistant", "content": [_block(b) for b in response.content]})
            messages.append({"role": "user", "content": [_run_tool(env, b, calls, results, progress) for b in uses]})
    return None, "Claude did not answer"  # pragma: no cover (the loop always returns)


def _run_tool(env: Env, use: Any, calls: list, results: list[ToolResult], progress: Progress | None) -> dict:
    """One tool_use → its tool_result block; the tool's output enters the prompt only as a data block."""
    if progress:
        progress(f"Looking up {use.name.replace('_', ' ')}…")
    try:
        result = execute(env, use.name, dict(use.input or {}))
    except Exception as exc:  # noqa: BLE001 - the model hears what went wrong and may try another lookup
        message = exc.message if isinstance(exc, PandoraError) else "the lookup failed on Pandora's side"
        if not isinstance(exc, PandoraError):
            log.exception("conversation tool %s failed on %r", use.name, use.input)
        calls.append({"tool": use.name, "input": use.input, "error": message})
        return {"type": "tool_result", "tool_use_id": use.id, "is_error": True,
                "content": data_block("tool_error", {"error": message})}
    calls.append({"tool": use.name, "input": use.input, "total": result.total})
    results.append(result)
    return {"type": "tool_result", "tool_use_id": use.id, "content": data_block("tool_result", result.for_model())}


def _block(b: Any) -> dict[str, Any]:
    if getattr(b, "type", "") == "tool_use":
        return {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
    return {"type": "text", "text": getattr(b, "text", "")}


def _usage(response: Any, estimate: int) -> TokenUsage:
    reported = getattr(response, "usage", None)
    tin, tout = getattr(reported, "input_tokens", None), getattr(reported, "output_tokens", None)
    if isinstance(tin, int) and isinstance(tout, int):
        return TokenUsage(tin, tout, False)
    return TokenUsage(estimate, 0, True)
