"""The SYNTHESIZE tier: Claude through the `anthropic` client writes the prose of a skill result — with the
skill's template as the fallback, and a visible note whenever the text was not written by a model.

`synthesize(...)` never raises for an LLM problem. No ANTHROPIC_API_KEY, a prompt over the per-call limit after
reduction, a run budget that cannot afford the call, a timeout, a refused key, a rate limit, an overloaded API or an
empty answer all return the template's text with method "template", `ai_written` False and a footer such as
"_Written from a template: no ANTHROPIC_API_KEY set._" appended to `text` (`body` is the text without it).

No temperature is sent by default: Anthropic API version 2026-10-21, which anthropic SDK 2.x sends, rejects
temperature/top_p/top_k with HTTP 400 (LLMConfig.synthesize_temperature opts back in, for gateways).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import anthropic

from core.llm.budget import CallRecord, RunBudget, TokenUsage
from core.llm.calls import send
from core.llm.config import LLMConfig
from core.llm.prompt import Prompt, build_prompt, guard
from core.llm.safety import DATA_RULES
from core.llm.tokens import estimate_tokens

log = logging.getLogger("pandora.llm")
NAME = "Claude"


@dataclass(frozen=True)
class SynthesizeResult:
    text: str                        # what to show: the body, plus the template footer when not AI-written
    method: str                      # "llm" | "template"
    reason: str | None               # why the template was used; None for "llm"
    tokens: TokenUsage
    body: str = ""                   # the text without the footer
    model: str | None = None
    attempts: int = 0
    stop_reason: str | None = None   # Claude's, e.g. "end_turn" or "max_tokens" (text cut at the output cap)
    notes: list[str] = field(default_factory=list)   # how the input was reduced

    @property
    def ai_written(self) -> bool:
        return self.method == "llm"

    @property
    def footer(self) -> str | None:
        return None if self.ai_written else template_footer(self.reason)


def template_footer(reason: str | None) -> str:
    return f"_Written from a template: {reason or 'no model was used'}._"


def system_prompt(task: str) -> str:
    return (f"You are Pandora, a revenue-operations analyst writing for a sales team in Slack. Task: {task}.\n\n"
            f"{DATA_RULES}\n\nWrite only from the data given. When the data does not say something, say so "
            "rather than guess. Use Slack mrkdwn (*bold*, bullet lines), no tables.")


def synthesize(
    cfg: LLMConfig,
    budget: RunBudget,
    *,
    task: str,
    instructions: str,
    data: dict[str, Any],
    template: Callable[[], str],
    max_tokens: int | None = None,
    client: anthropic.Anthropic | None = None,
) -> SynthesizeResult:
    """Have Claude write the text `instructions` ask for from `data`; `template()` writes it whenever it cannot.

    `task` (a short name) and `instructions` are code; customer data goes only in `data` (label -> payload), which
    becomes sanitised data blocks. A ready `client` may be injected (it is then used even without a key)."""
    max_out = min(max_tokens or cfg.max_output_tokens, cfg.max_output_tokens)
    notes: list[str] = []

    def fall(reason: str, usage: TokenUsage = TokenUsage(), attempts: int = 0,
             stop_reason: str | None = None) -> SynthesizeResult:
        sent = cfg.synthesize_model if attempts else None
        log.info("synthesize %s used the template: %s", task, reason)
        budget.record(CallRecord("synthesize", task, sent, "template", usage, attempts, reason))
        body = template()
        return SynthesizeResult(f"{body}\n\n{template_footer(reason)}", "template", reason, usage, body, sent,
                                attempts, stop_reason, notes)

    if not cfg.anthropic_api_key and client is None:
        return fall("no ANTHROPIC_API_KEY set")
    prompt = build_prompt(system=system_prompt(task), instructions=instructions, data=data,
                          max_input_tokens=cfg.max_input_tokens)
    notes.extend(prompt.notes)
    refusal = guard(prompt.tokens, max_out, budget, max_input_tokens=cfg.max_input_tokens,
                    warn_input_tokens=cfg.warn_input_tokens, what=f"synthesize {task}")
    if refusal:
        return fall(refusal)
    if client is not None:
        return _ask(client, cfg, budget, task, prompt, max_out, notes, fall)
    with anthropic.Anthropic(api_key=cfg.anthropic_api_key, base_url=cfg.anthropic_base_url,
                             timeout=cfg.synthesize_timeout, max_retries=0) as own:
        return _ask(own, cfg, budget, task, prompt, max_out, notes, fall)


def _ask(client: anthropic.Anthropic, cfg: LLMConfig, budget: RunBudget, task: str, prompt: Prompt, max_out: int,
         notes: list[str], fall: Callable[..., SynthesizeResult]) -> SynthesizeResult:
    model = cfg.synthesize_model
    extra = {"temperature": cfg.synthesize_temperature} if cfg.synthesize_temperature is not None else None
    outcome = send(lambda: client.messages.create(
                       model=model, max_tokens=max_out, system=prompt.system,
                       messages=[{"role": "user", "content": prompt.user}], extra_body=extra),
                   name=NAME, timeout=cfg.synthesize_timeout, retries=cfg.max_retries,
                   max_wait=cfg.max_retry_wait, input_estimate=prompt.tokens)
    usage = TokenUsage(outcome.lost_tokens, 0, bool(outcome.lost_tokens))
    if outcome.response is None:
        return fall(outcome.reason or f"{NAME} failed", usage, outcome.attempts)
    response = outcome.response
    text = "".join(getattr(b, "text", "") for b in response.content or [] if getattr(b, "type", "") == "text")
    text = text.strip()
    usage += _usage(response, prompt.tokens, text)
    stop_reason = getattr(response, "stop_reason", None)
    if not text:
        return fall(f"{NAME} returned no text (stop reason {stop_reason})", usage, outcome.attempts, stop_reason)
    if stop_reason == "max_tokens":
        budget.warn(f"synthesize {task}: the answer reached the {max_out:,}-token output cap and was cut")
    budget.record(CallRecord("synthesize", task, model, "llm", usage, outcome.attempts))
    return SynthesizeResult(text, "llm", None, usage, text, model, outcome.attempts, stop_reason, notes)


def _usage(response: Any, estimate: int, text: str) -> TokenUsage:
    reported = getattr(response, "usage", None)
    input_tokens = getattr(reported, "input_tokens", None)
    output_tokens = getattr(reported, "output_tokens", None)
    if isinstance(input_tokens, int) and isinstance(output_tokens, int):
        cached = getattr(reported, "cache_read_input_tokens", None) or 0
        created = getattr(reported, "cache_creation_input_tokens", None) or 0
        return TokenUsage(input_tokens + cached + created, output_tokens, False)
    return TokenUsage(estimate, estimate_tokens(text), True)
