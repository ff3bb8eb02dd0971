"""Settings of the pat service (``NOVAMIND_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from novamind.core.config import LOCAL_PORTS, ServiceSettings


class ActigraphySettings(ServiceSettings):
    service_name: ClassVar[str] = "pat"

    grpc_port: int = LOCAL_PORTS["pat"][0]
    http_port: int = LOCAL_PORTS["pat"][1]
    #: Artifact directory (``novamind-pat pretrain`` output) under ``NOVAMIND_MODEL_DIR``.
    pat_artifact: str = "pat-s-dev"
    #: ``auto`` uses the GPU when one is present.
    pat_device: Literal["auto", "cpu", "cuda"] = "auto"
    pat_max_batch: int = Field(default=32, ge=1)
    pat_max_wait_ms: float = Field(default=2.0, ge=0)
    pat_max_queue: int = Field(default=1024, ge=1)
    #: Fine-tuned risk head (``novamind-pat finetune`` output, linear probe) under
    #: ``NOVAMIND_MODEL_DIR``; empty means no risk model, and responses say so.
    pat_risk_head: str = ""
    #: Kafka consumer group of ``actigraphy.analysis.requested.v1``.
    pat_consumer_group: str = "pat"
    #: Attempts for an analysis request that fails transiently before it is dead-lettered.
    pat_event_max_attempts: int = Field(default=5, ge=1)

    @property
    def artifact_dir(self) -> Path:
        return self.model_dir / self.pat_artifact
