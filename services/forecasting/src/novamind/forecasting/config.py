"""Settings of the forecasting service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class ForecastingSettings(ServiceSettings):
    service_name: ClassVar[str] = "forecasting"

    grpc_port: int = LOCAL_PORTS["forecasting"][0]
    http_port: int = LOCAL_PORTS["forecasting"][1]
    #: Artifact directory (``novamind-forecasting train`` output) under ``NOVAMIND_MODEL_DIR``.
    forecast_artifact: str = "forecast-dev"
    #: ``auto`` runs the Transformer on the GPU when one is present.
    forecast_device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Longest horizon a request may ask for (``NOVAMIND_MAX_FORECAST_HORIZON``); never more than
    #: the artifact was trained for.
    max_forecast_horizon: int = Field(default=30, ge=1, le=366)
    #: Horizon of a request that gives none.
    default_forecast_horizon: int = Field(default=14, ge=1)
    #: Days of history used (the latest ones); older entries are ignored.
    forecast_max_history_days: int = Field(default=365, ge=28)
    #: Origins a Backtest call may evaluate at most.
    backtest_max_origins: int = Field(default=200, ge=1)
    #: Seconds a history lookup in the twin may take (requests without a history).
    twin_timeout_seconds: float = Field(default=2.0, gt=0)

    @property
    def artifact_dir(self) -> Path:
        return self.model_dir / self.forecast_artifact
