"""Settings: the only module of the project that reads the environment (and ``.env``).

Every other module receives a :class:`Settings` instance from the composition root (``bot.bootstrap``). Secrets are
:class:`pydantic.SecretStr`, so they never show in a ``repr`` or a log line; their values are read only where a
client is built.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
MAX_CONTAINER_IDLE_MINUTES = 20
"""The Containers API refuses ``expires_after.minutes`` above 20; longer idle times are served by the sweeper."""

CommaList = Annotated[list[str], NoDecode]

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60),
    "gpt-5": (1.25, 10.00), "gpt-5-mini": (0.25, 2.00), "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40), "offline": (0.0, 0.0),
}
"""USD per million input and output tokens (list prices; override with ``DATASTORY_PRICES``)."""
DEFAULT_SESSION_PRICES: dict[str, float] = {"1g": 0.03, "4g": 0.12, "16g": 0.48, "64g": 1.92}
"""USD per hosted container session (20 minutes) by memory tier."""


class Settings(BaseSettings):
    """Every setting of the bot, read from the environment and ``.env``.

    Ecosystem variables keep their usual names (``SLACK_*``, ``OPENAI_*``); the bot's own take ``DATASTORY_``.
    """

    model_config = SettingsConfigDict(
        env_prefix="DATASTORY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        env_ignore_empty=True,  # `SLACK_APP_TOKEN=` (an empty line in .env, compose's unset ${VAR}) means unset
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token"),
        description="Bot token (xoxb-...) of the Slack app.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret"),
        description="Signing secret, checks that HTTP requests come from Slack (HTTP mode).",
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token"),
        description="App-level token (xapp-...) with connections:write; set means Socket Mode.",
    )
    slack_api_url: str = Field(
        default=DEFAULT_SLACK_API_URL, validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url"),
        description="Slack Web API base URL (GovSlack, proxies, emulators); with or without a trailing slash.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"),
        description="OpenAI (or compatible) API key.",
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        description="OpenAI-compatible endpoint; the SDK default when empty.",
    )
    model: str = Field(default="gpt-4.1", description="Model that runs the analysis (must support code_interpreter).")
    sandbox: Literal["openai", "local"] = Field(
        default="openai", description="`openai` (hosted containers) or `local` (a Python kernel per thread)."
    )
    database_url: str = Field(
        default="sqlite:///./datastory.db", description="`sqlite:///PATH` or `postgresql://...`."
    )
    migrate: bool = Field(
        default=True, description="Bring the database schema to this release's head revision at start; `false` "
        "refuses to start (exit code 2) while it is behind: run `datastory migrate` first.",
    )
    idle_minutes: int = Field(
        default=20, ge=1, description="Idle TTL of a thread's container, anchored on `last_active_at`."
    )
    batch_ttl_minutes: int = Field(
        default=5, ge=1, le=MAX_CONTAINER_IDLE_MINUTES,
        description="Idle TTL of a digest's batch container, which is also deleted as soon as its run ends.",
    )
    container_prefix: str = Field(
        default="datastory-", min_length=1,
        description="Every container the bot creates is named with it; the sweeper owns exactly these.",
    )
    container_memory: Literal["1g", "4g", "16g", "64g"] = Field(
        default="1g", description="Memory tier of the hosted containers (fixed for a container's life)."
    )
    sweep_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often `datastory run` sweeps idle and orphaned containers."
    )
    orphan_grace_minutes: float = Field(
        default=10.0, ge=0, description="A prefixed container the store does not own is deleted once this old."
    )
    digest_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often `datastory run` looks for due digests (the first look is at start)."
    )
    max_file_mb: int = Field(default=512, ge=1, description="Larger files are refused, before any download.")
    max_output_mb: int = Field(
        default=100, ge=1,
        description="Megabytes of the files the code wrote that one answer reads and attaches; the rest are named.",
    )
    allowed_channels: CommaList = Field(
        default_factory=list, description="Comma-separated channel ids the bot works in; empty = all."
    )
    allowed_users: CommaList = Field(
        default_factory=list, description="Comma-separated user ids the bot works for; empty = all."
    )
    admin_users: CommaList = Field(
        default_factory=list,
        description="Comma-separated user ids that may reset a whole channel and cancel others' digests.",
    )
    allow_external_users: bool = Field(
        default=False, description="Serve users of other organisations in shared (Slack Connect) channels."
    )
    max_concurrent_turns: int = Field(
        default=8, ge=1, description="Turns running at once across all threads; more work queues and says so."
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="How long a replica's hold on a turn (and the leader's on the periodic jobs) "
        "lasts unless renewed (every third of it); a replica that dies hands its work over within this time."
    )
    inbox_grace_seconds: float = Field(
        default=15.0, gt=0, description="How long the replica that acknowledged a Slack message has to process it "
        "before another replica (or the next start) replays it from the inbox in the database."
    )
    agent_sessions: bool = Field(
        default=True, description="Keep each thread's Slack agent session status (agents.sessions.setStatus: "
        "processing while a turn runs, active after, suspended when its container is swept, closed on reset), "
        "which gives people Slack's own Stop button; off by itself where Slack refuses the method."
    )
    max_attempts: int = Field(
        default=2, ge=1, description="Runs a turn may take (a crash or a lost lease ends one); after that the "
        "thread gets one failure note instead of another run."
    )
    max_turns_per_user: int = Field(
        default=5, ge=1, description="Questions one person may have queued or running at once; more are refused."
    )
    max_turns_per_channel: int = Field(
        default=20, ge=1, description="Questions one channel may have queued or running at once; more are refused."
    )
    max_queued_turns: int = Field(
        default=200, ge=1,
        description="Questions queued or running across the workspace; more get 'busy, try again in N minutes'.",
    )
    max_queue_wait_minutes: float = Field(
        default=15.0, gt=0,
        description="Longest a question may wait for a free slot; then its thread is told to ask again.",
    )
    turn_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest a single analysis turn may take before the thread is told."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long running turns may finish before the bot exits."
    )
    exec_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest one piece of code may run in the local sandbox before it is stopped."
    )
    local_pool_size: int = Field(
        default=2, ge=0, description="Local sandbox: pre-started Python kernels kept warm for new threads."
    )
    local_dir: str = Field(
        default="", description="Local sandbox: where thread working directories live (default: a temp dir)."
    )
    local_memory_mb: int = Field(default=2048, ge=256, description="Local sandbox: address-space limit per kernel.")
    local_cpu_seconds: int = Field(default=600, ge=10, description="Local sandbox: CPU-time limit per kernel.")
    local_max_file_mb: int = Field(default=1024, ge=1, description="Local sandbox: largest file a kernel may write.")
    local_max_processes: int = Field(
        default=64, ge=8, description="Local sandbox: process limit of the kernel's user (fork bombs)."
    )
    local_isolation: Literal["strict", "relaxed"] = Field(
        default="strict",
        description="Local sandbox: `strict` refuses to start unless every kernel has no network and a uid of its "
                    "own; `relaxed` runs with what the machine allows, logged and shown by `doctor` "
                    "(`datastory try` defaults to it).",
    )
    local_max_kernels: int | None = Field(
        default=None, ge=1,
        description="Local sandbox: live kernels at most; the longest-idle thread's kernel is stopped (files kept) "
                    "and rebuilt at its next question. Empty: as many as the memory holds at the memory limit.",
    )
    max_tool_calls: int = Field(
        default=12, ge=1, description="`chat_tools` analyst: most code runs the model may ask for in one turn."
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million input and output tokens by model, as JSON: {\"gpt-4.1\": [2.0, 8.0]}.",
    )
    container_session_usd: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SESSION_PRICES),
        description="USD per hosted container session by memory tier, as JSON: {\"1g\": 0.03}.",
    )
    container_minimum_minutes: float = Field(
        default=5.0, ge=0, description="Minutes a hosted container session is billed at least (`/datastory status` "
        "prices hosted workspaces by the minute alive).",
    )
    capacity_retry_seconds: float = Field(
        default=5.0, gt=0, description="First wait when the provider refuses a new container (then doubles)."
    )
    cost_footer: bool = Field(default=True, description="End each answer with a footer: time taken and cost.")
    stream_answers: bool = Field(
        default=True, description="Show answers while the model writes them (Slack's chat.startStream; "
        "chat.postMessage + chat.update where Slack refuses to stream).",
    )
    daily_budget_usd: float | None = Field(
        default=None, gt=0,
        description="Daily spending limit per user and per channel (UTC days; digest runs count); empty = none.",
    )
    retention_days: int = Field(
        default=30, ge=1,
        description="Turns (answers, code), digest runs, dedupe keys and idle threads older than this are pruned.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, GET /metrics needs `Authorization: Bearer <token>`.",
    )
    metrics_bind: str | None = Field(
        default=None, description="HOST:PORT of a second listener that alone serves GET /metrics.",
    )
    api_enabled: bool = Field(
        default=False, description="Serve the HTTP API (/v1/…) beside /slack/events in `datastory run --http`.",
    )
    api_data_dir: str = Field(
        default="./datastory-api", description="Where the HTTP API keeps its sessions' uploaded and produced files.",
    )
    api_max_files: int = Field(default=10, ge=1, le=100, description="Files one API session may upload at most.")
    api_rate_per_minute: int = Field(
        default=60, ge=1, description="Requests per minute one API key may make that start work (uploads, analyses).",
    )
    api_key: SecretStr | None = Field(
        default=None, description="The API key `datastory mcp --stdio` acts as (its sessions and limits).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` (one line per record) or `json` (one object per line, ids from context)."
    )

    @field_validator("allowed_channels", "allowed_users", "admin_users", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _check_slack_api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("SLACK_API_URL must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "sqlite+aiosqlite://", "postgresql://", "postgresql+asyncpg://",
                                 "postgres://")):
            raise ValueError("DATASTORY_DATABASE_URL must be sqlite:///PATH or postgresql://USER@HOST/DB")
        return value

    @field_validator("metrics_bind")
    @classmethod
    def _check_metrics_bind(cls, value: str | None) -> str | None:
        if not value:
            return None
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("DATASTORY_METRICS_BIND must be HOST:PORT, such as 127.0.0.1:9464")
        return value

    @model_validator(mode="after")
    def _check_prefix(self) -> Settings:
        if not self.container_prefix.replace("-", "").replace("_", "").isalnum():
            raise ValueError("DATASTORY_CONTAINER_PREFIX may hold only letters, digits, '-' and '_'")
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field`` (``idle_minutes`` → ``DATASTORY_IDLE_MINUTES``); an
        alias (validation errors name ``SLACK_API_URL``, not ``slack_api_url``) is already that variable."""
        aliases = {str(f.validation_alias.choices[0]) for f in cls.model_fields.values()
                   if isinstance(f.validation_alias, AliasChoices)}
        if field in aliases:
            return field
        info = cls.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
        return f"DATASTORY_{field.upper()}"

    @property
    def container_idle_minutes(self) -> int:
        """The ``expires_after.minutes`` sent to the provider: the idle TTL, capped at the API's limit."""
        return min(self.idle_minutes, MAX_CONTAINER_IDLE_MINUTES)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``DATASTORY_METRICS_BIND`` as ``(host, port)`` (brackets of an IPv6 host removed)."""
        if not self.metrics_bind:
            return None
        host, _, port = self.metrics_bind.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def max_file_bytes(self) -> int:
        """``DATASTORY_MAX_FILE_MB`` in bytes."""
        return self.max_file_mb * 1024 * 1024

    def missing_for_slack(self, *, socket_mode: bool) -> list[str]:
        """Names of the variables that must still be set to talk to Slack in the chosen mode."""
        missing = [] if self.slack_bot_token else ["SLACK_BOT_TOKEN"]
        if socket_mode and not self.slack_app_token:
            missing.append("SLACK_APP_TOKEN")
        if not socket_mode and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        if self.sandbox == "openai" and not self.openai_api_key:
            missing.append("OPENAI_API_KEY")
        return missing
