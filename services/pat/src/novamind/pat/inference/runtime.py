"""Where and how the PAT encoder runs: hardware, backends (PyTorch, ONNX Runtime) and the choice between them.

Decision (:func:`plan_candidates`, pure and tested with explicit hardware descriptions):

* GPU when CUDA is present and ``device`` is ``"auto"`` or ``"cuda"``: PyTorch with autocast to
  bf16 (fp16 where the GPU lacks bf16) and the fused scaled-dot-product attention kernel, inputs
  copied from pinned memory. ``device="cuda"`` without CUDA is a configuration error, reported
  as NOT READY rather than silently running on the CPU.
* Otherwise the CPU, where every allowed candidate is *measured* on a warm-up batch and the
  fastest kept (:func:`select_backend`): PyTorch fp32, PyTorch bf16 (only where the CPU has
  native bf16 matrix units, AVX512-BF16 or AMX, and only if its embeddings stay within
  ``bf16_max_relative_error`` of fp32 on that batch), and ONNX Runtime fp32 (only if the export
  matches PyTorch to ``onnx_parity_atol``). The timings, the winner and every rejection with its
  reason are kept in :class:`BackendChoice`.

Batch shape: PAT attends over 560 (PAT-S/M), 1,120 (L) or 2,016 (H) patches, and the attention
scores of a whole micro-batch do not fit in cache, so a CPU backend runs a batch as consecutive
sub-batches of ``sub_batch`` weeks, measured at start-up (:func:`tune_sub_batch`) unless
configured.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.model.pat import PATEncoder

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "bf16", "fp16"]
BackendKind = Literal["torch", "onnx"]
Float32Array = npt.NDArray[np.float32]

_DTYPES: Final = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# --- Configuration and hardware ----------------------------------------------------------------


@dataclass(frozen=True)
class InferenceConfig:
    """How the encoder is served; every field has a default that works on a laptop.

    ``device``: ``"auto"`` (GPU when present), ``"cpu"`` or ``"cuda"``.
    ``cpu_backend``: ``"auto"`` (measure), ``"torch"`` or ``"onnx"``.
    ``cpu_precision``: ``"auto"`` (bf16 where the CPU has native bf16 units and the accuracy
    check passes, else fp32), ``"fp32"`` or ``"bf16"``.
    ``threads``: intra-op threads (None: every core this process may use).
    ``sub_batch``: weeks per model call on the CPU (None: measured at start-up).
    ``max_batch`` weeks, ``max_wait_ms`` milliseconds, ``max_queue`` weeks: the micro-batcher's
    limits (:class:`~novamind.pat.inference.batcher.MicroBatcher`); ``explain_max_batch`` the same
    for requests that want the attention map, whose explicit attention weights need more memory.
    ``onnx_parity_atol``: largest absolute embedding difference accepted from an ONNX export.
    ``bf16_max_relative_error``: largest ``|e_bf16 - e_fp32| / |e_fp32|`` accepted per week.
    ``selection_rows`` weeks per timing probe, ``selection_repeats`` probes per candidate (the
    fastest counts, which discounts noise from other processes).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_backend: Literal["auto", "torch", "onnx"] = "auto"
    cpu_precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = None
    sub_batch: int | None = None
    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    explain_max_batch: int = 4
    onnx_parity_atol: float = 1e-4
    bf16_max_relative_error: float = 0.01
    selection_rows: int = 4
    selection_repeats: int = 3

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "explain_max_batch", "selection_rows", "selection_repeats"):
            if getattr(self, name) < 1:
                raise ValidationError(f"{name} must be at least 1", field=name)
        if self.sub_batch is not None and self.sub_batch < 1:
            raise ValidationError("sub_batch must be at least 1", field="sub_batch")
        if self.threads is not None and self.threads < 1:
            raise ValidationError("threads must be at least 1", field="threads")
        if self.max_wait_ms < 0:
            raise ValidationError("max_wait_ms must not be negative", field="max_wait_ms")


@dataclass(frozen=True)
class Hardware:
    """What the process can run on. ``cpu_bf16``: native bf16 matrix instructions (AVX512-BF16 or
    AMX) that oneDNN uses; without them bf16 is emulated and slower than fp32."""

    cpu_cores: int
    cpu_bf16: bool = False
    cuda_available: bool = False
    cuda_device: str | None = None
    cuda_bf16: bool = False

    @classmethod
    def detect(cls) -> Hardware:
        """The hardware of this process (CPU affinity, CPU features, the first CUDA device)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        cpu_bf16 = bool(
            torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
            and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
        )
        cuda = torch.cuda.is_available()
        return cls(
            cpu_cores=cores,
            cpu_bf16=cpu_bf16,
            cuda_available=cuda,
            cuda_device=torch.cuda.get_device_name(0) if cuda else None,
            cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        )


@dataclass(frozen=True)
class Candidate:
    """One way to run the encoder."""

    kind: BackendKind
    device: Device
    precision: Precision

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.device}-{self.precision}"


def plan_candidates(config: InferenceConfig, hardware: Hardware) -> list[Candidate]:
    """The backends worth trying for ``config`` on ``hardware``, most promising first.

    One GPU candidate when CUDA is available and allowed (nothing to measure); otherwise the CPU
    candidates allowed by ``cpu_backend`` and ``cpu_precision``. Raises ``ModelNotReadyError``
    when the configuration asks for what the hardware lacks (``device="cuda"`` without CUDA)
    and ``ValidationError`` for a contradictory one (ONNX Runtime in bf16).
    """
    if config.device == "cuda" and not hardware.cuda_available:
        raise ModelNotReadyError(
            "the configuration asks for a CUDA GPU and none is available", field="device"
        )
    if hardware.cuda_available and config.device in ("auto", "cuda"):
        return [Candidate("torch", "cuda", "bf16" if hardware.cuda_bf16 else "fp16")]
    if config.cpu_backend == "onnx" and config.cpu_precision == "bf16":
        raise ValidationError("ONNX Runtime serves PAT in fp32 only on the CPU", field="cpu_precision")
    precisions: list[Precision]
    if config.cpu_precision == "auto":
        precisions = ["bf16", "fp32"] if hardware.cpu_bf16 else ["fp32"]
    else:
        precisions = [config.cpu_precision]
    candidates: list[Candidate] = []
    if config.cpu_backend in ("auto", "torch"):
        candidates += [Candidate("torch", "cpu", p) for p in precisions]
    if config.cpu_backend in ("auto", "onnx") and "fp32" in precisions:
        candidates.append(Candidate("onnx", "cpu", "fp32"))
    return candidates


# --- Backends ----------------------------------------------------------------------------------


class EncoderBackend(Protocol):
    """Runs the encoder on standardised weeks; called from one worker thread at a time."""

    candidate: Candidate
    sub_batch: int

    def embed(self, weeks: Float32Array) -> Float32Array:
        """(n, 10080) standardised weeks -> (n, embed_dim) float32 embeddings."""
        ...

    def embed_with_attention(self, weeks: Float32Array) -> tuple[Float32Array, Float32Array]:
        """Embeddings and the attention each patch received, (n, patches), rows summing to 1
        (mean over layers, heads and queries; see :mod:`~novamind.pat.inference.explain`)."""
        ...


def _chunks(weeks: Float32Array, size: int) -> list[Float32Array]:
    return [weeks[i : i + size] for i in range(0, len(weeks), size)]


class TorchBackend:
    """PyTorch on the CPU or a CUDA GPU, in fp32 or under autocast to bf16/fp16.

    On the CPU: ``torch.inference_mode``, intra-op threads set to ``threads``, contiguous float32
    inputs shared with NumPy without a copy, batches cut into ``sub_batch`` weeks. On a GPU: the
    encoder moved to the device once, inputs copied from pinned memory without blocking, the
    whole batch in one call (unless ``sub_batch`` says otherwise). The encoder's fused
    ``scaled_dot_product_attention`` kernel is used for embeddings; the attention map needs the
    explicit softmax path, one block at a time so only one layer's weights are ever held.
    """

    def __init__(
        self,
        encoder: PATEncoder,
        candidate: Candidate,
        *,
        threads: int | None = None,
        sub_batch: int | None = None,
    ) -> None:
        if candidate.kind != "torch":
            raise ValidationError(f"{candidate.label} is not a PyTorch candidate", field="candidate")
        self.candidate = candidate
        self._device = torch.device(candidate.device)
        if candidate.device == "cpu" and threads is not None:
            torch.set_num_threads(threads)
        self._encoder = encoder.eval().to(self._device)
        self._dtype = _DTYPES[candidate.precision]
        self.sub_batch = sub_batch or (1 << 30 if candidate.device == "cuda" else 1)
        # The explicit attention weights (batch, heads, patches, patches) are the largest tensor
        # of the explanation path: one week at a time on the CPU keeps them as small as they get.
        self.explain_sub_batch = 1 << 30 if candidate.device == "cuda" else 1

    def _input(self, chunk: Float32Array) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
        if self._device.type == "cuda":
            return tensor.pin_memory().to(self._device, non_blocking=True)
        return tensor

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            device_type=self._device.type, dtype=self._dtype, enabled=self._dtype != torch.float32
        )

    def embed(self, weeks: Float32Array) -> Float32Array:
        outputs: list[Float32Array] = []
        with torch.inference_mode(), self._autocast():
            for chunk in _chunks(weeks, self.sub_batch):
                embedding = self._encoder(self._input(chunk)).embedding
                outputs.append(embedding.float().cpu().numpy())
        if not outputs:
            return np.empty((0, self._encoder.config.embed_dim), np.float32)
        return np.concatenate(outputs)

    def embed_with_attention(self, weeks: Float32Array) -> tuple[Float32Array, Float32Array]:
        encoder = self._encoder
        embeddings: list[Float32Array] = []
        received: list[Float32Array] = []
        with torch.inference_mode(), self._autocast():
            for chunk in _chunks(weeks, self.explain_sub_batch):
                positions = encoder.positional_embeddings  # (patches, embed)
                tokens = encoder.embed_patches(self._input(chunk)) + positions
                total = torch.zeros(tokens.shape[:2], dtype=torch.float32, device=self._device)
                for block in encoder.blocks:
                    tokens, weights = block(tokens, True)  # weights (batch, heads, queries, keys)
                    assert weights is not None
                    total += weights.sum(dim=(1, 2), dtype=torch.float32)
                    del weights
                total /= total.sum(dim=1, keepdim=True)
                embeddings.append(tokens.mean(dim=1).float().cpu().numpy())
                received.append(total.cpu().numpy())
        return np.concatenate(embeddings), np.concatenate(received)


class _EmbeddingOnly(nn.Module):
    """The encoder with one output, the pooled embedding: the graph exported to ONNX."""

    def __init__(self, encoder: PATEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, weeks: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.encoder(weeks).embedding
        return embedding


def export_onnx(encoder: PATEncoder) -> bytes:
    """The encoder's embedding graph as ONNX (opset 17, dynamic batch): input ``weeks``
    (batch, 10080) float32, output ``embedding`` (batch, embed_dim) float32.

    Uses the TorchScript-based exporter, which runs without onnxscript and writes the fused
    attention as plain MatMul/Softmax nodes that ONNX Runtime optimises.
    """
    sample = torch.zeros(2, encoder.config.input_size)
    with tempfile.TemporaryDirectory() as folder, torch.no_grad(), warnings.catch_warnings():
        # The exporter warns that it is the legacy one and that the input-shape check is traced
        # as a constant; both are expected here (the batch axis is declared dynamic).
        warnings.simplefilter("ignore")
        path = Path(folder) / "pat_encoder.onnx"
        # The exporter restores the training flag of the module it is given; a fresh wrapper is in
        # training mode, which would switch the shared encoder's dropout on for everyone after.
        torch.onnx.export(
            _EmbeddingOnly(encoder).eval(),
            (sample,),
            path,
            dynamo=False,
            input_names=["weeks"],
            output_names=["embedding"],
            dynamic_axes={"weeks": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
        )
        encoder.eval()
        return path.read_bytes()


class OnnxBackend:
    """ONNX Runtime on the CPU, from an export checked against PyTorch.

    The export is refused (``ModelNotReadyError``) when its embeddings differ from the fp32
    PyTorch encoder's by more than ``parity_atol`` on ``probe`` weeks. Session options: all graph
    optimisations, ``threads`` intra-op threads, sequential execution. The attention map is not
    exported; ``embed_with_attention`` runs on the fp32 PyTorch reference.
    """

    candidate = Candidate("onnx", "cpu", "fp32")

    def __init__(
        self,
        encoder: PATEncoder,
        probe: Float32Array,
        *,
        threads: int | None = None,
        sub_batch: int | None = None,
        parity_atol: float = 1e-4,
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        reference = Candidate("torch", "cpu", "fp32")
        self._reference = TorchBackend(encoder, reference, threads=threads, sub_batch=4)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            export_onnx(encoder), options, providers=["CPUExecutionProvider"]
        )
        self.sub_batch = sub_batch or 1
        self.parity_max_abs = float(np.max(np.abs(self.embed(probe) - self._reference.embed(probe))))
        if not self.parity_max_abs < parity_atol:
            raise ModelNotReadyError(
                f"the ONNX export differs from PyTorch by {self.parity_max_abs:.2e} "
                f"(more than {parity_atol:.0e}); refusing to serve it",
                field="onnx",
            )

    def embed(self, weeks: Float32Array) -> Float32Array:
        outputs = [
            np.asarray(self._session.run(["embedding"], {"weeks": np.ascontiguousarray(c, np.float32)})[0])
            for c in _chunks(weeks, self.sub_batch)
        ]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def embed_with_attention(self, weeks: Float32Array) -> tuple[Float32Array, Float32Array]:
        return self._reference.embed_with_attention(weeks)


# --- Measuring and choosing ---------------------------------------------------------------------


def measure_throughput(
    run: Callable[[Float32Array], object], weeks: Float32Array, repeats: int, *, give_up_below: float = 0.0
) -> float:
    """Weeks per second of ``run(weeks)``: one warm-up call, then the fastest of ``repeats``.

    When the warm-up alone runs at under ``give_up_below`` weeks/s, its rate is returned without
    the repeats: a candidate that far behind is not worth the start-up time (PAT-H in fp32 takes
    about a second a week).
    """
    started = time.perf_counter()
    run(weeks)
    best = time.perf_counter() - started
    if len(weeks) / best < give_up_below:
        return len(weeks) / best
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(weeks)
        best = min(best, time.perf_counter() - started)
    return len(weeks) / best


def tune_sub_batch(
    backend: EncoderBackend, weeks: Float32Array, repeats: int, sizes: Sequence[int] = (1, 2, 4, 8)
) -> dict[int, float]:
    """Measure weeks/s of ``backend`` on ``weeks`` for each sub-batch size (no larger than the
    batch) and leave the fastest set on ``backend``; returns every measurement."""
    timings: dict[int, float] = {}
    for size in sizes:
        if size > len(weeks):
            break
        backend.sub_batch = size
        timings[size] = measure_throughput(backend.embed, weeks, repeats)
    backend.sub_batch = max(timings, key=lambda s: timings[s])
    return timings


@dataclass
class BackendChoice:
    """The backend chosen, the measurements behind the choice, and what was ruled out and why."""

    candidate: Candidate
    sub_batch: int
    hardware: Hardware
    throughput: dict[str, float] = field(default_factory=dict)  # label -> weeks/s on the probe
    sub_batch_throughput: dict[int, float] = field(default_factory=dict)  # size -> weeks/s
    rejected: dict[str, str] = field(default_factory=dict)  # label -> reason
    accuracy: dict[str, float] = field(default_factory=dict)  # label -> deviation from fp32

    def describe(self) -> str:
        measured = ", ".join(f"{label} {rate:.1f} weeks/s" for label, rate in self.throughput.items())
        rejected = "; ".join(f"{label}: {reason}" for label, reason in self.rejected.items())
        return (
            f"{self.candidate.label} (sub-batch {self.sub_batch})"
            + (f"; measured {measured}" if measured else "")
            + (f"; rejected {rejected}" if rejected else "")
        )


def _relative_error(embeddings: Float32Array, reference: Float32Array) -> float:
    norms = np.maximum(np.linalg.norm(reference, axis=1), 1e-12)
    return float(np.max(np.linalg.norm(embeddings - reference, axis=1) / norms))


def _build(
    encoder: PATEncoder,
    candidate: Candidate,
    rows: Float32Array,
    config: InferenceConfig,
    threads: int,
    choice: BackendChoice,
    fp32: list[Float32Array],
) -> EncoderBackend:
    """One CPU candidate, checked for accuracy (ONNX parity, bf16 against fp32); raises
    ``ModelNotReadyError`` with the reason when it fails its check."""
    if candidate.kind == "onnx":
        onnx = OnnxBackend(encoder, rows, threads=threads, parity_atol=config.onnx_parity_atol)
        choice.accuracy[candidate.label] = onnx.parity_max_abs
        return onnx
    backend = TorchBackend(encoder, candidate, threads=threads, sub_batch=1)
    if candidate.precision == "fp32":
        return backend
    if not fp32:
        fp32.append(TorchBackend(encoder, Candidate("torch", "cpu", "fp32"), threads=threads).embed(rows))
    error = _relative_error(backend.embed(rows), fp32[0])
    choice.accuracy[candidate.label] = error
    if not error <= config.bf16_max_relative_error:
        raise ModelNotReadyError(
            f"relative embedding error {error:.2e} exceeds {config.bf16_max_relative_error:.0e}",
            field=candidate.label,
        )
    return backend


def select_backend(
    encoder: PATEncoder,
    probe: Float32Array,
    config: InferenceConfig,
    hardware: Hardware,
) -> tuple[EncoderBackend, BackendChoice]:
    """Build the backends :func:`plan_candidates` allows, keep the fastest on ``probe`` weeks.

    ``probe`` (rows, 10080) are standardised weeks (real ones where possible). A GPU candidate is
    taken without measuring. On the CPU each candidate is timed on ``selection_rows`` weeks, one
    per call and all in one call, and its better rate counts; one already under half the best
    rate after its warm-up call is not timed further. bf16 must stay within
    ``bf16_max_relative_error`` of fp32 and ONNX within ``onnx_parity_atol``, or the candidate
    is rejected with the reason recorded. Then the winner's sub-batch is tuned on up to 8 weeks
    (no more than ``max_batch``) unless ``config.sub_batch`` is set. Raises
    ``ModelNotReadyError`` when no candidate can run.
    """
    candidates = plan_candidates(config, hardware)
    threads = config.threads or hardware.cpu_cores
    if candidates[0].device == "cuda":
        gpu = TorchBackend(encoder, candidates[0], sub_batch=config.sub_batch)
        return gpu, BackendChoice(candidates[0], gpu.sub_batch, hardware)

    rows = probe[: config.selection_rows]
    built: list[tuple[EncoderBackend, float]] = []
    choice = BackendChoice(candidates[0], 1, hardware)
    fp32: list[Float32Array] = []  # the fp32 embeddings of ``rows``, computed once when needed
    for candidate in candidates:
        try:
            backend = _build(encoder, candidate, rows, config, threads, choice, fp32)
        except ModelNotReadyError as exc:
            choice.rejected[candidate.label] = exc.message
            continue
        # Each candidate at one week per call and at the whole probe per call: batch shape can
        # change the ranking (ONNX Runtime and PyTorch do not lose cache locality alike).
        best = max((rate for _, rate in built), default=0.0)
        rates = {}
        for size in sorted({1, len(rows)}):
            backend.sub_batch = size
            rates[size] = measure_throughput(
                backend.embed, rows, config.selection_repeats, give_up_below=best / 2
            )
        backend.sub_batch = max(rates, key=lambda size: rates[size])
        choice.throughput[candidate.label] = rates[backend.sub_batch]
        built.append((backend, rates[backend.sub_batch]))
    if not built:
        raise ModelNotReadyError(
            "no inference backend could run the encoder: " + "; ".join(choice.rejected.values()),
            field="backend",
        )
    winner = max(built, key=lambda item: item[1])[0]
    choice.candidate = winner.candidate
    if config.sub_batch is not None:
        winner.sub_batch = config.sub_batch
    else:
        tuning = np.resize(probe, (min(config.max_batch, 8), probe.shape[1])).astype(np.float32)
        choice.sub_batch_throughput = tune_sub_batch(winner, tuning, config.selection_repeats)
    choice.sub_batch = winner.sub_batch
    return winner, choice
