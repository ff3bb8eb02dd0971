"""Service health as the gateway reports it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ServingStatus(enum.Enum):
    """The gRPC health protocol's statuses, plus UNREACHABLE when no answer came in time."""

    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"
    UNKNOWN = "UNKNOWN"
    SERVICE_UNKNOWN = "SERVICE_UNKNOWN"
    UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True, slots=True)
class ServiceHealthReport:
    """One back-end service's answer to a health check; ``latency_ms`` in milliseconds."""

    service: str
    address: str
    status: ServingStatus
    latency_ms: float
    detail: str | None = None

    @property
    def serving(self) -> bool:
        return self.status is ServingStatus.SERVING
