"""Typed settings read from ``NOVAMIND_*`` environment variables.

Nothing else in Novamind reads the environment. Every service subclasses :class:`ServiceSettings`
to add its own options and to set its default ports; the defaults work on one machine
(``make dev``), and a cluster overrides them through the Helm chart.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


#: Local default gRPC/HTTP ports of each service; a cluster runs every service on 50051/8080.
LOCAL_PORTS: dict[str, tuple[int, int]] = {
    "pat": (50051, 8081),
    "forecasting": (50052, 8082),
    "correlation": (50053, 8083),
    "pharmacogenomics": (50054, 8084),
    "twin": (50055, 8085),
    "gateway": (0, 8000),
}

#: The five back-end services, in the order dashboards and health reports list them.
BACKEND_SERVICES: tuple[str, ...] = ("pat", "forecasting", "correlation", "pharmacogenomics", "twin")


class CoreSettings(BaseSettings):
    """Settings every Novamind process shares."""

    model_config = SettingsConfigDict(env_prefix="NOVAMIND_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    #: Secret for keyed-hash pseudonyms of patient identifiers (HMAC-SHA256).
    pseudonym_key: SecretStr = SecretStr("novamind-development-pseudonym-key")

    #: Key-encryption keys for data at rest: ``"kid1:base64key,kid2:base64key"`` (32-byte AES keys;
    #: commas or newlines separate entries). The default is a fixed development key that
    #: ``novamind.core.crypto.KeyRing.from_settings`` refuses in production.
    encryption_keys: SecretStr = SecretStr("dev-0:Zr+dIO7BOvozMksUEKK327zYu6RFeFO4q3baIMwxcjU=")
    #: The key id new data keys are wrapped under; it must be one of ``encryption_keys``.
    encryption_active_key: str = "dev-0"

    #: OpenID issuer whose RS256 tokens are accepted (default: the local dev issuer).
    oidc_issuer: str = "http://127.0.0.1:8090"
    #: The ``aud`` claim tokens must carry.
    oidc_audience: str = "novamind"
    #: JWKS URL; empty means discover it from ``<oidc_issuer>/.well-known/openid-configuration``.
    oidc_jwks_url: str = ""

    #: Kafka bootstrap servers; empty means "no broker configured" (the dev launcher embeds one).
    kafka_bootstrap: str = ""
    kafka_client_id_prefix: str = "novamind"

    #: SQLAlchemy URL; empty means a SQLite file under ``data_dir``.
    database_url: str = ""
    redis_url: str = ""
    data_dir: Path = Path("var")
    model_dir: Path = Path("models")

    #: OTLP/gRPC endpoint for traces; empty disables export (spans are still created).
    otlp_endpoint: str = ""

    #: Downstream gRPC addresses.
    pat_address: str = f"127.0.0.1:{LOCAL_PORTS['pat'][0]}"
    forecasting_address: str = f"127.0.0.1:{LOCAL_PORTS['forecasting'][0]}"
    correlation_address: str = f"127.0.0.1:{LOCAL_PORTS['correlation'][0]}"
    pharmacogenomics_address: str = f"127.0.0.1:{LOCAL_PORTS['pharmacogenomics'][0]}"
    twin_address: str = f"127.0.0.1:{LOCAL_PORTS['twin'][0]}"

    def address_of(self, service: str) -> str:
        """The configured gRPC address of a back-end service (``host:port``)."""
        if service not in BACKEND_SERVICES:
            raise KeyError(f"unknown service {service!r}; expected one of {', '.join(BACKEND_SERVICES)}")
        return str(getattr(self, f"{service}_address"))

    def sqlalchemy_url(self, service: str) -> str:
        """The database URL, defaulting to ``sqlite+aiosqlite:///<data_dir>/<service>.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT


class ServiceSettings(CoreSettings):
    """Settings of one long-running service process."""

    #: Set by each subclass: the service's name as it appears in logs, metrics and health.
    service_name: ClassVar[str] = "novamind"

    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    #: Seconds SIGTERM waits for in-flight requests and consumers before forcing a stop.
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    #: Default deadline for outgoing gRPC calls when the caller set none (seconds).
    default_call_timeout_seconds: float = Field(default=5.0, gt=0)
    max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    #: Reflection is on in development and off in production unless asked for.
    grpc_reflection: bool = True
