"""Per-request DataLoaders: twins in one BatchGetTwins, insight sections in one GetInsights.

Both are created afresh for every GraphQL operation (nothing is cached across requests or
callers). Strawberry's DataLoader collects the loads issued in one tick of the event loop, which
is when the fields of every patient in a response resolve.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from novamind.api.forecasting.v1 import forecasting_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.errors import NovamindError, error_for_code
from novamind.gateway.adapters.twin_client import CallerMetadata, TwinClient
from novamind.gateway.domain.insights import InsightNeeds, Section, plan_calls

InsightsFetch = Callable[[str, InsightNeeds], Coroutine[Any, Any, twin_pb2.GetInsightsResponse]]


class TwinLoader:
    """Twins by patient pseudonym; ``None`` for a patient without a twin."""

    def __init__(self, twin: TwinClient, caller: CallerMetadata, *, symptom_history_days: int) -> None:
        self._twin = twin
        self._caller = caller
        self._days = symptom_history_days
        self.loader: DataLoader[str, twin_pb2.Twin | None] = DataLoader(load_fn=self._load_batch)

    async def _load_batch(self, patients: list[str]) -> Sequence[twin_pb2.Twin | None]:
        found = await self._twin.batch_get_twins(patients, self._caller, symptom_history_days=self._days)
        return [found.get(patient) for patient in patients]

    def load(self, patient: str) -> Awaitable[twin_pb2.Twin | None]:
        return self.loader.load(patient)


def insight_options(needs: InsightNeeds) -> twin_pb2.InsightOptions:
    """The twin's options for ``needs``: every section not needed is switched off explicitly."""
    return twin_pb2.InsightOptions(
        include_actigraphy=Section.ACTIGRAPHY in needs.sections,
        include_forecast=Section.FORECAST in needs.sections,
        include_correlations=Section.CORRELATIONS in needs.sections,
        include_medications=Section.MEDICATIONS in needs.sections,
        forecast_days=needs.forecast_days,
        lookback_days=needs.lookback_days,
        forecast_targets=[forecasting_pb2.TargetSymptom.Value(t) for t in needs.forecast_targets],
        candidate_drugs=list(needs.candidate_drugs),
        actigraphy_explanation=needs.actigraphy_explanation,
        actigraphy_fhir=needs.actigraphy_fhir,
    )


class InsightsLoader:
    """Insight sections by patient, merging the needs of every field of a request.

    A field states its :class:`InsightNeeds` and gets a response that covers them. Needs stated in
    the same tick for the same patient share one GetInsights call when their parameters agree;
    a later need already covered by a call (in flight or done) reuses it.
    """

    def __init__(self, fetch: InsightsFetch) -> None:
        self._fetch = fetch
        self._pending: dict[str, list[InsightNeeds]] = defaultdict(list)
        self._calls: dict[str, list[tuple[InsightNeeds, asyncio.Task[twin_pb2.GetInsightsResponse]]]] = (
            defaultdict(list)
        )
        self.loader: DataLoader[tuple[str, InsightNeeds], twin_pb2.GetInsightsResponse] = DataLoader(
            load_fn=self._load_batch, cache=False
        )

    @classmethod
    def for_twin(cls, twin: TwinClient, caller: CallerMetadata) -> InsightsLoader:
        async def fetch(patient: str, needs: InsightNeeds) -> twin_pb2.GetInsightsResponse:
            return await twin.get_insights(patient, insight_options(needs), caller)

        return cls(fetch)

    def load(self, patient: str, needs: InsightNeeds) -> Awaitable[twin_pb2.GetInsightsResponse]:
        for covered, future in self._calls[patient]:
            if covered.covers(needs):
                return future
        self._pending[patient].append(needs)
        return self.loader.load((patient, needs))

    async def _load_batch(
        self, keys: list[tuple[str, InsightNeeds]]
    ) -> list[twin_pb2.GetInsightsResponse | BaseException]:
        started: list[tuple[str, InsightNeeds, asyncio.Task[twin_pb2.GetInsightsResponse]]] = []
        for patient in dict.fromkeys(patient for patient, _ in keys):
            for needs in plan_calls(self._pending.pop(patient, [])):
                future = asyncio.create_task(self._fetch(patient, needs))
                self._calls[patient].append((needs, future))
                started.append((patient, needs, future))
        await asyncio.gather(*(future for _, _, future in started), return_exceptions=True)
        results: list[twin_pb2.GetInsightsResponse | BaseException] = []
        for patient, needs in keys:
            future = next(f for p, call, f in started if p == patient and call.covers(needs))
            error = future.exception()
            results.append(error if error is not None else future.result())
        return results


def section_error(response: twin_pb2.GetInsightsResponse, section: Section) -> NovamindError | None:
    """The taxonomy error of a failed section (extensions: code, service, section, retryable)."""
    for failure in response.section_errors:
        if failure.section == section.value:
            detail = failure.error
            return error_for_code(
                detail.code,
                detail.message or f"{section.value} section failed",
                service=detail.service or None,
                field=detail.field or None,
                details={"section": section.value, "retryable": detail.retryable},
            )
    return None
