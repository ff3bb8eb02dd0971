"""The Open Inference Protocol v2 over gRPC, served by the core runtime on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
from google.rpc import status_pb2

from novamind.api.common.v1 import common_pb2
from novamind.api.inference.v2 import grpc_predict_v2_pb2 as pb
from novamind.api.inference.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from novamind.core.service import ServiceRuntime
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import health_status, running_service
from novamind.pat.config import ActigraphySettings
from novamind.pat.serving.model import EmbeddingInferenceModel
from novamind.pat.serving.oip import SERVICE_NAME, OpenInferenceServer, grpc_service

MODEL = "pat-test"


@pytest_asyncio.fixture
async def stub(model: EmbeddingInferenceModel) -> AsyncIterator[Any]:
    server = OpenInferenceServer([model], name="novamind-pat", version="0.1.0")
    settings = ActigraphySettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    runtime = ServiceRuntime(
        settings=settings,
        grpc_services=[grpc_service(server)],
        readiness_checks={"models": server.readiness_check},
    )
    async with (
        running_service(runtime),
        grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _error_detail(error: grpc.aio.AioRpcError) -> common_pb2.ErrorDetail:
    trailing: Any = error.trailing_metadata() or ()
    raw = next(v for k, v in trailing if k == "grpc-status-details-bin")
    detail = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(detail)
    return detail


def _fp32_request(weeks: np.ndarray, **kwargs: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL, **kwargs)
    tensor = request.inputs.add(name="week", datatype="FP32", shape=weeks.shape)
    tensor.contents.fp32_contents.extend(weeks.ravel().tolist())
    return request


async def test_server_is_live_and_ready_and_names_itself(stub: Any) -> None:
    live = await stub.ServerLive(pb.ServerLiveRequest(), timeout=5)
    ready = await stub.ServerReady(pb.ServerReadyRequest(), timeout=5)
    metadata = await stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)

    assert live.live and ready.ready
    assert (metadata.name, metadata.version) == ("novamind-pat", "0.1.0")


async def test_model_is_ready_and_describes_its_tensors(stub: Any) -> None:
    ready = await stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=5)
    metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=5)

    assert ready.ready
    assert (metadata.name, list(metadata.versions), metadata.platform) == (MODEL, ["1.0.0"], "pytorch")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("week", "FP32", [-1, 10080])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("embedding", "FP32", [-1, 96]),
        ("explanation", "FP32", [-1, 7, 24]),
    ]


async def test_health_protocol_serves_the_inference_service(model: EmbeddingInferenceModel) -> None:
    server = OpenInferenceServer([model])
    settings = ActigraphySettings(
        grpc_host="127.0.0.1", grpc_port=free_port(), http_host="127.0.0.1", http_port=free_port()
    )
    runtime = ServiceRuntime(
        settings=settings,
        grpc_services=[grpc_service(server)],
        readiness_checks={"models": server.readiness_check},
    )
    async with running_service(runtime):
        assert SERVICE_NAME == "inference.GRPCInferenceService"
        assert await health_status(settings.grpc_port, SERVICE_NAME) == "SERVING"


async def test_infer_with_fp32_contents_answers_fp32_contents(
    stub: Any, weeks: np.ndarray, embedder: Any
) -> None:
    response = await stub.ModelInfer(_fp32_request(weeks, id="req-1"), timeout=10)

    assert (response.model_name, response.model_version, response.id) == (MODEL, "1.0.0", "req-1")
    assert not response.raw_output_contents
    embedding, explanation = response.outputs
    assert (embedding.name, embedding.datatype, list(embedding.shape)) == ("embedding", "FP32", [2, 96])
    assert list(explanation.shape) == [2, 7, 24]
    got = np.asarray(embedding.contents.fp32_contents, dtype=np.float32).reshape(2, 96)
    for row, week in zip(got, weeks, strict=True):
        np.testing.assert_allclose(row, embedder.expected(week)[0], rtol=1e-5, atol=1e-5)
    got_explanation = np.asarray(explanation.contents.fp32_contents, dtype=np.float32).reshape(2, 7, 24)
    np.testing.assert_allclose(got_explanation[1], embedder.expected(weeks[1])[1], rtol=1e-5)


async def test_infer_with_raw_contents_answers_raw_contents(
    stub: Any, weeks: np.ndarray, embedder: Any
) -> None:
    request = pb.ModelInferRequest(model_name=MODEL, model_version="1.0.0")
    request.inputs.add(name="week", datatype="FP32", shape=weeks.shape)
    request.raw_input_contents.append(weeks.astype("<f4").tobytes())
    request.outputs.add(name="embedding")

    response = await stub.ModelInfer(request, timeout=10)

    assert [o.name for o in response.outputs] == ["embedding"]
    assert len(response.raw_output_contents) == 1
    got = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 96)
    np.testing.assert_allclose(got[0], embedder.expected(weeks[0])[0], rtol=1e-5, atol=1e-5)


async def test_bad_shape_is_invalid_argument_naming_the_input(stub: Any) -> None:
    short = np.zeros((1, 1440), dtype=np.float32)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(_fp32_request(short), timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = _error_detail(caught.value)
    assert detail.code == "VALIDATION_ERROR"
    assert detail.field == "inputs[week].shape"
    assert "[1, 1440]" in detail.message and "[-1, 10080]" in detail.message


async def test_contents_that_do_not_fill_the_shape_are_invalid_argument(stub: Any) -> None:
    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="week", datatype="FP32", shape=[1, 10080])
    tensor.contents.fp32_contents.extend([0.0] * 100)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(request, timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _error_detail(caught.value).field == "inputs[0].contents.fp32_contents"


async def test_raw_contents_of_the_wrong_size_are_invalid_argument(stub: Any) -> None:
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="week", datatype="FP32", shape=[1, 10080])
    request.raw_input_contents.append(b"\x00" * 12)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(request, timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _error_detail(caught.value).field == "raw_input_contents[0]"


async def test_wrong_data_type_is_invalid_argument(stub: Any) -> None:
    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="week", datatype="FP64", shape=[1, 10080])
    tensor.contents.fp64_contents.extend([0.0] * 10080)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(request, timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _error_detail(caught.value).field == "inputs[week].datatype"


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=5),
        lambda stub: stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-model"), timeout=5),
        lambda stub: stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL, version="9.9.9"), timeout=5),
        lambda stub: stub.ModelInfer(pb.ModelInferRequest(model_name="no-such-model"), timeout=5),
    ],
    ids=["ready", "metadata", "unknown-version", "infer"],
)
async def test_unknown_model_is_not_found(stub: Any, call: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(stub)

    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_unloaded_model_is_not_ready_and_refuses_inference(
    stub: Any, embedder: Any, weeks: np.ndarray
) -> None:
    embedder.loaded = False

    server_ready = await stub.ServerReady(pb.ServerReadyRequest(), timeout=5)
    model_ready = await stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(_fp32_request(weeks), timeout=5)

    assert not server_ready.ready and not model_ready.ready
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert _error_detail(caught.value).code == "MODEL_NOT_READY"
