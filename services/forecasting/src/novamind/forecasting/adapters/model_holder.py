"""The forecasting artifact as the service holds it: loaded once, verified, or NOT READY with why.

A missing or tampered artifact leaves the service not ready with the reason (the readiness check
raises it, Forecast answers MODEL_NOT_READY); it never falls back to untrained models.
"""

from __future__ import annotations

import asyncio
import logging

import torch

from novamind.core.errors import ModelNotReadyError, NovamindError
from novamind.core.logging import safe
from novamind.forecasting import artifact as artifacts
from novamind.forecasting.config import ForecastingSettings

log = logging.getLogger(__name__)


def resolve_device(choice: str) -> str:
    """``auto`` -> "cuda" when a GPU is usable, else "cpu"."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


class ModelHolder:
    """Owns the loaded artifact; see the module docstring."""

    def __init__(self, settings: ForecastingSettings) -> None:
        self._settings = settings
        self.device = resolve_device(settings.forecast_device)
        self.artifact: artifacts.ForecastArtifact | None = None
        self.problem = "the forecasting models have not been loaded yet"

    async def start(self) -> None:
        """Load the configured artifact off the event loop; keep the reason on failure."""
        try:
            self.artifact = await asyncio.to_thread(artifacts.load, self._settings.artifact_dir, self.device)
        except NovamindError as exc:
            self.problem = str(exc)
            log.error("forecasting models not loaded: %s", exc)
            return
        log.info(
            "forecasting artifact %s %s loaded on %s (targets %s)",
            safe(self.artifact.manifest["name"]),
            safe(self.artifact.sha256[:12]),
            self.device,
            safe(",".join(self.artifact.ensembles)),
        )

    def require(self) -> artifacts.ForecastArtifact:
        """The loaded artifact, or ModelNotReadyError with the reason."""
        if self.artifact is None:
            raise ModelNotReadyError(self.problem)
        return self.artifact

    async def check_ready(self) -> None:
        """Readiness check: raises while no artifact is loaded."""
        self.require()
