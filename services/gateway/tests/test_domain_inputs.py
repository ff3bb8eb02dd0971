"""Mutation inputs are checked at the edge: each failure names the field and the rule, not the value."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from novamind.core.errors import ValidationError
from novamind.core.privacy import is_pseudonym, pseudonymise
from novamind.gateway.domain import inputs
from novamind.gateway.domain.identifiers import edge_pseudonym
from novamind.gateway.domain.insights import InsightNeeds, Section, plan_calls

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def report(**changes: object) -> inputs.SymptomReportDraft:
    values: dict[str, object] = {
        "instrument": inputs.Instrument.PHQ9,
        "item_responses": [0, 1, 2, 3, 0, 1, 2, 3, 0],
        "mood_rating": None,
        "reported_at": NOW - timedelta(hours=1),
        "idempotency_key": None,
        "expected_version": None,
        "now": NOW,
    }
    values.update(changes)
    return inputs.validate_symptom_report(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"item_responses": [1] * 8}, "input.itemResponses", "PHQ9 needs exactly 9 item responses"),
        (
            {"item_responses": [0, 1, 2, 4, 0, 1, 2, 3, 0]},
            "input.itemResponses[3]",
            "each item response must be 0-3",
        ),
        ({"mood_rating": 5.0}, "input.moodRating", "a PHQ9 report has no mood rating"),
        (
            {"instrument": inputs.Instrument.MOOD, "item_responses": None},
            "input.moodRating",
            "needs a mood rating",
        ),
        (
            {"instrument": inputs.Instrument.MOOD, "item_responses": None, "mood_rating": 11.0},
            "input.moodRating",
            "must be between 0 and 10",
        ),
        ({"reported_at": NOW + timedelta(days=1)}, "input.reportedAt", "must not be in the future"),
        ({"reported_at": datetime(2026, 3, 1, 9, 0)}, "input.reportedAt", "must include a time zone offset"),
        ({"idempotency_key": "not-a-uuid"}, "input.idempotencyKey", "must be a UUID"),
        ({"expected_version": -1}, "input.expectedVersion", "must be 0 or greater"),
    ],
)
def test_bad_symptom_reports_name_the_field(changes: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        report(**changes)
    assert caught.value.field == field
    assert rule in caught.value.message


def test_a_good_report_gets_an_idempotency_key() -> None:
    draft = report()
    assert draft.item_responses == (0, 1, 2, 3, 0, 1, 2, 3, 0)
    assert len(draft.idempotency_key) == 36


def test_genotype_needs_exactly_one_input_and_well_formed_calls() -> None:
    common = {
        "reference_genome": "GRCh38",
        "sample_column": None,
        "expected_version": None,
        "max_vcf_bytes": 1024,
    }
    with pytest.raises(ValidationError, match="exactly one"):
        inputs.validate_genotype(vcf_base64=None, calls=[], hla=[], **common)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as caught:
        inputs.validate_genotype(vcf_base64="%%%", calls=[], hla=[], **common)  # type: ignore[arg-type]
    assert caught.value.field == "input.vcfBase64"
    with pytest.raises(ValidationError) as caught:
        inputs.validate_genotype(
            vcf_base64=base64.b64encode(b"x" * 2048).decode(),
            calls=[],
            hla=[],
            **common,  # type: ignore[arg-type]
        )
    assert "larger than 1024 bytes" in caught.value.message
    bad_call = inputs.OutsideCallDraft("CYP2D6", "1/4", "", "")
    with pytest.raises(ValidationError) as caught:
        inputs.validate_genotype(vcf_base64=None, calls=[bad_call], hla=[], **common)  # type: ignore[arg-type]
    assert caught.value.field == "input.outsideCalls[0].diplotype"
    ok = inputs.validate_genotype(
        vcf_base64=None,
        calls=[inputs.OutsideCallDraft("CYP2D6", "*1/*2x2", "", "lab")],
        hla=[inputs.HlaDraft("HLA-B*15:02", inputs.CarrierStatus.NEGATIVE)],
        **common,  # type: ignore[arg-type]
    )
    assert ok.vcf is None and ok.calls[0].diplotype == "*1/*2x2"


def test_medications_are_normalised_and_checked() -> None:
    def med(**changes: object) -> inputs.MedicationDraft:
        values: dict[str, object] = {
            "name": " Sertraline ",
            "rxnorm_code": "36437",
            "daily_dose": 50.0,
            "dose_unit": "mg",
            "started_at": NOW - timedelta(days=30),
            "stopped_at": None,
            "indication": "major depressive disorder",
        }
        values.update(changes)
        return inputs.MedicationDraft(**values)  # type: ignore[arg-type]

    checked, version = inputs.validate_medications([med()], expected_version=3, now=NOW)
    assert checked[0].name == "sertraline" and version == 3
    cases = [
        ([med(daily_dose=-5.0)], "input.medications[0].dailyDose.value"),
        ([med(rxnorm_code="abc")], "input.medications[0].rxnormCode"),
        ([med(stopped_at=NOW - timedelta(days=40))], "input.medications[0].stoppedAt"),
        ([med(), med()], "input.medications[1].name"),
        ([med(name="<script>")], "input.medications[0].name"),
    ]
    for medications, field in cases:
        with pytest.raises(ValidationError) as caught:
            inputs.validate_medications(medications, expected_version=None, now=NOW)
        assert caught.value.field == field


def test_an_analysis_week_is_seven_days_or_left_to_the_twin() -> None:
    start = NOW - timedelta(days=8)
    assert (
        inputs.validate_analysis_request(
            week_start=None, week_end=None, idempotency_key=None, now=NOW
        ).week_start
        is None
    )
    with pytest.raises(ValidationError, match="exactly 7 days"):
        inputs.validate_analysis_request(
            week_start=start, week_end=start + timedelta(days=6), idempotency_key=None, now=NOW
        )
    with pytest.raises(ValidationError, match="both"):
        inputs.validate_analysis_request(week_start=start, week_end=None, idempotency_key=None, now=NOW)


def test_patient_ids_are_pseudonymised_at_the_edge_and_pseudonyms_pass() -> None:
    raw = "MRN-0042"
    mapped = edge_pseudonym(raw, "key")
    assert is_pseudonym(mapped) and mapped == pseudonymise(raw, "key")
    assert edge_pseudonym(mapped, "another key") == mapped
    with pytest.raises(ValidationError) as caught:
        edge_pseudonym("  ", "key", field="input.patientId")
    assert caught.value.field == "input.patientId"


def test_insight_needs_merge_when_their_parameters_agree() -> None:
    actigraphy = InsightNeeds(sections=frozenset({Section.ACTIGRAPHY}), actigraphy_fhir=True)
    week = InsightNeeds(sections=frozenset({Section.FORECAST}), forecast_days=7)
    fortnight = InsightNeeds(sections=frozenset({Section.FORECAST}), forecast_days=14)
    calls = plan_calls([actigraphy, week, fortnight])
    assert len(calls) == 2
    assert calls[0].sections == {Section.ACTIGRAPHY, Section.FORECAST} and calls[0].forecast_days == 7
    assert calls[0].covers(actigraphy) and calls[0].covers(week) and not calls[0].covers(fortnight)
