"""The gRPC face of the pat service (``novamind.api.actigraphy.v1.ActigraphyService``)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import pandas as pd
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.api.common.v1 import common_pb2
from novamind.core.errors import ValidationError
from novamind.pat.adapters.fhir_bundle import analysis_bundle
from novamind.pat.adapters.model_runtime import ModelHolder
from novamind.pat.analysis import analyse_recording, to_json, week_recording
from novamind.pat.inference.engine import WeekEmbedding

MINUTES_PER_WEEK = 10_080
#: Per-night measures: (proto field, key of the analysis JSON's nights).
_NIGHT_FIELDS = (
    ("time_in_bed_minutes", "time_in_bed_min"),
    ("total_sleep_time_minutes", "total_sleep_time_min"),
    ("sleep_efficiency_percent", "sleep_efficiency_pct"),
    ("sleep_onset_latency_minutes", "sleep_onset_latency_min"),
    ("wake_after_sleep_onset_minutes", "waso_min"),
    ("mean_awakening_length_minutes", "mean_awakening_min"),
)
_SIZES = {
    "PAT-S": actigraphy_pb2.PAT_MODEL_SIZE_S,
    "PAT-M": actigraphy_pb2.PAT_MODEL_SIZE_M,
    "PAT-L": actigraphy_pb2.PAT_MODEL_SIZE_L,
    "PAT-H": actigraphy_pb2.PAT_MODEL_SIZE_H,
}


def week_values(series: common_pb2.TimeSeries) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """The 10,080 minute counts of a week (NaN where missing) and their local start times.

    Raises ValidationError naming the field when the week is not 10,080 one-minute values.
    """
    if series.step_seconds not in (0, 60):
        raise ValidationError(
            "a week must have one value per minute (step_seconds 60)", field="week.step_seconds"
        )
    if len(series.values) != MINUTES_PER_WEEK:
        raise ValidationError(
            f"a week must have {MINUTES_PER_WEEK} values, got {len(series.values)}", field="week.values"
        )
    values = np.asarray(series.values, dtype=np.float64)
    if len(series.missing):
        if len(series.missing) != MINUTES_PER_WEEK:
            raise ValidationError("missing flags must match the values one to one", field="week.missing")
        values[np.asarray(series.missing, dtype=bool)] = np.nan
    if np.any(values[np.isfinite(values)] < 0):
        raise ValidationError("activity counts cannot be negative", field="week.values")
    start = pd.Timestamp(series.start.ToDatetime(tzinfo=UTC))
    if series.time_zone:
        try:
            start = start.tz_convert(series.time_zone)
        except Exception as exc:
            raise ValidationError("unknown IANA time zone", field="week.time_zone") from exc
    return values, pd.date_range(start, periods=MINUTES_PER_WEEK, freq="min")


def _model_info(embedding: WeekEmbedding) -> common_pb2.ModelInfo:
    model = embedding.model
    return common_pb2.ModelInfo(name=model.name, version=model.version, weights_sha256=model.sha256)


def _quality(embedding: WeekEmbedding) -> actigraphy_pb2.InputQuality:
    quality = embedding.quality
    return actigraphy_pb2.InputQuality(
        minutes_expected=MINUTES_PER_WEEK,
        minutes_present=quality.minutes_present,
        wear_fraction=quality.wear_fraction,
    )


def _optional(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


class ActigraphyServicer(actigraphy_pb2_grpc.ActigraphyServiceServicer):
    """Serves ``ActigraphyService`` from the loaded PAT engine and the clinical metrics."""

    def __init__(self, holder: ModelHolder) -> None:
        self._holder = holder

    async def Embed(
        self, request: actigraphy_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> actigraphy_pb2.EmbedResponse:
        values, _ = week_values(request.week)
        embedding = await self._holder.embed(values)
        return actigraphy_pb2.EmbedResponse(
            patient=request.patient,
            embedding=actigraphy_pb2.Embedding(
                values=embedding.embedding.tolist(),
                dimension=embedding.embedding.size,
                pooling="mean over patches",
            ),
            input_quality=_quality(embedding),
            model=_model_info(embedding),
        )

    async def Analyze(
        self, request: actigraphy_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> actigraphy_pb2.AnalyzeResponse:
        values, index = week_values(request.week)
        include = (
            request.include
            if request.HasField("include")
            else actigraphy_pb2.AnalysisInclude(metrics=True, embedding=True)
        )
        analyzed_at = Timestamp()
        analyzed_at.FromDatetime(datetime.now(UTC))
        response = actigraphy_pb2.AnalyzeResponse(
            patient=request.patient, analysis_id=str(uuid.uuid4()), analyzed_at=analyzed_at
        )
        if include.embedding or include.explanation:
            embedding = await self._holder.embed(values, explain=include.explanation)
            response.input_quality.CopyFrom(_quality(embedding))
            response.model.CopyFrom(_model_info(embedding))
            if include.embedding:
                response.embedding.CopyFrom(
                    actigraphy_pb2.Embedding(
                        values=embedding.embedding.tolist(),
                        dimension=embedding.embedding.size,
                        pooling="mean over patches",
                    )
                )
            if embedding.explanation is not None:
                first_day = index[0].normalize()
                response.explanation.CopyFrom(
                    actigraphy_pb2.AttentionMap(
                        weights=embedding.explanation.ravel().tolist(),
                        rows=7,
                        cols=24,
                        row_dates=[str((first_day + pd.Timedelta(days=d)).date()) for d in range(7)],
                        method="attention received per hour of the week, mean over layers, heads and queries",
                    )
                )
        if include.metrics or include.fhir:
            analysis = analyse_recording(week_recording(values, index, request.week.time_zone or None))
            self._fill_metrics(response, to_json(analysis))
            if include.fhir:
                subject = f"Patient/{request.patient.pseudonym or 'unknown'}"
                response.fhir_bundle_json = json.dumps(
                    analysis_bundle(analysis, subject=subject, timezone=request.week.time_zone or "UTC")
                )
        response.risk.CopyFrom(self._risk(embedding if include.embedding or include.explanation else None))
        return response

    def _risk(self, embedding: WeekEmbedding | None) -> actigraphy_pb2.RiskAssessment:
        """The risk head's research estimate for the week, or why there is none."""
        head = self._holder.risk_head
        probability = None if embedding is None else self._holder.risk(embedding.embedding)
        if head is None or probability is None:
            status = self._holder.risk_status if embedding is not None else "risk needs the embedding"
            return actigraphy_pb2.RiskAssessment(model_loaded=head is not None, status_message=status)
        manifest = head.manifest
        return actigraphy_pb2.RiskAssessment(
            model_loaded=True,
            status_message=self._holder.risk_status,
            estimates=[
                actigraphy_pb2.RiskEstimate(
                    outcome=str(manifest.get("labels", {}).get("positive", "label 1")),
                    probability=probability,
                    model=common_pb2.ModelInfo(
                        name=manifest["name"], version=manifest["version"], weights_sha256=manifest["sha256"]
                    ),
                    research_only=True,
                )
            ],
        )

    async def GetModelInfo(
        self, request: actigraphy_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> actigraphy_pb2.GetModelInfoResponse:
        status = actigraphy_pb2.PatModelStatus(ready=self._holder.engine is not None)
        manifest = self._holder.manifest
        if manifest is None:
            status.not_ready_reason = self._holder.problem
        else:
            config = manifest.config
            status.model_size = _SIZES.get(config.name, actigraphy_pb2.PAT_MODEL_SIZE_UNSPECIFIED)
            status.model.CopyFrom(
                common_pb2.ModelInfo(
                    name=manifest.name, version=manifest.version, weights_sha256=manifest.sha256
                )
            )
            status.architecture.CopyFrom(
                actigraphy_pb2.PatArchitecture(
                    patch_size=config.patch_size,
                    embed_dim=config.embed_dim,
                    encoder_num_layers=config.encoder_num_layers,
                    encoder_num_heads=config.encoder_num_heads,
                    encoder_ff_dim=config.encoder_ff_dim,
                    input_size=config.input_size,
                )
            )
        return actigraphy_pb2.GetModelInfoResponse(
            models=[status],
            risk=actigraphy_pb2.RiskAssessment(
                model_loaded=self._holder.risk_head is not None, status_message=self._holder.risk_status
            ),
        )

    @staticmethod
    def _fill_metrics(response: actigraphy_pb2.AnalyzeResponse, document: dict[str, Any]) -> None:
        rhythm = document["circadian"]
        circadian = response.circadian
        for field, key in (
            ("interdaily_stability", "IS"),
            ("intradaily_variability", "IV"),
            ("relative_amplitude", "RA"),
        ):
            value = _optional(rhythm[key])
            if value is not None:
                setattr(circadian, field, value)
        for prefix, key in (("l5", "L5"), ("m10", "M10")):
            if rhythm[key] is not None:
                setattr(circadian, f"{prefix}_counts_per_minute", rhythm[key]["value"])
                setattr(circadian, f"{prefix}_onset", rhythm[key]["onset"])
        sleep = document["sleep"]
        nights = sleep["nights"]
        metrics = response.sleep
        metrics.scoring_algorithm = actigraphy_pb2.SLEEP_SCORING_ALGORITHM_COLE_KRIPKE
        metrics.nights_analyzed = len(nights)
        for field, key in (*_NIGHT_FIELDS, ("awakenings_count", "awakenings")):
            value = _mean([_optional(n[key]) for n in nights])
            if value is not None:
                setattr(metrics, field, value)
        for field, key in (("sleep_fraction_cole_kripke", "cole_kripke"), ("sleep_fraction_sadeh", "sadeh")):
            value = _optional(sleep["fraction_sleep"][key])
            if value is not None:
                setattr(metrics, field, value)
        for night in nights:
            summary = response.nights.add(night_date=night["in_bed"][:10], valid=True)
            for field, key in _NIGHT_FIELDS:
                value = _optional(night[key])
                if value is not None:
                    setattr(summary, field, value)
            summary.awakenings_count = int(night["awakenings"])
        activity = document["activity"]
        response.input_quality.valid_days = int(activity["valid_days"])
        response.input_quality.non_wear_minutes = int(activity["non_wear_min"] or 0)
        response.input_quality.minutes_expected = MINUTES_PER_WEEK
