"""The CLASSIFY tier: DeepSeek V3 through Fireworks' OpenAI-compatible API (the `openai` client), temperature
0.1, JSON mode, the answer checked against a JSON schema — with the caller's deterministic rules as the fallback.

`classify(...)` never raises for an LLM problem. No FIREWORKS_API_KEY, a prompt over the per-call limit after
reduction, a run budget that cannot afford the call, a timeout, a refused key, a rate limit or an answer that breaks
the schema twice all return `fallback()`'s value with method "fallback" and the reason. An invalid answer is
retried once with a message saying what was wrong (so at most two requests); transport failures are retried once
by `calls.send`. Arrays in the answer longer than `LLMConfig.classify_max_items` (unless the schema sets maxItems)
are invalid: ask for fewer items per call, or batch.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import openai

from core.llm.budget import CallRecord, RunBudget, TokenUsage
from core.llm.calls import send
from core.llm.config import LLMConfig
from core.llm.prompt import Prompt, build_prompt, guard
from core.llm.safety import DATA_RULES
from core.llm.schema import check_schema, validate
from core.llm.tokens import estimate_tokens

log = logging.getLogger("pandora.llm")
NAME = "the classifier"
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")


@dataclass(frozen=True)
class ClassifyResult:
    value: Any
    method: str                      # "llm" | "fallback"
    reason: str | None               # why it fell back; None for "llm"
    tokens: TokenUsage
    model: str | None = None         # the model asked, when a request was sent
    attempts: int = 0                # requests sent
    notes: list[str] = field(default_factory=list)   # how the input was reduced

    @property
    def ai_used(self) -> bool:
        return self.method == "llm"


def system_prompt(task: str, schema: dict[str, Any]) -> str:
    return (f"You classify revenue-operations data for Pandora. Task: {task}.\n\n{DATA_RULES}\n\n"
            "Answer with one JSON object and nothing else (no prose, no code fence). It must match this JSON "
            f"schema exactly:\n{json.dumps(schema, ensure_ascii=False, sort_keys=True)}")


def classify(
    cfg: LLMConfig,
    budget: RunBudget,
    *,
    task: str,
    instructions: str,
    data: dict[str, Any],
    schema: dict[str, Any],
    fallback: Callable[[], Any],
    client: openai.OpenAI | None = None,
) -> ClassifyResult:
    """Ask the CLASSIFY model for a JSON value matching `schema`; `fallback()` answers whenever it cannot.

    `task` (a short name) and `instructions` are code; customer data goes only in `data` (label -> payload), which
    becomes sanitised data blocks. A ready `client` may be injected (it is then used even without a key)."""
    check_schema(schema)
    notes: list[str] = []

    def fall(reason: str, usage: TokenUsage = TokenUsage(), attempts: int = 0) -> ClassifyResult:
        model = cfg.classify_model if attempts else None
        log.info("classify %s fell back: %s", task, reason)
        budget.record(CallRecord("classify", task, model, "fallback", usage, attempts, reason))
        return ClassifyResult(fallback(), "fallback", reason, usage, model, attempts, notes)

    if not cfg.fireworks_api_key and client is None:
        return fall("no FIREWORKS_API_KEY set")
    prompt = build_prompt(system=system_prompt(task, schema), instructions=instructions, data=data,
                          max_input_tokens=cfg.max_input_tokens)
    notes.extend(prompt.notes)
    refusal = guard(prompt.tokens, cfg.max_output_tokens, budget, max_input_tokens=cfg.max_input_tokens,
                    warn_input_tokens=cfg.warn_input_tokens, what=f"classify {task}")
    if refusal:
        return fall(refusal)
    if client is not None:
        return _converse(client, cfg, budget, task, prompt, schema, notes, fall)
    with openai.OpenAI(api_key=cfg.fireworks_api_key, base_url=cfg.fireworks_base_url,
                       timeout=cfg.classify_timeout, max_retries=0) as own:
        return _converse(own, cfg, budget, task, prompt, schema, notes, fall)


def _converse(client: openai.OpenAI, cfg: LLMConfig, budget: RunBudget, task: str, prompt: Prompt,
              schema: dict[str, Any], notes: list[str], fall: Callable[..., ClassifyResult]) -> ClassifyResult:
    """At most two rounds: the question, then (if the answer broke the schema) one correction."""
    model = cfg.classify_model
    messages: list[dict[str, str]] = [{"role": "system", "content": prompt.system},
                                      {"role": "user", "content": prompt.user}]
    usage, attempts, problems = TokenUsage(), 0, [""]
    for round_ in range(2):
        estimate = sum(estimate_tokens(m["content"]) for m in messages)
        if round_ and (refusal := budget.refusal(usage.input + usage.output + estimate, cfg.max_output_tokens)):
            return fall(f"{NAME} output did not match the schema ({problems[0]}); no retry: {refusal}",
                        usage, attempts)
        outcome = send(lambda: client.chat.completions.create(
                           model=model, messages=messages, temperature=cfg.classify_temperature,
                           response_format={"type": "json_object"}, max_tokens=cfg.max_output_tokens),
                       name=NAME, timeout=cfg.classify_timeout, retries=cfg.max_retries,
                       max_wait=cfg.max_retry_wait, input_estimate=estimate)
        attempts += outcome.attempts
        usage += TokenUsage(outcome.lost_tokens, 0, bool(outcome.lost_tokens))
        if outcome.response is None:
            return fall(outcome.reason or f"{NAME} failed", usage, attempts)
        content = _content(outcome.response)
        usage += _usage(outcome.response, estimate, content)
        value, problems = parse(content, schema, cfg.classify_max_items)
        if not problems:
            budget.record(CallRecord("classify", task, model, "llm", usage, attempts))
            return ClassifyResult(value, "llm", None, usage, model, attempts, notes)
        messages = messages + [
            {"role": "assistant", "content": content[:2000]},
            {"role": "user", "content": "That answer was not valid: " + "; ".join(problems)
                                        + ". Reply with only the JSON object the schema describes."},
        ]
    return fall(f"{NAME} output did not match the schema twice ({problems[0]})", usage, attempts)


def parse(content: str, schema: dict[str, Any], max_items: int | None) -> tuple[Any, list[str]]:
    """The answer's JSON value and its problems (empty when it matches the schema)."""
    try:
        value = json.loads(_FENCE.sub("", content or ""))
    except ValueError:
        return None, ["the answer is not valid JSON"]
    return value, validate(value, schema, max_items=max_items)


def _content(response: Any) -> str:
    try:
        return response.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        return ""


def _usage(response: Any, estimate: int, content: str) -> TokenUsage:
    reported = getattr(response, "usage", None)
    prompt_tokens = getattr(reported, "prompt_tokens", None)
    completion_tokens = getattr(reported, "completion_tokens", None)
    if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
        return TokenUsage(prompt_tokens, completion_tokens, False)
    return TokenUsage(estimate, estimate_tokens(content), True)
