"""The cost model of a GraphQL operation, checked before it runs.

Every selected field costs 1. Fields that make the twin call a model service cost more (they
occupy GPUs and their deadlines), the integrated insights most. A field that returns a page of
results multiplies the cost of its selection by its page size (``first``), so a list of patients
each with a forecast costs per patient. The default limit (2,000) admits a page of 50 patients
with their twins and one model-backed section each, and refuses 100 patients with every section.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Cost of any field not listed in :data:`FIELD_COSTS`.
DEFAULT_FIELD_COST = 1

#: Cost of a field by (parent type, field name), excluding its selection.
FIELD_COSTS: Mapping[tuple[str, str], int] = {
    ("Query", "patients"): 2,
    ("Query", "serviceHealth"): 5,
    ("Patient", "twin"): 2,
    ("Patient", "history"): 2,
    ("Patient", "actigraphy"): 10,
    ("Patient", "forecast"): 15,
    ("Patient", "correlations"): 15,
    ("Patient", "medicationGuidance"): 15,
    ("Patient", "insights"): 40,
    ("Mutation", "submitSymptomReport"): 5,
    ("Mutation", "recordGenotype"): 10,
    ("Mutation", "setMedications"): 5,
    ("Mutation", "requestActigraphyAnalysis"): 10,
    ("Subscription", "twinUpdated"): 5,
}

#: Fields whose selection is repeated once per page entry, and the argument giving the page size.
PAGINATED_FIELDS: Mapping[tuple[str, str], str] = {
    ("Query", "patients"): "first",
    ("Patient", "history"): "first",
}


def field_cost(parent_type: str, field: str) -> int:
    """The cost of one selected field, excluding its sub-selection."""
    return FIELD_COSTS.get((parent_type, field), DEFAULT_FIELD_COST)


def page_multiplier(parent_type: str, field: str, first: int | None, default_page_size: int) -> int:
    """How many times a field's sub-selection counts: its page size for paginated fields, else 1."""
    if (parent_type, field) not in PAGINATED_FIELDS:
        return 1
    return max(1, first if first is not None else default_page_size)
