"""Backend decisions (explicit hardware), ONNX export parity, and the measured selection."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.inference import (
    Candidate,
    Hardware,
    InferenceConfig,
    OnnxBackend,
    TorchBackend,
    plan_candidates,
    prepare_week,
    select_backend,
)
from novamind.pat.inference.runtime import export_onnx
from novamind.pat.model.pat import PATEncoder

LAPTOP = Hardware(cpu_cores=4)
SERVER_CPU = Hardware(cpu_cores=2, cpu_bf16=True)
GPU_NODE = Hardware(
    cpu_cores=16, cpu_bf16=True, cuda_available=True, cuda_device="NVIDIA H100", cuda_bf16=True
)
OLD_GPU_NODE = Hardware(cpu_cores=8, cuda_available=True, cuda_device="Tesla T4", cuda_bf16=False)


def labels(config: InferenceConfig, hardware: Hardware) -> list[str]:
    return [c.label for c in plan_candidates(config, hardware)]


def test_the_gpu_is_chosen_when_cuda_is_present_and_allowed() -> None:
    assert labels(InferenceConfig(), GPU_NODE) == ["torch-cuda-bf16"]
    assert labels(InferenceConfig(device="cuda"), GPU_NODE) == ["torch-cuda-bf16"]
    assert labels(InferenceConfig(), OLD_GPU_NODE) == ["torch-cuda-fp16"]


def test_the_gpu_is_never_chosen_without_cuda_or_when_configured_off() -> None:
    assert all("cuda" not in label for label in labels(InferenceConfig(), SERVER_CPU))
    assert all("cuda" not in label for label in labels(InferenceConfig(device="cpu"), GPU_NODE))


def test_asking_for_a_gpu_that_is_not_there_is_not_ready() -> None:
    with pytest.raises(ModelNotReadyError) as error:
        plan_candidates(InferenceConfig(device="cuda"), SERVER_CPU)
    assert error.value.field == "device"


def test_cpu_candidates_follow_the_cpu_features_and_the_configuration() -> None:
    assert labels(InferenceConfig(), SERVER_CPU) == ["torch-cpu-bf16", "torch-cpu-fp32", "onnx-cpu-fp32"]
    assert labels(InferenceConfig(), LAPTOP) == ["torch-cpu-fp32", "onnx-cpu-fp32"]  # no emulated bf16
    assert labels(InferenceConfig(cpu_precision="fp32"), SERVER_CPU) == ["torch-cpu-fp32", "onnx-cpu-fp32"]
    assert labels(InferenceConfig(cpu_backend="onnx"), SERVER_CPU) == ["onnx-cpu-fp32"]
    assert labels(InferenceConfig(cpu_backend="torch", cpu_precision="bf16"), LAPTOP) == ["torch-cpu-bf16"]
    with pytest.raises(ValidationError):
        plan_candidates(InferenceConfig(cpu_backend="onnx", cpu_precision="bf16"), SERVER_CPU)


def test_detected_hardware_describes_this_machine() -> None:
    hardware = Hardware.detect()
    assert hardware.cpu_cores >= 1
    assert hardware.cuda_available == torch.cuda.is_available()


def test_the_onnx_export_matches_pytorch_and_leaves_the_encoder_in_eval_mode(
    encoder_s: PATEncoder, active_week: np.ndarray
) -> None:
    weeks = np.stack([prepare_week(active_week).values, prepare_week(active_week[::-1].copy()).values])
    backend = OnnxBackend(encoder_s, weeks, threads=2)
    assert backend.parity_max_abs < 1e-4
    assert not encoder_s.training  # the exporter must not switch dropout on for later calls
    reference = TorchBackend(encoder_s, Candidate("torch", "cpu", "fp32")).embed(weeks)
    np.testing.assert_allclose(backend.embed(weeks), reference, atol=1e-4)


def test_an_onnx_export_that_differs_from_pytorch_is_refused(encoder_s: PATEncoder) -> None:
    with pytest.raises(ModelNotReadyError) as error:
        OnnxBackend(encoder_s, np.ones((1, 10_080), np.float32), parity_atol=0.0)
    assert "refusing" in error.value.message


def test_the_onnx_graph_has_a_dynamic_batch(encoder_s: PATEncoder) -> None:
    import onnx

    model = onnx.load_from_string(export_onnx(encoder_s))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_selection_measures_every_candidate_and_keeps_the_fastest(
    encoder_s: PATEncoder, active_week: np.ndarray
) -> None:
    probe = prepare_week(active_week).values[None]
    config = InferenceConfig(selection_rows=1, selection_repeats=1, max_batch=2)
    backend, choice = select_backend(encoder_s, probe, config, SERVER_CPU)
    assert set(choice.throughput) == {"torch-cpu-bf16", "torch-cpu-fp32", "onnx-cpu-fp32"}
    assert choice.candidate.label == max(choice.throughput, key=lambda label: choice.throughput[label])
    assert backend.candidate == choice.candidate
    assert choice.accuracy["torch-cpu-bf16"] < config.bf16_max_relative_error
    assert choice.accuracy["onnx-cpu-fp32"] < 1e-4
    assert set(choice.sub_batch_throughput) == {1, 2} and choice.sub_batch in (1, 2)
    assert choice.candidate.label in choice.describe()


def test_bf16_outside_the_accuracy_bound_is_rejected_with_its_error(encoder_s: PATEncoder) -> None:
    probe = np.random.default_rng(0).standard_normal((1, 10_080)).astype(np.float32)
    config = InferenceConfig(
        cpu_backend="torch", bf16_max_relative_error=1e-9, selection_rows=1, selection_repeats=1, sub_batch=1
    )
    _, choice = select_backend(encoder_s, probe, config, SERVER_CPU)
    assert choice.candidate.label == "torch-cpu-fp32"
    assert "relative embedding error" in choice.rejected["torch-cpu-bf16"]


def test_large_batches_run_as_sub_batches_with_the_same_answer(
    make_encoder: Callable[..., PATEncoder],
) -> None:
    encoder = make_encoder("S")
    weeks = np.random.default_rng(0).standard_normal((5, 10_080)).astype(np.float32)
    whole = TorchBackend(encoder, Candidate("torch", "cpu", "fp32"), sub_batch=5).embed(weeks)
    pieces = TorchBackend(encoder, Candidate("torch", "cpu", "fp32"), sub_batch=2).embed(weeks)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)
    with torch.inference_mode():
        direct = encoder(torch.from_numpy(weeks)).embedding.numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5)
