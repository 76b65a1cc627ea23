"""Settings, read from the environment in exactly one place.

Code never calls `os.environ` itself: it receives a `Settings` (or the few values it needs) as arguments, so
tests can build one from a plain dict. A setting that is required but missing raises `ConfigError` naming the
variable to set.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    pandora_home: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "pandora")
    secret_key: str | None = None
    migrations_dir: Path = REPO_ROOT / "migrations"
    db_pool_min: int = 1
    db_pool_max: int = 8
    sync_hour_utc: int = 5
    # LLM tiers (used from the skills issue on); absent keys mean deterministic fallbacks.
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    fireworks_api_key: str | None = None
    fireworks_base_url: str = "https://api.fireworks.ai/inference/v1"
    classify_model: str = "accounts/fireworks/models/deepseek-v3"
    synthesize_model: str = "claude-sonnet-4-6"
    classify_timeout: float = 30.0
    synthesize_timeout: float = 60.0
    llm_max_input_tokens: int = 20_000
    llm_max_output_tokens: int = 4_096
    llm_run_token_budget: int = 60_000
    import_max_bytes: int = 200 * 1024 * 1024
    # Slack app and sidecar (`pandora serve`). Without SLACK_CLIENT_ID/SECRET the app runs single-workspace on
    # SLACK_BOT_TOKEN; with them it installs into many Slack teams through OAuth (tokens kept in Postgres).
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None          # xapp-… for Socket Mode (`pandora serve --socket`)
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_api_url: str = "https://slack.com/api/"  # tests point this at the fake Slack Web API
    public_url: str = "http://localhost:3000"     # where Slack reaches the sidecar (OAuth redirect, events)
    serve_host: str = "127.0.0.1"
    serve_port: int = 3000
    default_workspace: str | None = None          # the Pandora workspace a single-workspace install serves
    # OAuth apps of the CRM connectors (the web flow runs through the sidecar's /oauth/<source>/… routes);
    # without them HubSpot still connects with a private-app token.
    hubspot_client_id: str | None = None
    hubspot_client_secret: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: str | None = None
    google_client_id: str | None = None         # Google Drive's OAuth app (drive.readonly)
    google_client_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = env.get("PANDORA_HOME") or str(Path.home() / ".local" / "share" / "pandora")
        hour = _int(env, "PANDORA_SYNC_HOUR_UTC", 5)
        if not 0 <= hour <= 23:
            raise ConfigError(f"PANDORA_SYNC_HOUR_UTC must be 0-23, got {hour}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            pandora_home=Path(home).expanduser(),
            secret_key=env.get("PANDORA_SECRET_KEY") or None,
            migrations_dir=Path(env.get("PANDORA_MIGRATIONS_DIR") or REPO_ROOT / "migrations"),
            db_pool_min=_int(env, "PANDORA_DB_POOL_MIN", 1),
            db_pool_max=_int(env, "PANDORA_DB_POOL_MAX", 8),
            sync_hour_utc=hour,
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            fireworks_api_key=env.get("FIREWORKS_API_KEY") or None,
            fireworks_base_url=env.get("FIREWORKS_BASE_URL") or "https://api.fireworks.ai/inference/v1",
            classify_model=env.get("PANDORA_CLASSIFY_MODEL") or "accounts/fireworks/models/deepseek-v3",
            synthesize_model=env.get("PANDORA_SYNTHESIZE_MODEL") or "claude-sonnet-4-6",
            classify_timeout=float(_int(env, "PANDORA_CLASSIFY_TIMEOUT", 30)),
            synthesize_timeout=float(_int(env, "PANDORA_SYNTHESIZE_TIMEOUT", 60)),
            llm_max_input_tokens=_int(env, "PANDORA_LLM_MAX_INPUT_TOKENS", 20_000),
            llm_max_output_tokens=_int(env, "PANDORA_LLM_MAX_OUTPUT_TOKENS", 4_096),
            llm_run_token_budget=_int(env, "PANDORA_LLM_RUN_TOKEN_BUDGET", 60_000),
            import_max_bytes=_int(env, "PANDORA_IMPORT_MAX_MB", 200) * 1024 * 1024,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_client_id=env.get("SLACK_CLIENT_ID") or None,
            slack_client_secret=env.get("SLACK_CLIENT_SECRET") or None,
            slack_api_url=env.get("SLACK_API_URL") or "https://slack.com/api/",
            public_url=(env.get("PANDORA_PUBLIC_URL") or "http://localhost:3000").rstrip("/"),
            serve_host=env.get("PANDORA_HOST") or "127.0.0.1",
            serve_port=_int(env, "PORT", 3000),
            default_workspace=env.get("PANDORA_WORKSPACE") or None,
            hubspot_client_id=env.get("HUBSPOT_CLIENT_ID") or None,
            hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET") or None,
            salesforce_client_id=env.get("SALESFORCE_CLIENT_ID") or None,
            salesforce_client_secret=env.get("SALESFORCE_CLIENT_SECRET") or None,
            google_client_id=env.get("GOOGLE_CLIENT_ID") or None,
            google_client_secret=env.get("GOOGLE_CLIENT_SECRET") or None,
        )

    @property
    def embedded(self) -> bool:
        """True when Pandora runs its own PostgreSQL under `pandora_home`."""
        return self.database_url is None

    def require(self, attr: str, variable: str) -> str:
        value = getattr(self, attr)
        if not value:
            raise ConfigError(f"{variable} is not set", variable=variable)
        return value
