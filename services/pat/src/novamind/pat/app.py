"""Composition root of the pat service: settings in, a runnable service out.

It serves the week-embedding model three ways: ``ActigraphyService`` (gRPC), the Open Inference
Protocol v2 (gRPC and REST, so Triton or KServe can front it) and a REST mirror with OpenAPI for
ad-hoc analyses; results are cached by input and model version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from starlette.routing import Mount

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.core.cache import make_cache
from novamind.core.service import GrpcService, ServiceRuntime
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
        on_startup=[holder.start],
        on_shutdown=[holder.close, rest.state.jobs.close],
    )
