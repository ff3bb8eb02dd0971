"""What a served model offers, and the PAT week-embedding model presented that way.

:class:`InferenceModel` is the contract between the protocol front ends (:mod:`.oip`) and a
model: its identity, its tensor signature in Open Inference Protocol terms, readiness, and an
``infer`` from named arrays to named arrays. :class:`EmbeddingInferenceModel` adapts any
"embed one week" coroutine (the inference engine's) to it, batching rows concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from novamind.core.errors import ModelInferenceError

#: Minutes in one PAT input week (7 x 24 x 60; Ruan et al. 2024, arXiv:2411.15240, sec. 2).
MINUTES_PER_WEEK: Final = 10_080
#: Width of the PAT week embedding.
EMBEDDING_DIM: Final = 96
#: Shape of the attention explanation: days x hours of the week.
EXPLANATION_SHAPE: Final = (7, 24)

#: The Open Inference Protocol's tensor data types (v2 spec, "Tensor Data Types").
DATATYPES: Final = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    }
)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output tensor: name, v2 data type (``"FP32"``), shape (-1 = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.datatype not in DATATYPES:
            raise ValueError(f"unknown tensor data type {self.datatype!r}")
        if any(d < -1 for d in self.shape):
            raise ValueError("tensor dimensions must be -1 (variable) or non-negative")

    def accepts(self, shape: Sequence[int]) -> bool:
        """Whether a concrete ``shape`` matches: same rank, equal wherever the spec is not -1."""
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )


class InferenceModel(Protocol):
    """A model the protocol front ends can serve.

    ``inputs`` and ``outputs`` declare the tensors by name; ``infer`` receives one array per
    declared input, already checked against its spec (data type converted, shape accepted), and
    returns one array per declared output. It raises a
    :class:`~novamind.core.errors.NovamindError` for failures a caller should see (anything else
    is reported as a model inference error).
    """

    @property
    def name(self) -> str:
        """The model's name as clients address it (``/v2/models/{name}``)."""
        ...

    @property
    def version(self) -> str:
        """The loaded version; results are cached under it, so it must change with the weights."""
        ...

    @property
    def platform(self) -> str:
        """The runtime serving it, in KServe/Triton terms (``"pytorch_torchscript"``)."""
        ...

    @property
    def inputs(self) -> Sequence[TensorSpec]: ...

    @property
    def outputs(self) -> Sequence[TensorSpec]: ...

    def ready(self) -> bool:
        """Whether weights are loaded and verified, i.e. ``infer`` may be called."""
        ...

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run the model on a batch; see the class docstring."""
        ...


class EmbeddedWeek(Protocol):
    """What embedding one week yields: the embedding and, when computed, its explanation."""

    @property
    def embedding(self) -> npt.NDArray[Any]:
        """(96,) the week's embedding."""
        ...

    @property
    def explanation(self) -> npt.NDArray[Any] | None:
        """(7, 24) attention per day and hour of the week, or None when not computed."""
        ...


EmbedWeek = Callable[[npt.NDArray[np.float64]], Awaitable[EmbeddedWeek]]
"""Embeds one week: (10080,) float64 counts per minute, NaN = missing, starting at local midnight."""


class EmbeddingInferenceModel:
    """The PAT week-embedding model as an :class:`InferenceModel`.

    Tensors (batch first):

    * input ``week`` FP32 (-1, 10080): activity counts per minute, NaN = missing minute;
    * output ``embedding`` FP32 (-1, 96);
    * output ``explanation`` FP32 (-1, 7, 24), declared only when ``with_explanation``.

    ``embed`` embeds one week (the engine batches concurrent calls); rows of a request are
    embedded concurrently. ``ready`` reports whether the engine's weights are loaded.
    """

    def __init__(
        self,
        embed: EmbedWeek,
        *,
        name: str,
        version: str,
        platform: str = "pytorch",
        ready: Callable[[], bool] = lambda: True,
        embedding_dim: int = EMBEDDING_DIM,
        with_explanation: bool = True,
    ) -> None:
        self._embed = embed
        self._ready = ready
        self._name = name
        self._version = version
        self._platform = platform
        self._embedding_dim = embedding_dim
        self._with_explanation = with_explanation
        self._inputs = (TensorSpec("week", "FP32", (-1, MINUTES_PER_WEEK)),)
        outputs = [TensorSpec("embedding", "FP32", (-1, embedding_dim))]
        if with_explanation:
            outputs.append(TensorSpec("explanation", "FP32", (-1, *EXPLANATION_SHAPE)))
        self._outputs = tuple(outputs)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def platform(self) -> str:
        return self._platform

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._outputs

    def ready(self) -> bool:
        return self._ready()

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Embed each row of ``inputs["week"]``. Raises :class:`ModelInferenceError` on a bad result."""
        weeks = np.asarray(inputs["week"], dtype=np.float64)
        results = await asyncio.gather(*(self._embed(row) for row in weeks))
        outputs: dict[str, npt.NDArray[Any]] = {
            "embedding": _stacked(
                [r.embedding for r in results], (self._embedding_dim,), "embedding", len(weeks)
            )
        }
        if self._with_explanation:
            explanations = [r.explanation for r in results]
            if any(e is None for e in explanations):
                raise ModelInferenceError("the model returned no explanation", field="explanation")
            outputs["explanation"] = _stacked(
                [e for e in explanations if e is not None], EXPLANATION_SHAPE, "explanation", len(weeks)
            )
        return outputs


def _stacked(rows: Sequence[npt.NDArray[Any]], shape: tuple[int, ...], name: str, n: int) -> npt.NDArray[Any]:
    arrays = [np.asarray(row, dtype=np.float32) for row in rows]
    if any(a.shape != shape for a in arrays):
        raise ModelInferenceError(f"the model returned a {name} of the wrong shape", field=name)
    return np.stack(arrays) if arrays else np.zeros((n, *shape), dtype=np.float32)


__all__ = [
    "EMBEDDING_DIM",
    "EXPLANATION_SHAPE",
    "MINUTES_PER_WEEK",
    "EmbedWeek",
    "EmbeddedWeek",
    "EmbeddingInferenceModel",
    "InferenceModel",
    "TensorSpec",
]
