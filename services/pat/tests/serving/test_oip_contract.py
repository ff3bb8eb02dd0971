"""The committed OIP v2 stubs are what proto/novamind/api/inference generates, and stay wire-compatible with KServe."""

from __future__ import annotations

from pathlib import Path

import pytest

from novamind.api.inference.v2 import grpc_predict_v2_pb2 as pb
from novamind.devtools import protogen

REPO_ROOT = Path(__file__).resolve().parents[4]
COMMITTED = REPO_ROOT / "libs" / "api" / "src" / "inference"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_inference_stubs_are_exactly_the_generated_ones(tmp_path: Path) -> None:
    protogen.generate(tmp_path, REPO_ROOT)

    assert _tree(COMMITTED) == _tree(tmp_path / "inference"), "stale or hand-edited stubs: run `make proto`"


def test_the_service_offers_the_v2_data_plane() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]

    assert service.full_name == "inference.GRPCInferenceService"
    assert set(service.methods_by_name) == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }


@pytest.mark.parametrize(
    ("message", "field", "number"),
    [
        ("ModelInferRequest", "model_name", 1),
        ("ModelInferRequest", "model_version", 2),
        ("ModelInferRequest", "id", 3),
        ("ModelInferRequest", "parameters", 4),
        ("ModelInferRequest", "inputs", 5),
        ("ModelInferRequest", "outputs", 6),
        ("ModelInferRequest", "raw_input_contents", 7),
        ("ModelInferResponse", "outputs", 5),
        ("ModelInferResponse", "raw_output_contents", 6),
        ("ModelInferRequest.InferInputTensor", "contents", 5),
        ("InferTensorContents", "fp32_contents", 6),
        ("InferTensorContents", "bytes_contents", 8),
        ("ModelMetadataResponse", "platform", 3),
        ("ModelMetadataResponse.TensorMetadata", "shape", 3),
        ("InferParameter", "string_param", 3),
    ],
)
def test_field_numbers_match_kserve(message: str, field: str, number: int) -> None:
    outer, _, inner = message.partition(".")
    descriptor = pb.DESCRIPTOR.message_types_by_name[outer]
    if inner:
        descriptor = descriptor.nested_types_by_name[inner]

    assert descriptor.fields_by_name[field].number == number
