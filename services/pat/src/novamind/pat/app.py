"""Composition root of the pat service: settings in, a runnable service out.

It serves the week-embedding model three ways: ``ActigraphyService`` (gRPC), the Open Inference
Protocol v2 (gRPC and REST, so Triton or KServe can front it) and a REST mirror with OpenAPI for
ad-hoc analyses; results are cached by input and model version.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from starlette.routing import Mount

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.core.cache import make_cache
from novamind.core.db import make_engine
from novamind.core.errors import ModelNotReadyError
from novamind.core.kafka import (
    ACTIGRAPHY_ANALYSIS_REQUESTED,
    ConsumerRunner,
    EventProducer,
    SqlIdempotencyLedger,
    create_ledger_tables,
    is_transient_failure,
)
from novamind.core.resilience import RetryPolicy
from novamind.core.service import GrpcService, ServiceRuntime
from novamind.pat.adapters.analysis_requests import AnalysisRequestHandler, decode_analysis_request
from novamind.pat.adapters.grpc_api import ActigraphyServicer
from novamind.pat.adapters.model_runtime import ModelHolder
from novamind.pat.analysis import analyse_recording, to_json, week_recording
from novamind.pat.config import ActigraphySettings
from novamind.pat.serving.model import EmbeddingInferenceModel
from novamind.pat.serving.oip import OpenInferenceServer, grpc_service
from novamind.pat.serving.rest import WeekInput, create_app

SERVICE_NAME = actigraphy_pb2.DESCRIPTOR.services_by_name["ActigraphyService"].full_name


def _artifact_version(settings: ActigraphySettings) -> str:
    """The configured artifact's version from its manifest ("unavailable" when unreadable)."""
    try:
        return str(json.loads((settings.artifact_dir / "manifest.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unavailable"


def build_runtime(settings: ActigraphySettings | None = None) -> ServiceRuntime:
    settings = settings or ActigraphySettings()
    holder = ModelHolder(settings)
    servicer = ActigraphyServicer(holder)
    version = _artifact_version(settings)
    cache = make_cache(settings.redis_url, prefix="novamind:pat:", name="pat")
    oip = OpenInferenceServer(
        [
            EmbeddingInferenceModel(
                holder.embed,
                name=settings.pat_artifact,
                version=version,
                ready=lambda: holder.engine is not None and holder.engine.ready(),
                with_explanation=False,
            )
        ],
        cache=cache,
    )

    async def analyse(week: WeekInput) -> Mapping[str, Any]:
        index = pd.date_range(pd.Timestamp(week.start), periods=len(week.values), freq="min")
        embedded = await holder.embed(week.values, explain=True)
        document = to_json(analyse_recording(week_recording(np.asarray(week.values), index, week.timezone)))
        document["embedding"] = embedded.embedding.tolist()
        document["explanation"] = None if embedded.explanation is None else embedded.explanation.tolist()
        document["model"] = {
            "name": embedded.model.name,
            "version": embedded.model.version,
            "weights_sha256": embedded.model.sha256,
        }
        document["input_quality"] = {
            "minutes_present": embedded.quality.minutes_present,
            "wear_fraction": embedded.quality.wear_fraction,
        }
        return document

    rest = create_app(analyse, model_version=lambda: version, cache=cache, inference_server=oip)
    consumers: list[ConsumerRunner] = []
    on_startup: list[Callable[[], Awaitable[None]]] = [holder.start]
    on_shutdown: list[Callable[[], Awaitable[None]]] = [holder.close, rest.state.jobs.close]
    if settings.kafka_bootstrap:
        consumer, start, stop = _analysis_request_consumer(settings, servicer)
        consumers.append(consumer)
        on_startup.append(start)
        on_shutdown.append(stop)
    return ServiceRuntime(
        settings=settings,
        grpc_services=[
            GrpcService(
                SERVICE_NAME,
                lambda server: actigraphy_pb2_grpc.add_ActigraphyServiceServicer_to_server(servicer, server),
            ),
            grpc_service(oip),
        ],
        readiness_checks={"model": holder.readiness},
        http_routes=[Mount("", app=rest)],
        consumers=consumers,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )


def _analysis_request_consumer(
    settings: ActigraphySettings, servicer: ActigraphyServicer
) -> tuple[ConsumerRunner, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """The ``actigraphy.analysis.requested.v1`` consumer with its producer and ledger database."""
    engine = make_engine(settings.sqlalchemy_url("pat"))
    producer = EventProducer(settings.kafka_bootstrap, client_id=f"{settings.kafka_client_id_prefix}-pat")
    consumer = ConsumerRunner(
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.pat_consumer_group,
        topics=[ACTIGRAPHY_ANALYSIS_REQUESTED],
        decoder=decode_analysis_request,
        handler=AnalysisRequestHandler(servicer, producer),
        ledger=SqlIdempotencyLedger(engine),
        producer=producer,
        retry_policy=RetryPolicy(max_attempts=settings.pat_event_max_attempts),
        # A model still loading is worth waiting for; the runner's other rules stay as they are.
        retry_if=lambda exc: isinstance(exc, ModelNotReadyError) or is_transient_failure(exc),
        name="analysis-requests",
    )

    async def start() -> None:
        await create_ledger_tables(engine)  # the ledger is the pat database's only table
        await producer.start()

    async def stop() -> None:
        await producer.stop()
        await engine.dispose()

    return consumer, start, stop
