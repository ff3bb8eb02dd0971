"""PHI never reaches log output, whichever way a developer passes it to a logger."""

from __future__ import annotations

import io
import json
import logging

import pytest

from novamind.core.errors import ValidationError
from novamind.core.logging import PhiRedactionFilter, configure_logging, safe
from novamind.core.privacy import pseudonymise

KEY = "test-pseudonym-key"
PATIENT_ID = "MRN-0048213"
NAME = "Jane Marie Doe"
DOB_ISO = "1984-03-12"
DOB_US = "03/12/1984"
READINGS = [112, 487, 93, 0, 1550, 742]


@pytest.fixture
def captured() -> io.StringIO:
    configure_logging("test-service", level="DEBUG", pseudonym_key=KEY)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _assert_no_phi(output: str) -> None:
    for secret in (PATIENT_ID, NAME, "Jane", "Doe", DOB_ISO, DOB_US, "1984"):
        assert secret not in output, f"{secret!r} leaked into the log output"
    readings_text = ", ".join(str(r) for r in READINGS)
    assert readings_text not in output
    assert "487" not in output and "1550" not in output


def test_phi_passed_as_arguments_extra_and_text_never_reaches_the_output(captured: io.StringIO) -> None:
    log = logging.getLogger("novamind.test")
    log.info("ingesting readings for %s born %s: %s", NAME, DOB_ISO, READINGS)
    log.info("lookup %(who)s", {"who": PATIENT_ID})
    log.warning(
        "reading batch rejected",
        extra={
            "patient_id": PATIENT_ID,
            "patient_name": NAME,
            "date_of_birth": DOB_US,
            "readings": READINGS,
            "context": {"dob": DOB_ISO, "name": NAME},
        },
    )
    log.error(f"free text with dob {DOB_US} and readings {', '.join(map(str, READINGS))}")
    try:
        raise RuntimeError(f"parse failed at {DOB_ISO}; values {READINGS}")
    except RuntimeError:
        log.exception("unexpected failure")

    output = captured.getvalue()
    _assert_no_phi(output)
    records = _records(captured)
    assert len(records) == 5
    # The patient id is replaced by its pseudonym so records stay correlatable.
    assert records[2]["patient_id"] == pseudonymise(PATIENT_ID, KEY)
    assert records[2]["readings"] == "[REDACTED]"
    assert records[0]["message"].startswith("ingesting readings for [REDACTED] born [REDACTED]")
    assert "RuntimeError" in output


def test_safe_values_numbers_and_taxonomy_errors_are_kept(captured: io.StringIO) -> None:
    log = logging.getLogger("novamind.test")
    log.info("consumed %d events from %s", 940, safe("device.readings.v1"))
    log.warning("rejected: %s", ValidationError("timestamps are not monotonic", field="line 17"))
    records = _records(captured)
    assert records[0]["message"] == "consumed 940 events from device.readings.v1"
    assert "timestamps are not monotonic [line 17]" in str(records[1]["message"])
    assert records[0]["service"] == "test-service"
    assert records[0]["level"] == "INFO"


def test_filter_on_a_plain_record_redacts_unknown_strings() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "patient %s", (NAME,), None)
    assert PhiRedactionFilter(KEY).filter(record)
    assert record.getMessage() == "patient [REDACTED]"
