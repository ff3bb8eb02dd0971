"""Settings of the gateway (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from novamind.core.config import LOCAL_PORTS, Environment, ServiceSettings
from novamind.core.kafka import TWIN_UPDATED


class GatewaySettings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    http_port: int = LOCAL_PORTS["gateway"][1]
    #: Deadline of one health check of one back-end service (seconds).
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    #: Serve the GraphiQL IDE on GET /graphql; defaults to on in development only.
    graphiql: bool | None = None

    # ---- authentication ----------------------------------------------------------------
    #: Require a bearer token for patient data. When false (development and tests only) a
    #: request without a token acts with the ``service`` role; serviceHealth is always open.
    auth_required: bool = True

    # ---- audit database ----------------------------------------------------------------
    #: Run ``novamind-gateway migrate`` at start-up; defaults to on outside production (a
    #: cluster runs the command as a job before the rollout).
    migrate_on_start: bool | None = None

    # ---- query limits ------------------------------------------------------------------
    #: Deepest selection nesting of one operation (introspection fields not counted).
    max_query_depth: int = Field(default=12, ge=2)
    #: Most aliases in one document.
    max_aliases: int = Field(default=15, ge=0)
    #: Most lexical tokens in one document.
    max_tokens: int = Field(default=5000, ge=100)
    #: Highest cost of one operation; see ``adapters/graphql_limits.py`` for the cost model.
    max_query_cost: int = Field(default=2000, ge=1)
    #: Page size a list field is charged for when its ``first`` argument is not a literal.
    default_page_size: int = Field(default=50, ge=1, le=500)
    #: Largest ``first`` a connection accepts.
    max_page_size: int = Field(default=100, ge=1, le=500)

    # ---- rate limits -------------------------------------------------------------------
    #: Operations per client (token subject, else client address) in moving windows, in the
    #: ``limits`` notation ("600/minute", "50/second;1200/minute"): a burst bound and a sustained
    #: one. Stored in process memory, or in Redis when NOVAMIND_REDIS_URL is set (shared by every
    #: replica). A dashboard polling every second stays far below the default.
    rate_limit: str = "50/second;1200/minute"
    #: Key prefix of the rate-limit counters (so tests and environments can share a Redis).
    rate_limit_namespace: str = "novamind-gateway"

    # ---- twin --------------------------------------------------------------------------
    #: Deadline of reads and writes at the twin (seconds).
    twin_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Deadline of one GetInsights call, passed to the twin, which bounds the model services' calls.
    insights_deadline_seconds: float = Field(default=5.0, gt=0)
    #: Consecutive twin failures that open the gateway's breaker, and its cool-down (seconds).
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_recovery_seconds: float = Field(default=15.0, gt=0)
    #: Days of symptom history fetched with a twin (the most a ``symptomHistory(days)`` may ask).
    symptom_history_max_days: int = Field(default=365, ge=1, le=3650)
    #: Largest VCF accepted by recordGenotype, after base64 decoding (bytes).
    max_vcf_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    # ---- subscriptions -----------------------------------------------------------------
    #: Topic of twin change events the twinUpdated subscription follows.
    twin_updates_topic: str = TWIN_UPDATED
    #: Events buffered per subscriber; a subscriber that falls further behind is dropped.
    subscription_queue_size: int = Field(default=64, ge=1)
    #: Seconds a WebSocket client has to send connection_init.
    subscription_init_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _production_requires_auth(self) -> GatewaySettings:
        if not self.auth_required and self.environment is Environment.PRODUCTION:
            raise ValueError("auth_required cannot be turned off in production")
        return self

    @property
    def migrate_on_start_enabled(self) -> bool:
        if self.migrate_on_start is None:
            return self.environment is not Environment.PRODUCTION
        return self.migrate_on_start

    @property
    def graphiql_enabled(self) -> bool:
        return self.is_development if self.graphiql is None else self.graphiql
