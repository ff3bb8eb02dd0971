"""Builders of FHIR R4 JSON (plain dictionaries) for Novamind's clinical outputs.

The resources follow FHIR R4 (4.0.1); Observation and Bundle are unchanged in R4B (4.3.0), whose
``fhir.resources.R4B`` models the tests validate against. Quantities use UCUM
(https://ucum.org) with ``system = http://unitsofmeasure.org``; codes use LOINC where a code
exists and Novamind's own code system otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NOVAMIND_CODES = "https://novamind.dev/fhir/CodeSystem/actigraphy-metrics"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept: ``system`` + ``code`` + human-readable ``display``."""

    system: str
    code: str
    display: str

    def concept(self) -> dict[str, Any]:
        return {
            "coding": [{"system": self.system, "code": self.code, "display": self.display}],
            "text": self.display,
        }


def _instant(value: datetime) -> str:
    return value.isoformat()


def quantity(value: float, unit: str, ucum_code: str | None = None) -> dict[str, Any]:
    """A FHIR Quantity in UCUM (``unit`` is shown, ``ucum_code`` is the UCUM expression)."""
    return {"value": float(value), "unit": unit, "system": UCUM, "code": ucum_code or unit}


def observation(
    *,
    code: Code,
    subject: str,
    effective_start: datetime,
    effective_end: datetime,
    value: Mapping[str, Any] | None = None,
    device: str | None = None,
    category: str = "activity",
    components: Iterable[tuple[Code, Mapping[str, Any]]] = (),
    note: str | None = None,
    status: str = "final",
) -> dict[str, Any]:
    """An Observation resource.

    ``subject`` is a reference string (``Patient/<pseudonym>``); ``value`` a valueQuantity (see
    :func:`quantity`) or None when the observation is carried by its components; ``device`` a
    reference or display text for the device that recorded the data.
    """
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid4()),
        "status": status,
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]},
        ],
        "code": code.concept(),
        "subject": {"reference": subject},
        "effectivePeriod": {"start": _instant(effective_start), "end": _instant(effective_end)},
    }
    if value is not None:
        resource["valueQuantity"] = dict(value)
    if device:
        resource["device"] = {"display": device}
    parts = [{"code": c.concept(), "valueQuantity": dict(v)} for c, v in components]
    if parts:
        resource["component"] = parts
    if note:
        resource["note"] = [{"text": note}]
    return resource


def collection_bundle(resources: Iterable[Mapping[str, Any]], *, timestamp: datetime) -> dict[str, Any]:
    """A ``collection`` Bundle of ``resources``, each with a ``urn:uuid`` fullUrl."""
    entries = [
        {"fullUrl": f"urn:uuid:{resource['id']}", "resource": dict(resource)} for resource in resources
    ]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": _instant(timestamp),
        "entry": entries,
    }
