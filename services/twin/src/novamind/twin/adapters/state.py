"""The twin state (PHI) and its serialised form, which is only ever stored encrypted."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from novamind.api.common.v1 import common_pb2
from novamind.api.twin.v1 import twin_pb2
from novamind.core.errors import DataProcessingError

M = TypeVar("M", bound=Message)

#: Version of the serialised form.
STATE_FORMAT = 1


@dataclass
class TwinState:
    """What the twin knows about a patient beyond the readings (kept in their own table).

    ``symptom_reports`` are ascending by ``reported_at``; ``latest_actigraphy`` and
    ``previous_actigraphy`` are the analyses of the newest and the next newest analysed week.
    """

    symptom_reports: list[twin_pb2.SymptomReport] = field(default_factory=list)
    medications: list[common_pb2.Medication] = field(default_factory=list)
    genotype: twin_pb2.GenotypeSummary | None = None
    latest_actigraphy: twin_pb2.ActigraphySummary | None = None
    previous_actigraphy: twin_pb2.ActigraphySummary | None = None

    def report(self, report_id: str) -> twin_pb2.SymptomReport | None:
        """The stored report with ``report_id``, if any."""
        return next((r for r in self.symptom_reports if r.report_id == report_id), None)

    def add_report(self, report: twin_pb2.SymptomReport) -> None:
        """Insert ``report`` keeping the list ascending by ``reported_at`` (stable for equal times)."""
        key = _instant(report.reported_at)
        index = len(self.symptom_reports)
        while index > 0 and _instant(self.symptom_reports[index - 1].reported_at) > key:
            index -= 1
        self.symptom_reports.insert(index, report)

    def latest_total(self, instrument: common_pb2.SymptomInstrument.ValueType) -> float | None:
        """Total of the newest report of ``instrument``, if any."""
        for report in reversed(self.symptom_reports):
            if report.instrument == instrument:
                return report.total
        return None


def _instant(timestamp: Any) -> tuple[int, int]:
    return (timestamp.seconds, timestamp.nanos)


def encode_state(state: TwinState) -> bytes:
    """The state as JSON bytes (protobuf messages as base64 of their binary form)."""

    def one(message: Message | None) -> str | None:
        return None if message is None else base64.b64encode(message.SerializeToString()).decode()

    document = {
        "format": STATE_FORMAT,
        "symptom_reports": [one(r) for r in state.symptom_reports],
        "medications": [one(m) for m in state.medications],
        "genotype": one(state.genotype),
        "latest_actigraphy": one(state.latest_actigraphy),
        "previous_actigraphy": one(state.previous_actigraphy),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_state(data: bytes) -> TwinState:
    """The state from :func:`encode_state`'s bytes; raises :class:`DataProcessingError` if corrupt."""
    try:
        document = json.loads(data)
        if document.get("format") != STATE_FORMAT:
            raise DataProcessingError("stored twin state has an unknown format version")
        return TwinState(
            symptom_reports=[_parse(twin_pb2.SymptomReport, r) for r in document["symptom_reports"]],
            medications=[_parse(common_pb2.Medication, m) for m in document["medications"]],
            genotype=_optional(twin_pb2.GenotypeSummary, document["genotype"]),
            latest_actigraphy=_optional(twin_pb2.ActigraphySummary, document["latest_actigraphy"]),
            previous_actigraphy=_optional(twin_pb2.ActigraphySummary, document["previous_actigraphy"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, DecodeError) as exc:
        raise DataProcessingError(f"stored twin state is corrupt ({type(exc).__name__})") from None


def _parse(cls: type[M], text: str) -> M:
    message = cls()
    message.ParseFromString(base64.b64decode(text))
    return message


def _optional(cls: type[M], text: str | None) -> M | None:
    return None if text is None else _parse(cls, text)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive UTC datetimes)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
