"""The gateway's client of the twin's gRPC API, through the core ServiceClient and its breaker.

Every call carries the caller's bearer token and the request id, so the twin can apply its own
checks and its logs correlate with the gateway's audit records. Reads and keyed writes are
retried with backoff; writes guarded only by ``expected_version`` are not (a stale version stays
stale). Errors arrive as taxonomy errors (the twin's own, or SERVICE_UNAVAILABLE /
DEADLINE_EXCEEDED naming ``twin``). A CONFLICT answers the request, so it passes the breaker as a
result and is raised afterwards: clients racing on one twin cannot open the gateway's breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from novamind.api.common.v1 import common_pb2
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.errors import NovamindError
from novamind.core.resilience import CircuitBreakers
from novamind.core.rpc import AUTHORIZATION_KEY, REQUEST_ID_KEY, ServiceClient, error_from_rpc, open_channel

T = TypeVar("T")

#: Most patients one BatchGetTwins call may name (the twin's limit).
BATCH_LIMIT = 500


@dataclass(frozen=True, slots=True)
class CallerMetadata:
    """What travels with each call: the caller's token (may be empty) and the request id."""

    token: str = ""
    request_id: str = ""

    def pairs(self) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        if self.token:
            pairs.append((AUTHORIZATION_KEY, f"Bearer {self.token}"))
        if self.request_id:
            pairs.append((REQUEST_ID_KEY, self.request_id))
        return tuple(pairs)


@dataclass(frozen=True, slots=True)
class _Refused:
    """The twin's CONFLICT answer, carried past the breaker as a result rather than a failure."""

    error: NovamindError


#: Statuses that describe the request (a stale version), not the twin's health: they must not
#: count towards opening the breaker, and retrying the same request cannot help.
_REQUEST_CONFLICTS = frozenset({grpc.StatusCode.ABORTED, grpc.StatusCode.ALREADY_EXISTS})


class _WithMetadata:
    """A stub method bound to call metadata, still named for the client's metrics."""

    def __init__(self, method: Callable[..., Awaitable[Any]], metadata: tuple[tuple[str, str], ...]) -> None:
        self._inner = method
        self._method = getattr(method, "_method", b"")
        self._metadata = metadata

    async def __call__(self, request: Any, *, timeout: float | None = None) -> Any:
        try:
            return await self._inner(request, timeout=timeout, metadata=self._metadata or None)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REQUEST_CONFLICTS:
                return _Refused(error_from_rpc(exc, "twin"))
            raise


def patient_ref(pseudonym: str) -> common_pb2.PatientRef:
    return common_pb2.PatientRef(pseudonym=pseudonym)


class TwinClient:
    """Typed calls to ``TwinService``; timeouts in seconds."""

    def __init__(
        self,
        address: str,
        *,
        breakers: CircuitBreakers,
        timeout: float,
        insights_deadline: float,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._channel = open_channel(address, default_timeout=timeout, max_message_bytes=max_message_bytes)
        self._client = ServiceClient("twin", self._channel, breakers=breakers)
        self._stub = twin_pb2_grpc.TwinServiceStub(self._channel)
        self._timeout = timeout
        self._insights_deadline = insights_deadline

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        caller: CallerMetadata,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> T:
        bound: Callable[..., Awaitable[Any]] = _WithMetadata(method, caller.pairs())
        result = await self._client.call(
            bound, request, timeout=timeout or self._timeout, idempotent=idempotent
        )
        if isinstance(result, _Refused):
            raise result.error
        answer: T = result
        return answer

    async def batch_get_twins(
        self, patients: Sequence[str], caller: CallerMetadata, *, symptom_history_days: int
    ) -> dict[str, twin_pb2.Twin]:
        """The twins of ``patients`` by pseudonym; patients without a twin are absent."""
        found: dict[str, twin_pb2.Twin] = {}
        unique = list(dict.fromkeys(patients))
        for start in range(0, len(unique), BATCH_LIMIT):
            chunk = unique[start : start + BATCH_LIMIT]
            request = twin_pb2.BatchGetTwinsRequest(
                patients=[patient_ref(p) for p in chunk], symptom_history_days=symptom_history_days
            )
            response = await self._call(self._stub.BatchGetTwins, request, caller)
            for twin in response.twins:
                found[twin.patient.pseudonym] = twin
        return found

    async def list_versions(
        self, patient: str, caller: CallerMetadata, *, page_size: int, page_token: str
    ) -> twin_pb2.ListTwinVersionsResponse:
        request = twin_pb2.ListTwinVersionsRequest(
            patient=patient_ref(patient), page_size=page_size, page_token=page_token
        )
        return await self._call(self._stub.ListTwinVersions, request, caller)

    async def list_patients(
        self, caller: CallerMetadata, *, page_size: int, page_token: str, restrict_to: Sequence[str]
    ) -> twin_pb2.ListPatientsResponse:
        request = twin_pb2.ListPatientsRequest(
            page_size=page_size, page_token=page_token, restrict_to=[patient_ref(p) for p in restrict_to]
        )
        return await self._call(self._stub.ListPatients, request, caller)

    async def get_insights(
        self, patient: str, options: twin_pb2.InsightOptions, caller: CallerMetadata
    ) -> twin_pb2.GetInsightsResponse:
        """Insights within the configured deadline; the twin returns partial results inside it."""
        request = twin_pb2.GetInsightsRequest(patient=patient_ref(patient), options=options)
        # Not retried: the twin already retries each model service within this one deadline.
        return await self._call(
            self._stub.GetInsights, request, caller, timeout=self._insights_deadline, idempotent=False
        )

    async def submit_symptom_report(
        self, request: twin_pb2.SubmitSymptomReportRequest, caller: CallerMetadata
    ) -> twin_pb2.SubmitSymptomReportResponse:
        # The idempotency key makes a retry safe unless a version check makes it pointless.
        return await self._call(
            self._stub.SubmitSymptomReport,
            request,
            caller,
            idempotent=not request.HasField("expected_version"),
        )

    async def record_genotype(
        self, request: twin_pb2.RecordGenotypeRequest, caller: CallerMetadata
    ) -> twin_pb2.RecordGenotypeResponse:
        return await self._call(self._stub.RecordGenotype, request, caller, idempotent=False)

    async def set_medications(
        self, request: twin_pb2.SetMedicationsRequest, caller: CallerMetadata
    ) -> twin_pb2.SetMedicationsResponse:
        return await self._call(self._stub.SetMedications, request, caller, idempotent=False)

    async def request_analysis(
        self, request: twin_pb2.RequestActigraphyAnalysisRequest, caller: CallerMetadata
    ) -> twin_pb2.RequestActigraphyAnalysisResponse:
        return await self._call(self._stub.RequestActigraphyAnalysis, request, caller)

    async def close(self) -> None:
        await self._channel.close(None)


__all__ = ["BATCH_LIMIT", "CallerMetadata", "TwinClient", "patient_ref"]
