"""Settings of the twin service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class TwinSettings(ServiceSettings):
    service_name: ClassVar[str] = "twin"

    grpc_port: int = LOCAL_PORTS["twin"][0]
    http_port: int = LOCAL_PORTS["twin"][1]
    #: Kafka consumer group of ``device.readings.v1``.
    consumer_group: str = "twin"
    #: Kafka consumer group of ``symptom.reports.v1``.
    symptoms_consumer_group: str = "twin-symptoms"
    #: Kafka consumer group of ``actigraphy.analysis.completed.v1``.
    analyses_consumer_group: str = "twin-analyses"
    #: Attempts for a transiently failing event before it is dead-lettered.
    event_max_attempts: int = Field(default=5, ge=1)
    #: Consumer-group session timeout and heartbeat interval (milliseconds).
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    consumer_heartbeat_interval_ms: int = Field(default=3_000, ge=100)

    #: IANA time zone of a twin created without one; local days (day completion, daily series)
    #: are counted in the twin's zone.
    default_time_zone: str = "UTC"
    #: Days with activity counts the trailing week needs before a completed day requests a PAT
    #: analysis (1-7).
    analysis_min_days: int = Field(default=3, ge=1, le=7)

    #: Attempts of one twin change that loses optimistic-concurrency races before CONFLICT.
    twin_write_max_attempts: int = Field(default=60, ge=1)
    #: Full-jitter backoff between lost races: first and largest wait (seconds).
    twin_write_backoff_seconds: float = Field(default=0.005, gt=0)
    twin_write_max_backoff_seconds: float = Field(default=0.2, gt=0)

    #: Outbox relay: rows per publish batch, poll interval when idle (seconds), the longest wait
    #: after a broker failure (seconds), and how long published rows are kept (hours).
    outbox_batch_size: int = Field(default=200, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_max_backoff_seconds: float = Field(default=30.0, gt=0)
    outbox_retention_hours: float = Field(default=24.0, ge=0)

    #: GetInsights: overall deadline and each dependency's own deadline (seconds).
    insights_deadline_seconds: float = Field(default=2.0, gt=0)
    pat_timeout_seconds: float = Field(default=1.5, gt=0)
    forecasting_timeout_seconds: float = Field(default=1.5, gt=0)
    correlation_timeout_seconds: float = Field(default=1.5, gt=0)
    pharmacogenomics_timeout_seconds: float = Field(default=1.5, gt=0)
    #: Deadline of InterpretGenotype when recording a genotype (a VCF takes longer; seconds).
    genotype_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Circuit breakers of the dependencies: consecutive failures that open one, and seconds
    #: before an open breaker lets a trial call through.
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_recovery_seconds: float = Field(default=10.0, gt=0)

    @field_validator("default_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value
