"""LLMConfig: everything the two tiers need (keys, base URLs, models, timeouts, token limits), built once from
`Settings` and handed to every call. Nothing here reads the environment.

Settings that do not exist yet (the Claude model id, timeouts, budgets) are read with `getattr` so that adding them
to `Settings` later makes them flow through without touching this module; until then the defaults below apply.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

DEFAULT_CLASSIFY_MODEL = "accounts/fireworks/models/deepseek-v3"
DEFAULT_SYNTHESIZE_MODEL = "claude-sonnet-4-6"
DEFAULT_FIREWORKS_BASE_URL = "https://api.fireworks.ai/inference/v1"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class LLMConfig:
    # CLASSIFY tier: DeepSeek through Fireworks' OpenAI-compatible API.
    fireworks_api_key: str | None = None
    fireworks_base_url: str = DEFAULT_FIREWORKS_BASE_URL
    classify_model: str = DEFAULT_CLASSIFY_MODEL
    classify_temperature: float = 0.1
    classify_timeout: float = 30.0
    classify_max_items: int = 30        # an array in a classify answer longer than this (unless the schema sets
                                        # its own maxItems) is invalid output: the original failed the step at 30
    # SYNTHESIZE tier: Claude through the anthropic SDK.
    anthropic_api_key: str | None = None
    anthropic_base_url: str = DEFAULT_ANTHROPIC_BASE_URL
    synthesize_model: str = DEFAULT_SYNTHESIZE_MODEL
    # The original sent 0.7. Anthropic API version 2026-10-21 (the one anthropic SDK 2.x sends) rejects every
    # sampling parameter with HTTP 400, so none is sent unless this is set (for a gateway that still takes it).
    synthesize_temperature: float | None = None
    synthesize_timeout: float = 60.0
    # Both tiers.
    max_retries: int = 1                # one retry of a timeout / connection error / 408 / 409 / 429 / 5xx
    max_retry_wait: float = 10.0        # a Retry-After longer than this is not waited for: the call falls back
    max_input_tokens: int = 20_000      # per call, after reduction; over it the call is not made (fallback)
    warn_input_tokens: int = 8_000      # per call: logged and noted on the run
    max_output_tokens: int = 4_096      # per call
    run_token_budget: int = 60_000      # per skill run, input + output of every call (see RunBudget)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> LLMConfig:
        """Build from a `core.settings.Settings` (or anything with the same attributes); `overrides` win."""
        def pick(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value in (None, "") else value

        values: dict[str, Any] = {
            "fireworks_api_key": pick("fireworks_api_key", None),
            "fireworks_base_url": pick("fireworks_base_url", DEFAULT_FIREWORKS_BASE_URL),
            "classify_model": pick("classify_model", DEFAULT_CLASSIFY_MODEL),
            "classify_timeout": float(pick("classify_timeout", cls.classify_timeout)),
            "anthropic_api_key": pick("anthropic_api_key", None),
            "anthropic_base_url": pick("anthropic_base_url", DEFAULT_ANTHROPIC_BASE_URL),
            "synthesize_model": pick("synthesize_model", DEFAULT_SYNTHESIZE_MODEL),
            "synthesize_timeout": float(pick("synthesize_timeout", cls.synthesize_timeout)),
            "max_input_tokens": int(pick("llm_max_input_tokens", cls.max_input_tokens)),
            "max_output_tokens": int(pick("llm_max_output_tokens", cls.max_output_tokens)),
            "run_token_budget": int(pick("llm_run_token_budget", cls.run_token_budget)),
        }
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> LLMConfig:
        """A copy with some fields changed (tests, or a skill that needs a longer timeout)."""
        return replace(self, **changes)
