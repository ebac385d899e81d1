"""Settings of the worker, producer and simulator: one pydantic-settings object, KMG_* variables."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.events import MedClass
from alerts.rule_config import RuleConfig
from streams.rule_files import load_rule_config
from streams.watermark import DEFAULT_MAX_EVENT_LEAD_HOURS, DEFAULT_MAX_PATIENT_EVENTS


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    SNAPPY = "snappy"
    LZ4 = "lz4"
    ZSTD = "zstd"


class ProcessingGuarantee(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def number(self) -> int:
        """Return the logging module's number for this level."""
        return logging.getLevelNamesMapping()[self.value.upper()]


# Settings fields that are rule parameters (RULES.md names): passed to load_rule_config as
# overrides when set, so KMG_HOLD_MINUTES=20 means hold_minutes = 20.
RULE_PARAMETERS = (
    "k_low",
    "k_moderate",
    "k_severe",
    "mg_low",
    "mg_severe",
    "hold_minutes",
    "mg_lookback_hours",
    "k_recent_hours",
    "refractory_window_hours",
    "refractory_min_episodes",
    "diuretic_lookback_hours",
    "alert_ttl_hours",
    "episode_gap_hours",
    "history_hours",
    "allowed_lateness_minutes",
    "k_plausible",
    "mg_plausible",
    "k_codes",
    "mg_codes",
    "k_sparing_keywords",
    "med_codes",
    "med_keywords",
)


class Settings(BaseSettings):
    """Everything a worker, `kmg produce` or `kmg simulate` needs; built once at the entry point.

    Rule parameters left unset come from config/rules.toml, then `rules_file`. The worker
    always advances idle partitions per `idle_advance` here; the `idle_advance` key of a
    rules file is the replay's and is not read by the worker.
    """

    model_config = SettingsConfigDict(env_prefix="KMG_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    app_id: str = "kmg-sentinel"
    topic_prefix: str = "kmg."
    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path(".cache/worker")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    store: str = "rocksdb://"
    rules_file: Path | None = None
    idle_advance: bool = True
    # A patient's events in memory (within the duplicate horizon) before their further messages
    # are dead-lettered `patient_overloaded`: a flooded state would stop the worker.
    max_patient_events: int = Field(default=DEFAULT_MAX_PATIENT_EVENTS, ge=100)
    # An event whose time is further ahead of the worker's clock is dead-lettered
    # `ahead_of_clock` instead of moving W; 0 takes any (a simulated feed faster than real time).
    max_event_lead_hours: float = Field(default=DEFAULT_MAX_EVENT_LEAD_HOURS, ge=0)
    tick_interval_seconds: float = Field(default=2.0, gt=0)
    ticks_retention_hours: float = Field(default=1.0, gt=0)
    processing_guarantee: ProcessingGuarantee = ProcessingGuarantee.AT_LEAST_ONCE
    # Commits run on this timer only, beside the agent (each waits for the changelog writes it
    # covers). Short: a restart after a crash takes again (and re-alerts) less.
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    # How long the group waits for a worker that stopped heartbeating (SIGKILL) before its
    # partitions move; Faust's default.
    session_timeout_seconds: float = Field(default=60.0, ge=6)
    # A stop that has not finished by then (the broker gone, the producer waiting on it) ends
    # the process: what was not acknowledged is not committed, and the next start takes it.
    # At least 5 s: a clean stop's own teardown takes about 1.5 s after its services stop.
    shutdown_grace_seconds: float = Field(default=20.0, ge=5)
    # A batch waits for its alerts' acks: lingering would add to every alert's latency, and
    # a batch's changelog records are queued together anyway.
    producer_linger_seconds: float = Field(default=0.0, ge=0)
    producer_batch_bytes: int = Field(default=262_144, ge=1_024)
    # The changelog carries each changed patient's whole state (JSON, about 1 KB): a backlog
    # writes more bytes to it than it reads. zstd (level 3) cuts them about 5x at ~250 MB/s;
    # the client's lz4 is level 9, several times slower here.
    producer_compression: Compression = Compression.ZSTD
    state_cache_size: int = Field(default=50_000, ge=0)
    # Only a backlog fills a batch (a caught-up worker gets what arrived). There, a patient
    # seen several times in one batch is written once: 20,000 took the bench's catch-up from
    # 15,600 to 20,000-20,700 events/s, at most ~1 s of alert delay per batch while catching up.
    batch_max_messages: int = Field(default=20_000, ge=1)
    log_level: LogLevel = LogLevel.INFO

    k_low: float | None = None
    k_moderate: float | None = None
    k_severe: float | None = None
    mg_low: float | None = None
    mg_severe: float | None = None
    hold_minutes: float | None = None
    mg_lookback_hours: float | None = None
    k_recent_hours: float | None = None
    refractory_window_hours: float | None = None
    refractory_min_episodes: int | None = None
    diuretic_lookback_hours: float | None = None
    alert_ttl_hours: float | None = None
    episode_gap_hours: float | None = None
    history_hours: float | None = None
    allowed_lateness_minutes: float | None = None
    k_plausible: tuple[float, float] | None = None
    mg_plausible: tuple[float, float] | None = None
    k_codes: list[str] | None = None
    mg_codes: list[str] | None = None
    k_sparing_keywords: list[str] | None = None
    med_codes: dict[MedClass, list[str]] | None = None
    med_keywords: dict[MedClass, list[str]] | None = None

    @field_validator("processing_guarantee", "producer_compression", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        # WARNING and ZSTD name the same choices as their lower-case spellings.
        return value.lower() if isinstance(value, str) else value

    def rule_overrides(self) -> dict[str, Any]:
        """Return the rule parameters set here, by their RULES.md names."""
        values = self.model_dump(include=set(RULE_PARAMETERS), exclude_none=True, mode="json")
        return {key: values[key] for key in RULE_PARAMETERS if key in values}

    def rule_config(self) -> RuleConfig:
        """Load config/rules.toml, overlay `rules_file`, then the parameters set here."""
        return load_rule_config(self.rules_file, self.rule_overrides())

    @property
    def topic_labs(self) -> str:
        return f"{self.topic_prefix}labs"

    @property
    def topic_meds(self) -> str:
        return f"{self.topic_prefix}meds"

    @property
    def topic_alerts(self) -> str:
        return f"{self.topic_prefix}alerts"

    @property
    def topic_dead_letter(self) -> str:
        return f"{self.topic_prefix}dead-letter"

    @property
    def topic_ticks(self) -> str:
        return f"{self.topic_prefix}ticks"

    @property
    def input_topics(self) -> tuple[str, str]:
        return (self.topic_labs, self.topic_meds)
