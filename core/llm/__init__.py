"""The LLM tiers: the one way Pandora calls a model.

- CLASSIFY (`classify`): DeepSeek V3 via Fireworks' OpenAI-compatible API; JSON checked against a schema; falls
  back to the caller's deterministic rules.
- SYNTHESIZE (`synthesize`): Claude via the anthropic SDK; falls back to the caller's template, marked as not
  AI-written.

Every call goes through the same guardrails: the prompt is estimated (≈ characters / 4) before sending, its data
reduced whole-record by whole-record to the per-call limit, the run's `RunBudget` must afford it, and customer data
enters only as delimited, sanitised data blocks under a fixed instruction. With no keys set everything still works.
This package never reads the environment (see `LLMConfig.from_settings`) and never imports bot/, skills/ or
connectors/.
"""
from __future__ import annotations

from core.llm.budget import CallRecord, RunBudget, TokenUsage
from core.llm.classify import ClassifyResult, classify
from core.llm.config import LLMConfig
from core.llm.prompt import Prompt, build_prompt
from core.llm.reduce import Fitted, fit_payload, fit_records, fit_text, shorten, summarize_list
from core.llm.safety import DATA_RULES, REDACTED, data_block, sanitize, sanitize_text, strip_data
from core.llm.schema import check_schema, validate
from core.llm.synthesize import SynthesizeResult, synthesize, template_footer
from core.llm.tokens import estimate_tokens

__all__ = [
    "CallRecord", "ClassifyResult", "DATA_RULES", "Fitted", "LLMConfig", "Prompt", "REDACTED", "RunBudget",
    "SynthesizeResult", "TokenUsage", "build_prompt", "check_schema", "classify", "data_block", "estimate_tokens",
    "fit_payload", "fit_records", "fit_text", "sanitize", "sanitize_text", "shorten", "strip_data",
    "summarize_list", "synthesize", "template_footer", "validate",
]
