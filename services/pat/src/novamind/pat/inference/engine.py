"""The PAT embedding engine: a week in; its embedding, explanation, model identity and input quality out.

``await engine.embed(week)`` validates and prepares the week (imputation, standardisation), queues
it on a micro-batcher, and answers with a :class:`WeekEmbedding`. Requests that want the
attention map (``explain=True``) go through a second batcher, because the explicit attention
weights cost more than the fused kernel; both batchers share one worker thread, so their batches
never compete for the cores. The backend is chosen at :meth:`EmbeddingEngine.start` (see
:mod:`~novamind.pat.inference.runtime`); until then, and after :meth:`close`, ``ready()`` is
False and ``embed`` raises ``ModelNotReadyError``.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.domain.preprocessing import (
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    StandardScalerParameters,
    Week,
    detect_non_wear,
    impute,
    standardise,
)
from novamind.pat.inference import metrics
from novamind.pat.inference.batcher import MicroBatcher
from novamind.pat.inference.explain import hour_of_week_map
from novamind.pat.inference.runtime import (
    BackendChoice,
    EncoderBackend,
    Hardware,
    InferenceConfig,
    select_backend,
)
from novamind.pat.model.pat import PATEncoder
from novamind.pat.model.weights import ArtifactManifest, sha256_of

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

_PROBE_SEED: Final = 20_241_115


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights produced an embedding: name, version and the sha256 of the weights file."""

    name: str
    version: str
    sha256: str

    @classmethod
    def from_manifest(cls, manifest: ArtifactManifest) -> ModelIdentity:
        return cls(manifest.name, manifest.version, manifest.sha256)

    @classmethod
    def of_file(cls, path: str | os.PathLike[str], *, name: str, version: str) -> ModelIdentity:
        """Identity of a weights file without a manifest (an official ``.h5``): hashes the file."""
        return cls(name, version, sha256_of(path))


@dataclass(frozen=True)
class InputQuality:
    """How much of the week was real data.

    ``minutes_present``: minutes (0-10,080) with a recorded count. ``wear_fraction`` (0-1): share
    of the week's minutes recorded *and* worn (not Choi non-wear); the rest was imputed.
    """

    minutes_present: int
    wear_fraction: float


@dataclass(frozen=True, eq=False)
class WeekEmbedding:
    """The engine's answer for one week.

    ``embedding`` (embed_dim,) float32, unitless: the encoder's tokens averaged over patches.
    ``explanation`` (7, 24) float64 or None: share of the attention each local hour of the week
    received, summing to 1 (:mod:`~novamind.pat.inference.explain`); None unless asked for.
    """

    embedding: Float32Array
    explanation: FloatArray | None
    model: ModelIdentity
    quality: InputQuality


@dataclass(frozen=True, eq=False)
class PreparedWeek:
    """A validated week ready for the encoder: standardised values and what the answer reports."""

    values: Float32Array  # (10080,) standardised, unitless
    quality: InputQuality
    local_minute_of_day: npt.NDArray[np.int16] | None


def prepare_week(week: Week | npt.ArrayLike, scaler: StandardScalerParameters | None = None) -> PreparedWeek:
    """Validate one week of counts per minute and standardise it for the encoder.

    ``week`` is a preprocessed :class:`Week` (already imputed, with masks and local clock
    labels) or 10,080 counts per minute starting at local midnight, NaN for a missing minute;
    then non-wear is found with Choi's algorithm on the week itself and missing and non-wear
    minutes are imputed from the same clock minute on the other days
    (:func:`~novamind.pat.domain.preprocessing.impute`). ``scaler`` is the model's cohort
    standardisation (None: each week by its own mean and deviation, see ``standardise``).

    Raises ``ValidationError`` naming the field: not 10,080 values (``week.values``), a value
    that is infinite or negative after imputation (``week.values[i]``), or no recorded minute.
    """
    labels: npt.NDArray[np.int16] | None
    if isinstance(week, Week):
        counts = np.asarray(week.values, dtype=np.float64)
        _check_shape(counts)
        missing = np.asarray(week.mask_missing, dtype=bool)
        values, labels = counts, week.local_minute_of_day
        wear_fraction = week.wear_fraction
    else:
        try:
            counts = np.asarray(week, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError("a week must be numbers (counts per minute)", field="week.values") from exc
        _check_shape(counts)
        missing = np.isnan(counts)
        _check_values(np.where(missing, 0.0, counts))
        non_wear = detect_non_wear(counts)
        clock = (np.arange(MINUTES_PER_WEEK) % MINUTES_PER_DAY).astype(np.int16)
        values, imputed = impute(counts, clock, missing | non_wear)
        labels, wear_fraction = None, float(1.0 - imputed.mean())
    present = int(np.count_nonzero(~missing))
    if present == 0:
        raise ValidationError("the week holds no recorded minute", field="week.values")
    _check_values(values)
    standardised = standardise(values, scaler).astype(np.float32)
    return PreparedWeek(standardised, InputQuality(present, wear_fraction), labels)


def _check_shape(counts: FloatArray) -> None:
    if counts.shape != (MINUTES_PER_WEEK,):
        raise ValidationError(
            f"a week must be 10080 minute values, got shape {counts.shape}", field="week.values"
        )


def _check_values(values: FloatArray) -> None:
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i = int(bad[0])
        what = "negative" if np.isfinite(values[i]) else "not finite"
        raise ValidationError(
            f"minute {i} is {what}; counts per minute must be finite and non-negative",
            field=f"week.values[{i}]",
        )


def synthetic_probe(rows: int) -> Float32Array:
    """Seeded standard-normal weeks for timing backends when no real weeks are given (unitless)."""
    return np.random.default_rng(_PROBE_SEED).standard_normal((rows, MINUTES_PER_WEEK)).astype(np.float32)


class EmbeddingEngine:
    """Serves one PAT encoder to many concurrent callers with micro-batching.

    ``encoder`` holds the loaded weights (never random ones in service: load them with
    :mod:`~novamind.pat.model.weights`), ``model`` says which. ``probe`` (rows, 10080)
    standardised weeks time the candidate backends (default: :func:`synthetic_probe`).
    """

    def __init__(
        self,
        encoder: PATEncoder,
        model: ModelIdentity,
        *,
        config: InferenceConfig | None = None,
        hardware: Hardware | None = None,
        scaler: StandardScalerParameters | None = None,
        probe: Float32Array | None = None,
    ) -> None:
        self.encoder = encoder
        self.model = model
        self.config = config or InferenceConfig()
        self.scaler = scaler
        self._hardware = hardware
        self._probe = probe
        self._executor: ThreadPoolExecutor | None = None
        self._backend: EncoderBackend | None = None
        self._plain: MicroBatcher[Float32Array] | None = None
        self._explained: MicroBatcher[tuple[Float32Array, Float32Array]] | None = None
        self.choice: BackendChoice | None = None

    async def start(self) -> BackendChoice:
        """Choose the backend (measuring candidates in the worker thread) and start serving.

        An engine starts once; calling again returns the first choice. Raises
        ``ModelNotReadyError`` when no backend can run the encoder.
        """
        if self.choice is not None:
            return self.choice
        config = self.config
        hardware = self._hardware or Hardware.detect()
        probe = self._probe if self._probe is not None else synthetic_probe(config.selection_rows)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pat-inference")
        loop = asyncio.get_running_loop()
        try:
            backend, choice = await loop.run_in_executor(
                self._executor, select_backend, self.encoder, probe, config, hardware
            )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._backend = backend

        def run_plain(rows: Float32Array) -> list[Float32Array]:
            return list(backend.embed(rows))

        def run_explained(rows: Float32Array) -> list[tuple[Float32Array, Float32Array]]:
            embeddings, received = backend.embed_with_attention(rows)
            return list(zip(embeddings, received, strict=True))

        self._plain = MicroBatcher(
            run_plain,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            name="pat-embed",
            observer=metrics.batch_observer(self.model.name, "embed"),
            executor=self._executor,
        )
        self._explained = MicroBatcher(
            run_explained,
            max_batch=config.explain_max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            name="pat-explain",
            observer=metrics.batch_observer(self.model.name, "explain"),
            executor=self._executor,
        )
        await self._plain.start()
        await self._explained.start()
        self.choice = choice
        return choice

    def ready(self) -> bool:
        """True while the engine accepts weeks: started, backend chosen, batchers running."""
        return (
            self.choice is not None
            and self._plain is not None
            and self._plain.running
            and self._explained is not None
            and self._explained.running
        )

    async def embed(self, week: Week | npt.ArrayLike, *, explain: bool = False) -> WeekEmbedding:
        """Embed one week of counts per minute (see :func:`prepare_week`); with ``explain`` also
        the (7, 24) attention map.

        Raises ``ValidationError`` for a malformed week, ``ModelNotReadyError`` before
        :meth:`start` or after :meth:`close`, ``ResourceExhaustedError`` when the queue is full,
        and ``ModelInferenceError`` when the model failed on the batch holding this week.
        """
        prepared = prepare_week(week, self.scaler)
        if not self.ready():
            raise ModelNotReadyError(f"{self.model.name} is not serving", field="model")
        assert self._plain is not None and self._explained is not None
        explanation: FloatArray | None = None
        if explain:
            embedding, received = await self._explained.submit(prepared.values)
            explanation = hour_of_week_map(
                received,
                patch_size=self.encoder.config.patch_size,
                local_minute_of_day=prepared.local_minute_of_day,
            )
        else:
            embedding = await self._plain.submit(prepared.values)
        vector = np.asarray(embedding, dtype=np.float32)
        return WeekEmbedding(vector, explanation, self.model, prepared.quality)

    async def close(self) -> None:
        """Stop accepting weeks, answer every accepted one, release the worker thread."""
        for batcher in (self._plain, self._explained):
            if batcher is not None:
                await batcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> EmbeddingEngine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
