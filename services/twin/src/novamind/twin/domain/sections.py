"""The parts of a twin a version can change (``TwinVersion.changed_sections``)."""

from __future__ import annotations

#: A symptom report was added.
SYMPTOMS = "symptoms"
#: The medication list was replaced.
MEDICATIONS = "medications"
#: The genotype was recorded or replaced.
GENOTYPE = "genotype"
#: The latest or previous actigraphy analysis changed.
ACTIGRAPHY = "actigraphy"
#: Device readings: the twin was created by its first reading, or a local day of readings completed.
READINGS = "readings"
#: An actigraphy analysis was requested through the API.
ANALYSIS_REQUEST = "analysis_request"

ALL: tuple[str, ...] = (SYMPTOMS, MEDICATIONS, GENOTYPE, ACTIGRAPHY, READINGS, ANALYSIS_REQUEST)
