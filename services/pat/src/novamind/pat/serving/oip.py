"""The Open Inference Protocol v2 (KServe / Triton data plane) over gRPC and REST.

Specification: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/

:class:`OpenInferenceServer` holds the protocol's logic once — model lookup, readiness, metadata,
input checks, result caching, output checks — over a set of :class:`~.model.InferenceModel`.
Two thin transports sit on it:

* :class:`GrpcInferenceServicer` — ``inference.GRPCInferenceService``; register it with
  :func:`grpc_service`. Tensor data arrive as typed ``contents`` (``fp32_contents`` ...) or as
  ``raw_input_contents`` (little-endian, row-major); the response answers in the same form.
* :func:`oip_router` — the REST form under ``/v2`` (JSON tensors, ``data`` flat or nested,
  ``null`` = NaN for floating-point inputs).

Errors are taxonomy errors (:mod:`novamind.core.errors`): the core gRPC interceptor maps them to
status codes (bad shape or data type: INVALID_ARGUMENT; unknown model: NOT_FOUND; model not
ready: FAILED_PRECONDITION), and the REST router answers the mapped HTTP status with the v2
error body ``{"error": message}`` plus ``code`` and ``field``.

Results are cached (when a cache is given) under a hash of the model name, version and input
tensors, so a new model version never sees an earlier version's results.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field

from novamind.api.inference.v2 import grpc_predict_v2_pb2 as pb
from novamind.api.inference.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from novamind.core.cache import ResultCache, cache_key
from novamind.core.errors import (
    ModelInferenceError,
    ModelNotReadyError,
    NotFoundError,
    NovamindError,
    ValidationError,
)
from novamind.core.service import GrpcService
from novamind.core.telemetry import LATENCY_BUCKETS_SECONDS
from novamind.pat.serving.http_errors import error_body, validation_error_from
from novamind.pat.serving.model import InferenceModel, TensorSpec

log = logging.getLogger(__name__)

#: ``inference.GRPCInferenceService``, the name gRPC health and reflection know it by.
SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name

OIP_REQUESTS = Counter(
    "novamind_pat_oip_requests_total",
    "Open Inference Protocol infer requests by model and outcome (OK or error code)",
    ["model", "outcome"],
)
OIP_INFERENCE_SECONDS = Histogram(
    "novamind_pat_oip_inference_seconds",
    "Model time of Open Inference Protocol infer requests, cache misses only (seconds)",
    ["model"],
    buckets=LATENCY_BUCKETS_SECONDS,
)


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one v2 data type is held: numpy type and the typed-contents field (None: raw only)."""

    dtype: np.dtype[Any]
    contents_field: str | None


_CODECS: Final[Mapping[str, _Codec]] = {
    "BOOL": _Codec(np.dtype(np.bool_), "bool_contents"),
    "UINT8": _Codec(np.dtype(np.uint8), "uint_contents"),
    "UINT16": _Codec(np.dtype(np.uint16), "uint_contents"),
    "UINT32": _Codec(np.dtype(np.uint32), "uint_contents"),
    "UINT64": _Codec(np.dtype(np.uint64), "uint64_contents"),
    "INT8": _Codec(np.dtype(np.int8), "int_contents"),
    "INT16": _Codec(np.dtype(np.int16), "int_contents"),
    "INT32": _Codec(np.dtype(np.int32), "int_contents"),
    "INT64": _Codec(np.dtype(np.int64), "int64_contents"),
    "FP16": _Codec(np.dtype(np.float16), None),
    "FP32": _Codec(np.dtype(np.float32), "fp32_contents"),
    "FP64": _Codec(np.dtype(np.float64), "fp64_contents"),
}


def _codec(datatype: str, field: str) -> _Codec:
    codec = _CODECS.get(datatype)
    if codec is None:
        supported = ", ".join(_CODECS)
        raise ValidationError(f"data type {datatype!r} is not supported (one of {supported})", field=field)
    return codec


def _shape(dims: Iterable[int], field: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ValidationError("tensor dimensions must be non-negative", field=field)
    return shape


def _from_raw(raw: bytes, codec: _Codec, shape: tuple[int, ...], field: str) -> npt.NDArray[Any]:
    little_endian = codec.dtype.newbyteorder("<")
    expected = math.prod(shape) * little_endian.itemsize
    if len(raw) != expected:
        raise ValidationError(
            f"raw contents hold {len(raw)} bytes; shape {list(shape)} needs {expected}", field=field
        )
    return np.frombuffer(raw, dtype=little_endian).astype(codec.dtype).reshape(shape)


def _to_raw(array: npt.NDArray[Any]) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


@dataclass(frozen=True, slots=True)
class Tensor:
    """A decoded tensor: name, v2 data type and the array (shaped, of that data type)."""

    name: str
    datatype: str
    data: npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """The outputs of one infer call, in the order they were asked for."""

    model: InferenceModel
    outputs: Sequence[Tensor]


class OpenInferenceServer:
    """The protocol's logic over named models; transports decode and encode around it.

    ``cache`` (optional) stores every model's outputs under a hash of name, version and inputs.
    Raises ``ValueError`` when two models share a name.
    """

    def __init__(
        self,
        models: Sequence[InferenceModel],
        *,
        name: str = "novamind-pat",
        version: str = "0.1.0",
        cache: ResultCache | None = None,
        cache_ttl_seconds: float | None = None,
    ) -> None:
        self._models = {model.name: model for model in models}
        if len(self._models) != len(models):
            raise ValueError("model names must be unique")
        self.name = name
        self.version = version
        self.extensions: tuple[str, ...] = ()
        self._cache = cache
        self._cache_ttl_seconds = cache_ttl_seconds

    @property
    def models(self) -> Sequence[InferenceModel]:
        return tuple(self._models.values())

    def live(self) -> bool:
        """The server answers (it always does while the process runs)."""
        return True

    def ready(self) -> bool:
        """Every model is ready (and there is at least one)."""
        return bool(self._models) and all(model.ready() for model in self._models.values())

    async def readiness_check(self) -> None:
        """A :data:`~novamind.core.service.ReadinessCheck`: raises ModelNotReadyError naming the model."""
        for model in self._models.values():
            if not model.ready():
                raise ModelNotReadyError(f"model {model.name} is not ready")
        if not self._models:
            raise ModelNotReadyError("no model is served")

    def model(self, name: str, version: str = "") -> InferenceModel:
        """The model called ``name`` (at ``version``, when given). Raises NotFoundError."""
        model = self._models.get(name)
        if model is None:
            raise NotFoundError(f"model {name!r} is not served here", field="model_name")
        if version and version != model.version:
            raise NotFoundError(f"model {name!r} has no version {version!r}", field="model_version")
        return model

    def model_ready(self, name: str, version: str = "") -> bool:
        """Whether the model is ready. Raises NotFoundError for an unknown model or version."""
        return self.model(name, version).ready()

    async def infer(
        self,
        name: str,
        version: str,
        inputs: Sequence[Tensor],
        requested_outputs: Sequence[str] = (),
    ) -> InferenceResult:
        """Run model ``name`` on ``inputs``; return ``requested_outputs`` (all when empty).

        Raises NotFoundError (unknown model), ModelNotReadyError, ValidationError (missing,
        unknown or repeated inputs, wrong data type or shape, unknown outputs) and
        ModelInferenceError (the model failed or returned outputs that break its signature).
        """
        model = self.model(name, version)
        outcome = "OK"
        try:
            if not model.ready():
                raise ModelNotReadyError(f"model {model.name} is not ready")
            arrays = _checked_inputs(model, inputs)
            wanted = _requested(model, requested_outputs)
            outputs = await self._outputs(model, arrays)
            return InferenceResult(
                model, [Tensor(spec.name, spec.datatype, outputs[spec.name]) for spec in wanted]
            )
        except NovamindError as exc:
            outcome = exc.code.value
            raise
        finally:
            OIP_REQUESTS.labels(model.name, outcome).inc()

    async def _outputs(
        self, model: InferenceModel, arrays: dict[str, npt.NDArray[Any]]
    ) -> dict[str, npt.NDArray[Any]]:
        key = _cache_key(model, arrays) if self._cache is not None else ""
        if self._cache is not None:
            cached = await self._cache.get(key)
            if cached is not None:
                restored = _load_arrays(cached)
                if restored is not None:
                    return restored
        started = time.perf_counter()
        try:
            raw_outputs = await model.infer(arrays)
        except NovamindError:
            raise
        except Exception:
            log.exception("model %s failed", model.name)
            raise ModelInferenceError(f"model {model.name} failed to produce outputs") from None
        finally:
            OIP_INFERENCE_SECONDS.labels(model.name).observe(time.perf_counter() - started)
        outputs = _checked_outputs(model, raw_outputs)
        if self._cache is not None:
            await self._cache.set(key, _dump_arrays(outputs), ttl_seconds=self._cache_ttl_seconds)
        return outputs


def _checked_inputs(model: InferenceModel, inputs: Sequence[Tensor]) -> dict[str, npt.NDArray[Any]]:
    specs = {spec.name: spec for spec in model.inputs}
    arrays: dict[str, npt.NDArray[Any]] = {}
    for tensor in inputs:
        field = f"inputs[{tensor.name}]"
        spec = specs.get(tensor.name)
        if spec is None:
            raise ValidationError(f"model {model.name} has no input {tensor.name!r}", field=field)
        if tensor.name in arrays:
            raise ValidationError(f"input {tensor.name!r} is given twice", field=field)
        if tensor.datatype != spec.datatype:
            raise ValidationError(
                f"input {tensor.name!r} must be {spec.datatype}, not {tensor.datatype}",
                field=f"{field}.datatype",
            )
        if not spec.accepts(tensor.data.shape):
            raise ValidationError(
                f"input {tensor.name!r} has shape {list(tensor.data.shape)};"
                f" the model takes {list(spec.shape)} (-1: any size)",
                field=f"{field}.shape",
            )
        arrays[tensor.name] = tensor.data
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise ValidationError(f"model {model.name} needs input {missing[0]!r}", field=f"inputs[{missing[0]}]")
    return arrays


def _requested(model: InferenceModel, names: Sequence[str]) -> list[TensorSpec]:
    specs = {spec.name: spec for spec in model.outputs}
    if not names:
        return list(model.outputs)
    for name in names:
        if name not in specs:
            raise ValidationError(f"model {model.name} has no output {name!r}", field=f"outputs[{name}]")
    return [specs[name] for name in dict.fromkeys(names)]


def _checked_outputs(
    model: InferenceModel, outputs: Mapping[str, npt.NDArray[Any]]
) -> dict[str, npt.NDArray[Any]]:
    checked: dict[str, npt.NDArray[Any]] = {}
    for spec in model.outputs:
        if spec.name not in outputs:
            raise ModelInferenceError(f"model {model.name} returned no {spec.name!r}", field=spec.name)
        array = np.asarray(outputs[spec.name], dtype=_CODECS[spec.datatype].dtype)
        if not spec.accepts(array.shape):
            raise ModelInferenceError(
                f"model {model.name} returned {spec.name!r} of the wrong shape", field=spec.name
            )
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ModelInferenceError(
                f"model {model.name} returned non-finite {spec.name!r}", field=spec.name
            )
        checked[spec.name] = array
    return checked


def _cache_key(model: InferenceModel, arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    parts = [model.name.encode("utf-8"), b"\x00"]
    for name in sorted(arrays):
        array = arrays[name]
        parts += [name.encode("utf-8"), b"\x00", str(array.dtype.str).encode(), repr(array.shape).encode()]
        parts.append(_to_raw(array))
    return cache_key(model.version, b"".join(parts))


def _dump_arrays(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _load_arrays(payload: bytes) -> dict[str, npt.NDArray[Any]] | None:
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError):
        log.warning("undecodable cached inference result; recomputing")
        return None


# --- gRPC --------------------------------------------------------------------------------------------


def decode_grpc_inputs(request: pb.ModelInferRequest) -> list[Tensor]:
    """The request's input tensors, from typed contents or ``raw_input_contents``.

    Raises ValidationError for an unsupported data type, negative dimensions, a contents size
    that does not match the shape, or a mix of typed and raw contents.
    """
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ValidationError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs",
            field="raw_input_contents",
        )
    tensors: list[Tensor] = []
    for i, tensor in enumerate(request.inputs):
        codec = _codec(tensor.datatype, f"inputs[{i}].datatype")
        shape = _shape(tensor.shape, f"inputs[{i}].shape")
        if raw:
            if tensor.HasField("contents"):
                raise ValidationError(
                    "inputs may not carry contents when raw_input_contents is used",
                    field=f"inputs[{i}].contents",
                )
            array = _from_raw(raw[i], codec, shape, f"raw_input_contents[{i}]")
        else:
            if codec.contents_field is None:
                raise ValidationError(
                    f"{tensor.datatype} tensors must be sent in raw_input_contents",
                    field=f"inputs[{i}].contents",
                )
            values = getattr(tensor.contents, codec.contents_field)
            expected = math.prod(shape)
            if len(values) != expected:
                raise ValidationError(
                    f"input {tensor.name!r} has {len(values)} values; shape {list(shape)} needs {expected}",
                    field=f"inputs[{i}].contents.{codec.contents_field}",
                )
            array = np.asarray(values, dtype=codec.dtype).reshape(shape)
        tensors.append(Tensor(tensor.name, tensor.datatype, array))
    return tensors


def encode_grpc_response(
    request: pb.ModelInferRequest, result: InferenceResult, *, raw: bool
) -> pb.ModelInferResponse:
    """The response for ``result``; raw contents when ``raw`` or a data type has no typed field."""
    raw = raw or any(_CODECS[t.datatype].contents_field is None for t in result.outputs)
    response = pb.ModelInferResponse(
        model_name=result.model.name, model_version=result.model.version, id=request.id
    )
    for tensor in result.outputs:
        out = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.data.shape)
        if raw:
            response.raw_output_contents.append(_to_raw(tensor.data))
        else:
            field = _CODECS[tensor.datatype].contents_field
            assert field is not None
            getattr(out.contents, field).extend(tensor.data.ravel().tolist())
    return response


def _tensor_metadata(specs: Sequence[TensorSpec]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=s.name, datatype=s.datatype, shape=s.shape)
        for s in specs
    ]


class GrpcInferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over an :class:`OpenInferenceServer`."""

    def __init__(self, server: OpenInferenceServer) -> None:
        self._server = server

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._server.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._server.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._server.model_ready(request.name, request.version))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        s = self._server
        return pb.ServerMetadataResponse(name=s.name, version=s.version, extensions=s.extensions)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        model = self._server.model(request.name, request.version)
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform=model.platform,
            inputs=_tensor_metadata(model.inputs),
            outputs=_tensor_metadata(model.outputs),
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        inputs = decode_grpc_inputs(request)
        result = await self._server.infer(
            request.model_name, request.model_version, inputs, [o.name for o in request.outputs]
        )
        return encode_grpc_response(request, result, raw=bool(request.raw_input_contents))


def grpc_service(server: OpenInferenceServer) -> GrpcService:
    """The servicer for :class:`~novamind.core.service.ServiceRuntime`'s ``grpc_services``."""
    servicer = GrpcInferenceServicer(server)
    return GrpcService(
        SERVICE_NAME,
        lambda grpc_server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, grpc_server),
    )


# --- REST --------------------------------------------------------------------------------------------


class RestTensor(BaseModel):
    """A tensor in JSON: ``data`` flat or nested in row-major order (``null`` = NaN for floats)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RestRequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class RestInferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RestTensor] = Field(min_length=1)
    outputs: list[RestRequestedOutput] | None = None


class RestInferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RestTensor]


class RestTensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class RestModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[RestTensorMetadata]
    outputs: list[RestTensorMetadata]


class RestServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class RestLive(BaseModel):
    live: bool


class RestReady(BaseModel):
    ready: bool


class RestModelReady(BaseModel):
    name: str
    ready: bool


class RestError(BaseModel):
    """The v2 error body (``error``), with Novamind's ``code`` and ``field``."""

    error: str
    code: str
    message: str
    field: str | None = None


def decode_rest_inputs(request: RestInferRequest) -> list[Tensor]:
    """The request's input tensors. Raises ValidationError like :func:`decode_grpc_inputs`."""
    tensors: list[Tensor] = []
    for i, tensor in enumerate(request.inputs):
        codec = _codec(tensor.datatype, f"inputs[{i}].datatype")
        shape = _shape(tensor.shape, f"inputs[{i}].shape")
        try:
            array = np.asarray(tensor.data, dtype=codec.dtype)
        except (TypeError, ValueError):
            raise ValidationError(
                f"input {tensor.name!r} data are not all {tensor.datatype} values", field=f"inputs[{i}].data"
            ) from None
        expected = math.prod(shape)
        if array.size != expected:
            raise ValidationError(
                f"input {tensor.name!r} has {array.size} values; shape {list(shape)} needs {expected}",
                field=f"inputs[{i}].data",
            )
        tensors.append(Tensor(tensor.name, tensor.datatype, array.reshape(shape)))
    return tensors


def _rest_error(exc: NovamindError) -> JSONResponse:
    body = error_body(exc)
    return JSONResponse({"error": exc.message, **body}, status_code=exc.mapping.http_status)


class _V2Route(APIRoute):
    """Answers taxonomy and request-validation errors with the v2 error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NovamindError as exc:
                return _rest_error(exc)
            except RequestValidationError as exc:
                return _rest_error(validation_error_from(exc))

        return route


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": RestError} for code in (404, 422, 500, 503)
}


def oip_router(server: OpenInferenceServer) -> APIRouter:
    """The REST form of the protocol under ``/v2``, for :class:`fastapi.FastAPI.include_router`.

    Health endpoints answer 200 for true and 400 for false, as the v2 spec asks.
    """
    router = APIRouter(
        prefix="/v2", tags=["Open Inference Protocol v2"], route_class=_V2Route, responses=_ERROR_RESPONSES
    )

    def readiness(ready: bool, body: BaseModel) -> JSONResponse:
        return JSONResponse(body.model_dump(), status_code=200 if ready else 400)

    @router.get("", response_model=RestServerMetadata, summary="Server metadata")
    async def server_metadata() -> RestServerMetadata:
        return RestServerMetadata(
            name=server.name, version=server.version, extensions=list(server.extensions)
        )

    @router.get("/health/live", response_model=RestLive, summary="Server liveness")
    async def live() -> JSONResponse:
        return readiness(server.live(), RestLive(live=server.live()))

    @router.get("/health/ready", response_model=RestReady, summary="Server readiness")
    async def ready() -> JSONResponse:
        is_ready = server.ready()
        return readiness(is_ready, RestReady(ready=is_ready))

    def metadata(name: str, version: str) -> RestModelMetadata:
        model = server.model(name, version)
        return RestModelMetadata(
            name=model.name,
            versions=[model.version],
            platform=model.platform,
            inputs=[
                RestTensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape))
                for s in model.inputs
            ],
            outputs=[
                RestTensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape))
                for s in model.outputs
            ],
        )

    def model_ready(name: str, version: str) -> JSONResponse:
        is_ready = server.model_ready(name, version)
        return readiness(is_ready, RestModelReady(name=name, ready=is_ready))

    async def infer(name: str, version: str, request: RestInferRequest) -> RestInferResponse:
        result = await server.infer(
            name, version, decode_rest_inputs(request), [o.name for o in request.outputs or ()]
        )
        return RestInferResponse(
            model_name=result.model.name,
            model_version=result.model.version,
            id=request.id,
            outputs=[
                RestTensor(
                    name=t.name, datatype=t.datatype, shape=list(t.data.shape), data=t.data.ravel().tolist()
                )
                for t in result.outputs
            ],
        )

    @router.get("/models/{name}", response_model=RestModelMetadata, summary="Model metadata")
    async def model_metadata(name: str) -> RestModelMetadata:
        return metadata(name, "")

    @router.get(
        "/models/{name}/versions/{version}", response_model=RestModelMetadata, summary="Model metadata"
    )
    async def model_version_metadata(name: str, version: str) -> RestModelMetadata:
        return metadata(name, version)

    @router.get("/models/{name}/ready", response_model=RestModelReady, summary="Model readiness")
    async def model_readiness(name: str) -> JSONResponse:
        return model_ready(name, "")

    @router.get(
        "/models/{name}/versions/{version}/ready", response_model=RestModelReady, summary="Model readiness"
    )
    async def model_version_readiness(name: str, version: str) -> JSONResponse:
        return model_ready(name, version)

    @router.post("/models/{name}/infer", response_model=RestInferResponse, summary="Inference")
    async def model_infer(name: str, request: RestInferRequest) -> RestInferResponse:
        return await infer(name, "", request)

    @router.post(
        "/models/{name}/versions/{version}/infer", response_model=RestInferResponse, summary="Inference"
    )
    async def model_version_infer(name: str, version: str, request: RestInferRequest) -> RestInferResponse:
        return await infer(name, version, request)

    return router


__all__ = [
    "SERVICE_NAME",
    "GrpcInferenceServicer",
    "InferenceResult",
    "OpenInferenceServer",
    "Tensor",
    "decode_grpc_inputs",
    "decode_rest_inputs",
    "encode_grpc_response",
    "grpc_service",
    "oip_router",
]
