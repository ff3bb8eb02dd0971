"""Decoding symptom reports and completed analyses: malformed events name the field, not the value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.core.errors import ValidationError
from novamind.twin.adapters.ingestion import decode_analysis_completed, decode_symptom_report

from .conftest import consumer_record, new_patient

PATIENT = new_patient()


def report(**changes: Any) -> dict[str, Any]:
    message = events_pb2.SymptomReported(
        event_id=str(uuid.uuid4()),
        patient=common_pb2.PatientRef(pseudonym=PATIENT),
        instrument=common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
        item_responses=[1, 1, 1, 1, 1, 1, 1, 1, 2],
        source="app",
    )
    message.reported_at.FromDatetime(datetime(2026, 5, 4, 19, 30, tzinfo=UTC))
    document = json_format.MessageToDict(message)
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def symptom_record(document: dict[str, Any], key: str = PATIENT) -> Any:
    return consumer_record(json.dumps(document).encode(), key.encode(), topic="symptom.reports.v1")


def test_a_symptom_report_decodes_to_the_report_to_store() -> None:
    document = report(total=10)
    event = decode_symptom_report(symptom_record(document))
    assert (event.event_id, event.key) == (document["eventId"], PATIENT)
    assert (event.payload.report_id, event.payload.total, list(event.payload.item_responses)) == (
        document["eventId"],
        10.0,
        [1, 1, 1, 1, 1, 1, 1, 1, 2],
    )


@pytest.mark.parametrize(
    ("document", "key", "field"),
    [
        (report(instrument="SECRET_INSTRUMENT"), PATIENT, "instrument"),
        (report(favouriteColour="blue"), PATIENT, "favouriteColour"),
        (report(reportedAt=None), PATIENT, "reported_at"),
        (report(eventId=None), PATIENT, "event_id"),
        (report(itemResponses=[1, 1, 1]), PATIENT, "item_responses"),
        (report(itemResponses=[1, 1, 1, 1, 1, 1, 1, 1, 5]), PATIENT, "item_responses[8]"),
        (report(total=11), PATIENT, "total"),
        (report(instrument="SYMPTOM_INSTRUMENT_MOOD", itemResponses=None), PATIENT, "total"),
        (report(patient={"pseudonym": "MRN-778812"}), PATIENT, "patient.pseudonym"),
        (report(), new_patient(), "key"),
    ],
)
def test_malformed_symptom_reports_name_the_field(document: dict[str, Any], key: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_symptom_report(symptom_record(document, key))
    assert caught.value.field == field
    for secret in ("SECRET_INSTRUMENT", "blue", "MRN-778812"):
        assert secret not in str(caught.value)


def completed(**changes: Any) -> dict[str, Any]:
    message = events_pb2.ActigraphyAnalysisCompleted(
        event_id=str(uuid.uuid4()),
        patient=common_pb2.PatientRef(pseudonym=PATIENT),
        request_event_id=str(uuid.uuid4()),
        analysis_id="a-1",
    )
    message.week.start.FromDatetime(datetime(2026, 3, 2, tzinfo=UTC))
    message.week.end.FromDatetime(datetime(2026, 3, 9, tzinfo=UTC))
    document = json_format.MessageToDict(message)
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (completed(analysisId=None), "analysis_id"),
        (completed(week=None), "week"),
        (completed(week={"start": "2026-03-09T00:00:00Z", "end": "2026-03-02T00:00:00Z"}), "week"),
        (completed(requestEventId=None), "request_event_id"),
    ],
)
def test_malformed_completions_name_the_field(document: dict[str, Any], field: str) -> None:
    record = consumer_record(
        json.dumps(document).encode(), PATIENT.encode(), topic="actigraphy.analysis.completed.v1"
    )
    with pytest.raises(ValidationError) as caught:
        decode_analysis_completed(record)
    assert caught.value.field == field


def test_a_failed_analysis_needs_no_result() -> None:
    document = completed(analysisId=None, week=None, error={"code": "MODEL_NOT_READY", "service": "pat"})
    record = consumer_record(
        json.dumps(document).encode(), PATIENT.encode(), topic="actigraphy.analysis.completed.v1"
    )
    assert decode_analysis_completed(record).payload.error.code == "MODEL_NOT_READY"
