"""The pat service end to end over gRPC: not ready without verified weights; Embed and Analyze with them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.actigraphy.v1 import actigraphy_pb2, actigraphy_pb2_grpc
from novamind.api.common.v1 import common_pb2
from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.core.resilience import CircuitBreakers, RetryPolicy
from novamind.core.rpc import ServiceClient, open_channel
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service
from novamind.pat.app import SERVICE_NAME, build_runtime
from novamind.pat.config import ActigraphySettings
from novamind.pat.training.pretrain import PretrainConfig, pretrain

ARTIFACT = "pat-s-test"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    # Enough synthetic weeks for a drift reference (one per bin), still only two training steps.
    config = PretrainConfig(
        size="S", steps=2, batch_size=4, synthetic_recordings=4, synthetic_days=12, seed=3
    )
    pretrain(config, data_dir=None, out_dir=root / ARTIFACT)
    return root


def settings_for(model_dir: Path) -> ActigraphySettings:
    return ActigraphySettings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        model_dir=model_dir,
        pat_artifact=ARTIFACT,
        pat_device="cpu",
    )


def week(values: np.ndarray) -> common_pb2.TimeSeries:
    start = Timestamp()
    start.FromJsonString("2026-03-02T00:00:00Z")
    return common_pb2.TimeSeries(
        start=start, step_seconds=60, values=values.tolist(), unit="{counts}/min", time_zone="UTC"
    )


def a_week_of_activity() -> np.ndarray:
    minute = np.arange(10_080)
    awake = ((minute % 1440) >= 7 * 60) & ((minute % 1440) < 23 * 60)
    rng = np.random.default_rng(0)
    return np.where(awake, rng.poisson(250, 10_080), rng.poisson(1, 10_080)).astype(float)


async def test_without_verified_weights_the_service_is_not_ready_and_says_why(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_service(build_runtime(settings)):
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "NOT_SERVING"
        async with open_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            client = ServiceClient(
                "pat", channel, breakers=CircuitBreakers(), retry_policy=RetryPolicy(max_attempts=1)
            )
            stub = actigraphy_pb2_grpc.ActigraphyServiceStub(channel)
            with pytest.raises(ModelNotReadyError) as caught:
                await client.call(stub.Embed, actigraphy_pb2.EmbedRequest(week=week(a_week_of_activity())))
    assert "manifest.json" in caught.value.message


async def test_embed_and_analyze_a_week(model_dir: Path) -> None:
    settings = settings_for(model_dir)
    manifest = json.loads((model_dir / ARTIFACT / "manifest.json").read_text())
    async with running_service(build_runtime(settings)):
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"
        async with open_channel(f"127.0.0.1:{settings.grpc_port}", default_timeout=60) as channel:
            stub = actigraphy_pb2_grpc.ActigraphyServiceStub(channel)
            values = a_week_of_activity()
            embedded = await stub.Embed(actigraphy_pb2.EmbedRequest(week=week(values)))
            assert embedded.embedding.dimension == 96 and len(embedded.embedding.values) == 96
            assert embedded.model.weights_sha256 == manifest["sha256"]
            assert embedded.input_quality.minutes_present == 10_080
            # Every served week joins the input-drift window compared with the training weeks.
            drift_window = await _drift_window(settings)
            assert drift_window >= 1

            analysed = await stub.Analyze(
                actigraphy_pb2.AnalyzeRequest(
                    patient=common_pb2.PatientRef(pseudonym="pt_0123456789abcdef0123"),
                    week=week(values),
                    include=actigraphy_pb2.AnalysisInclude(
                        metrics=True, embedding=True, explanation=True, fhir=True
                    ),
                )
            )
            assert analysed.circadian.HasField("interdaily_stability")
            assert analysed.circadian.l5_onset and analysed.circadian.m10_onset
            assert analysed.sleep.nights_analyzed >= 4
            assert 7 * 60 <= analysed.sleep.total_sleep_time_minutes <= 9 * 60
            assert analysed.explanation.rows == 7 and analysed.explanation.cols == 24
            assert sum(analysed.explanation.weights) == pytest.approx(1.0, abs=1e-4)
            assert json.loads(analysed.fhir_bundle_json)["resourceType"] == "Bundle"
            assert analysed.risk.model_loaded is False and "no risk model" in analysed.risk.status_message

            client = ServiceClient(
                "pat", channel, breakers=CircuitBreakers(), retry_policy=RetryPolicy(max_attempts=1)
            )
            with pytest.raises(ValidationError) as caught:
                await client.call(stub.Embed, actigraphy_pb2.EmbedRequest(week=week(values[:100])))
            assert caught.value.field == "week.values"


async def test_rest_mirror_and_open_inference_protocol_serve_the_same_model(model_dir: Path) -> None:
    import httpx

    settings = settings_for(model_dir)
    values = a_week_of_activity()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with running_service(build_runtime(settings)), httpx.AsyncClient(base_url=base, timeout=60) as http:
        body = {
            "week": {"values": values.tolist(), "start": "2026-03-02T00:00:00", "timezone": "Europe/Zurich"}
        }
        analysis = await http.post("/v1/analyses", json=body)
        assert analysis.status_code == 200, analysis.text
        document = analysis.json()
        assert len(document["embedding"]) == 96 and document["circadian"]["IS"] is not None
        assert (
            await http.post("/v1/analyses", json={"week": {**body["week"], "values": [1.0]}})
        ).status_code == 422

        assert (await http.get(f"/v2/models/{ARTIFACT}/ready")).status_code == 200
        inferred = await http.post(
            f"/v2/models/{ARTIFACT}/infer",
            json={
                "inputs": [{"name": "week", "datatype": "FP32", "shape": [1, 10080], "data": values.tolist()}]
            },
        )
        assert inferred.status_code == 200, inferred.text
        outputs = {o["name"]: o for o in inferred.json()["outputs"]}
        assert outputs["embedding"]["shape"] == [1, 96]
        # The explained path computes attention explicitly; the plain path may run ONNX Runtime:
        # both are held to the engine's parity bar of 1e-4.
        assert np.allclose(outputs["embedding"]["data"], document["embedding"], atol=1e-4)
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "Novamind PAT"


async def test_analysis_requests_from_kafka_are_answered_once_and_poison_is_dead_lettered(
    model_dir: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    import uuid

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from google.protobuf import json_format

    from novamind.api.events.v1 import events_pb2
    from novamind.core.kafka import (
        ACTIGRAPHY_ANALYSIS_COMPLETED,
        ACTIGRAPHY_ANALYSIS_REQUESTED,
        FLEET_TOPICS,
        dlq_topic,
        ensure_topics,
    )

    await ensure_topics(kafka_bootstrap, FLEET_TOPICS)
    settings = settings_for(model_dir).model_copy(
        update={
            "kafka_bootstrap": kafka_bootstrap,
            "data_dir": tmp_path,
            "pat_consumer_group": f"pat-{uuid.uuid4().hex}",
        }
    )
    correlation = uuid.uuid4().hex
    request = events_pb2.ActigraphyAnalysisRequested(
        event_id=str(uuid.uuid4()),
        patient=common_pb2.PatientRef(pseudonym="pt_0123456789abcdef0123"),
        week=week(a_week_of_activity()),
        correlation_id=correlation,
    )
    payload = json_format.MessageToJson(request).encode()
    readers = {}
    for topic in (ACTIGRAPHY_ANALYSIS_COMPLETED, dlq_topic(ACTIGRAPHY_ANALYSIS_REQUESTED)):
        readers[topic] = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="latest"
        )
        await readers[topic].start()
        await readers[topic].getmany(timeout_ms=200)  # join and fix the starting position at the end
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with running_service(build_runtime(settings)):
            key = b"pt_0123456789abcdef0123"
            for value in (payload, payload, b"{not an analysis request", json.dumps({"week": 7}).encode()):
                await producer.send_and_wait(
                    ACTIGRAPHY_ANALYSIS_REQUESTED, value, key=key, headers=[("run", correlation.encode())]
                )

            completed: list[events_pb2.ActigraphyAnalysisCompleted] = []
            dead: list[dict[str, str]] = []
            async with asyncio.timeout(90):
                while len(completed) < 1 or len(dead) < 2:
                    for topic, reader in readers.items():
                        for records in (await reader.getmany(timeout_ms=300)).values():
                            for record in records:
                                headers = {k: v.decode() for k, v in record.headers}
                                if topic == ACTIGRAPHY_ANALYSIS_COMPLETED:
                                    event = json_format.Parse(
                                        record.value, events_pb2.ActigraphyAnalysisCompleted()
                                    )
                                    if event.correlation_id == correlation:
                                        completed.append(event)
                                elif headers.get("run") == correlation:
                                    dead.append(headers)
    finally:
        await producer.stop()
        for reader in readers.values():
            await reader.stop()
    # The duplicate request was deduplicated by its event id: one completed analysis.
    assert len(completed) == 1
    event = completed[0]
    assert event.request_event_id == request.event_id
    assert len(event.embedding.values) == 96 and event.circadian.HasField("interdaily_stability")
    assert event.event_id == str(
        uuid.uuid5(uuid.UUID("6f1b8f0e-3c1d-4a43-9a53-2f4d1c7e9b10"), request.event_id)
    )
    assert len(dead) == 2 and all(h["dlq-error-code"] == "VALIDATION_ERROR" for h in dead)


async def _drift_window(settings: ActigraphySettings) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{settings.http_port}/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name.startswith("novamind_pat_input_drift"):
            return max(sample.value for sample in family.samples)
    return 0.0


async def test_a_configured_risk_head_answers_with_a_research_estimate(
    model_dir: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from novamind.pat.domain.preprocessing import sliding_weeks, to_minutes
    from novamind.pat.domain.synthetic import Anomaly, SyntheticConfig, generate
    from novamind.pat.training.finetune import FinetuneConfig, finetune

    folder = tmp_path / "labelled"
    folder.mkdir()
    rows = []
    for i in range(16):
        low = i % 2 == 1  # planted: five low-activity days in the week
        anomalies = tuple(Anomaly("low_activity_day", d) for d in (0, 1, 2, 4, 5)) if low else ()
        recording = generate(
            SyntheticConfig(days=7, epoch_seconds=60, anomalies=anomalies), seed=500 + i
        ).recording
        values = next(iter(sliding_weeks(to_minutes(recording), align_to_local_midnight=False))).values
        np.save(folder / f"w{i}.npy", values)
        rows.append({"week_file": f"w{i}.npy", "label": int(low)})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    finetune(
        FinetuneConfig(mode="linear_probe", folds=2, seed=0),
        base_dir=model_dir / ARTIFACT,
        labels_path=folder / "labels.csv",
        out_dir=model_dir / "risk-head",
    )

    settings = settings_for(model_dir).model_copy(update={"pat_risk_head": "risk-head"})
    async with (
        running_service(build_runtime(settings)),
        open_channel(f"127.0.0.1:{settings.grpc_port}", default_timeout=60) as channel,
    ):
        stub = actigraphy_pb2_grpc.ActigraphyServiceStub(channel)
        analysed = await stub.Analyze(
            actigraphy_pb2.AnalyzeRequest(
                week=week(a_week_of_activity()), include=actigraphy_pb2.AnalysisInclude(embedding=True)
            )
        )
        info = await stub.GetModelInfo(actigraphy_pb2.GetModelInfoRequest())
    risk = analysed.risk
    assert risk.model_loaded and len(risk.estimates) == 1
    assert 0.0 <= risk.estimates[0].probability <= 1.0 and risk.estimates[0].research_only
    assert info.risk.model_loaded and "research estimate" in info.risk.status_message
