"""The PAT encoder as the service runs it: loaded from a verified artifact, served by the engine.

A missing, tampered or unreadable artifact leaves the service NOT READY with the reason (the
readiness check raises it); it never falls back to random weights.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from novamind.core.errors import ModelNotReadyError, NovamindError
from novamind.core.logging import safe
from novamind.pat.config import ActigraphySettings
from novamind.pat.inference.engine import EmbeddingEngine, ModelIdentity, WeekEmbedding
from novamind.pat.inference.runtime import InferenceConfig
from novamind.pat.model.pat import PATEncoder
from novamind.pat.model.weights import ArtifactManifest, read_artifact
from novamind.pat.serving.drift_metrics import REFERENCE_FILENAME, DriftMonitor, load_reference
from novamind.pat.training.finetune import HeadArtifact, load_head
from novamind.pat.training.pretrain import load_standardisation

log = logging.getLogger(__name__)


class ModelHolder:
    """Owns the engine of the configured artifact; see the module docstring."""

    def __init__(self, settings: ActigraphySettings) -> None:
        self._settings = settings
        self.engine: EmbeddingEngine | None = None
        self.manifest: ArtifactManifest | None = None
        self.problem = "the model has not been loaded yet"
        #: Input drift against the artifact's training weeks; None when it ships no reference.
        self.drift: DriftMonitor | None = None
        #: The verified linear-probe risk head, or None with the reason in ``risk_status``.
        self.risk_head: HeadArtifact | None = None
        self.risk_status = "no risk model is loaded"

    async def start(self) -> None:
        """Load and start the model; on failure keep the reason and stay not ready."""
        directory = self._settings.artifact_dir
        try:
            model, manifest = read_artifact(directory)
            encoder: Any = model if isinstance(model, PATEncoder) else model.encoder
            scaler = load_standardisation(directory, manifest)
            config = InferenceConfig(
                device=self._settings.pat_device,
                max_batch=self._settings.pat_max_batch,
                max_wait_ms=self._settings.pat_max_wait_ms,
                max_queue=self._settings.pat_max_queue,
            )
            engine = EmbeddingEngine(
                encoder, ModelIdentity.from_manifest(manifest), config=config, scaler=scaler
            )
            choice = await engine.start()
        except NovamindError as exc:
            self.problem = str(exc)
            log.error("PAT model not loaded: %s", exc)
            return
        self.engine, self.manifest = engine, manifest
        log.info(
            "PAT model %s %s serving on %s",
            safe(manifest.name),
            safe(manifest.version),
            safe(choice.describe()),
        )
        reference = directory / REFERENCE_FILENAME
        if reference.is_file():
            self.drift = DriftMonitor(load_reference(reference))
        if self._settings.pat_risk_head:
            self._load_risk_head(manifest)

    def _load_risk_head(self, manifest: ArtifactManifest) -> None:
        """Load the configured head if it is a linear probe of exactly this encoder."""
        try:
            head = load_head(self._settings.model_dir / self._settings.pat_risk_head)
        except NovamindError as exc:
            self.risk_status = f"no risk model is loaded: {exc}"
            log.error("risk head not loaded: %s", exc)
            return
        if head.manifest["base"]["sha256"] != manifest.sha256:
            self.risk_status = "no risk model is loaded: the head was fitted on other encoder weights"
        elif head.encoder_state is not None:
            self.risk_status = "no risk model is loaded: a full fine-tune is served as its own artifact"
        else:
            self.risk_head = head
            self.risk_status = (
                f"risk model {head.manifest['name']} {head.manifest['version']} (research estimate)"
            )
        log.info("%s", safe(self.risk_status))

    def risk(self, embedding: npt.ArrayLike) -> float | None:
        """P(label = 1) of the loaded risk head for one week embedding; None without a head."""
        if self.risk_head is None:
            return None
        head = self.risk_head.head.eval()
        with torch.inference_mode():
            logit = head(torch.as_tensor(np.asarray(embedding), dtype=torch.float64).reshape(1, -1))
        return float(torch.sigmoid(logit).reshape(()))

    async def readiness(self) -> None:
        if self.engine is None or not self.engine.ready():
            raise ModelNotReadyError(self.problem, field="model")

    async def embed(self, week: npt.ArrayLike, *, explain: bool = False) -> WeekEmbedding:
        if self.engine is None:
            raise ModelNotReadyError(self.problem, field="model")
        embedded = await self.engine.embed(week, explain=explain)
        if self.drift is not None:
            self.drift.observe(np.asarray(week, dtype=np.float64))
        return embedded

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()
