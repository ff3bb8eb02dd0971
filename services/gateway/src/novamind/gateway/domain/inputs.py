"""Validation of the gateway's mutation inputs, before anything reaches the twin.

Each ``validate_*`` function takes the raw input values and returns a checked, normalised draft,
or raises :class:`~novamind.core.errors.ValidationError` whose ``field`` is the GraphQL input path
(``input.itemResponses[3]``) and whose message names the rule, never the value.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from novamind.core.errors import ValidationError

#: Clock skew tolerated for "not in the future" checks (seconds).
CLOCK_SKEW = timedelta(minutes=5)
#: A week of actigraphy, as the PAT model reads it.
WEEK = timedelta(days=7)


class Instrument(enum.StrEnum):
    PHQ9 = "PHQ9"
    GAD7 = "GAD7"
    MOOD = "MOOD"


#: Items per questionnaire (PHQ-9: Kroenke et al., 2001; GAD-7: Spitzer et al., 2006), each 0-3.
ITEM_COUNTS = {Instrument.PHQ9: 9, Instrument.GAD7: 7}
#: Daily mood rating bounds (0 = worst, 10 = best).
MOOD_RANGE = (0.0, 10.0)


def _check_aware(value: datetime, field: str, now: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError("must include a time zone offset", field=field)
    if value > now + CLOCK_SKEW:
        raise ValidationError("must not be in the future", field=field)


def _check_idempotency_key(key: str | None, field: str) -> str:
    if key is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(key))
    except ValueError:
        raise ValidationError("must be a UUID", field=field) from None


def _check_expected_version(version: int | None, field: str) -> int | None:
    if version is not None and version < 0:
        raise ValidationError("must be 0 or greater", field=field)
    return version


@dataclass(frozen=True, slots=True)
class SymptomReportDraft:
    instrument: Instrument
    item_responses: tuple[int, ...]
    mood_rating: float | None
    reported_at: datetime
    idempotency_key: str
    expected_version: int | None


def validate_symptom_report(
    *,
    instrument: Instrument,
    item_responses: Sequence[int] | None,
    mood_rating: float | None,
    reported_at: datetime | None,
    idempotency_key: str | None,
    expected_version: int | None,
    now: datetime,
) -> SymptomReportDraft:
    """A checked symptom report: PHQ-9 needs 9 and GAD-7 7 item responses (each 0-3) and no mood
    rating; MOOD needs a rating 0-10 and no items. ``reported_at`` defaults to ``now`` (UTC)."""
    items = tuple(item_responses or ())
    if instrument is Instrument.MOOD:
        if items:
            raise ValidationError("a MOOD report has no item responses", field="input.itemResponses")
        if mood_rating is None:
            raise ValidationError("a MOOD report needs a mood rating", field="input.moodRating")
        if not math.isfinite(mood_rating) or not MOOD_RANGE[0] <= mood_rating <= MOOD_RANGE[1]:
            raise ValidationError("must be between 0 and 10", field="input.moodRating")
    else:
        expected = ITEM_COUNTS[instrument]
        if mood_rating is not None:
            raise ValidationError(f"a {instrument.value} report has no mood rating", field="input.moodRating")
        if len(items) != expected:
            raise ValidationError(
                f"{instrument.value} needs exactly {expected} item responses", field="input.itemResponses"
            )
        for index, item in enumerate(items):
            if not 0 <= item <= 3:
                raise ValidationError("each item response must be 0-3", field=f"input.itemResponses[{index}]")
    when = reported_at or now
    _check_aware(when, "input.reportedAt", now)
    return SymptomReportDraft(
        instrument=instrument,
        item_responses=items,
        mood_rating=mood_rating,
        reported_at=when,
        idempotency_key=_check_idempotency_key(idempotency_key, "input.idempotencyKey"),
        expected_version=_check_expected_version(expected_version, "input.expectedVersion"),
    )


class CarrierStatus(enum.StrEnum):
    POSITIVE = "POSITIVE"
    NEGATIVE = "NEGATIVE"
    UNKNOWN = "UNKNOWN"


_GENE = re.compile(r"^[A-Z][A-Z0-9-]{1,14}$")
_STAR_ALLELE = r"\*[0-9A-Za-z.]+(?:x(?:[0-9]+|N))?"
_DIPLOTYPE = re.compile(rf"^{_STAR_ALLELE}/{_STAR_ALLELE}$")
_HLA_ALLELE = re.compile(r"^HLA-[A-Z0-9]+\*[0-9]{2}:[0-9]{2}(?::[0-9]{2})?$")
SUPPORTED_REFERENCE_GENOMES = ("GRCh38",)


@dataclass(frozen=True, slots=True)
class OutsideCallDraft:
    gene: str
    diplotype: str
    reported_phenotype: str
    source: str


@dataclass(frozen=True, slots=True)
class HlaDraft:
    allele: str
    status: CarrierStatus


@dataclass(frozen=True, slots=True)
class GenotypeDraft:
    """Either ``vcf`` (raw VCF bytes) or outside calls and HLA results."""

    vcf: bytes | None
    reference_genome: str
    sample_column: str
    calls: tuple[OutsideCallDraft, ...]
    hla: tuple[HlaDraft, ...]
    expected_version: int | None


def validate_genotype(
    *,
    vcf_base64: str | None,
    reference_genome: str,
    sample_column: str | None,
    calls: Sequence[OutsideCallDraft],
    hla: Sequence[HlaDraft],
    expected_version: int | None,
    max_vcf_bytes: int,
) -> GenotypeDraft:
    """A checked genotype: exactly one of a base64 VCF (at most ``max_vcf_bytes`` decoded) or
    outside calls (``CYP2D6`` + ``*1/*4``-style diplotypes, HLA ``HLA-B*15:02`` alleles)."""
    has_vcf = vcf_base64 is not None
    has_calls = bool(calls) or bool(hla)
    if has_vcf == has_calls:
        raise ValidationError("give exactly one of vcfBase64 or outsideCalls/hla", field="input")
    vcf: bytes | None = None
    if vcf_base64 is not None:
        if len(vcf_base64) > (max_vcf_bytes * 4) // 3 + 4:
            raise ValidationError(f"VCF larger than {max_vcf_bytes} bytes", field="input.vcfBase64")
        try:
            vcf = base64.b64decode(vcf_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("not valid base64", field="input.vcfBase64") from None
        if not vcf:
            raise ValidationError("the VCF is empty", field="input.vcfBase64")
        if reference_genome not in SUPPORTED_REFERENCE_GENOMES:
            raise ValidationError("only GRCh38 is supported", field="input.referenceGenome")
    if sample_column is not None and len(sample_column) > 128:
        raise ValidationError("at most 128 characters", field="input.sampleColumn")
    genes: set[str] = set()
    for index, call in enumerate(calls):
        where = f"input.outsideCalls[{index}]"
        if not _GENE.match(call.gene):
            raise ValidationError("not an HGNC gene symbol (e.g. CYP2D6)", field=f"{where}.gene")
        if call.gene in genes:
            raise ValidationError("gene listed twice", field=f"{where}.gene")
        genes.add(call.gene)
        if not _DIPLOTYPE.match(call.diplotype):
            raise ValidationError("not a star-allele diplotype (e.g. *1/*4)", field=f"{where}.diplotype")
        if len(call.reported_phenotype) > 64 or len(call.source) > 128:
            raise ValidationError("text too long", field=where)
    alleles: set[str] = set()
    for index, result in enumerate(hla):
        where = f"input.hla[{index}].allele"
        if not _HLA_ALLELE.match(result.allele):
            raise ValidationError("not an HLA allele (e.g. HLA-B*15:02)", field=where)
        if result.allele in alleles:
            raise ValidationError("allele listed twice", field=where)
        alleles.add(result.allele)
    return GenotypeDraft(
        vcf=vcf,
        reference_genome=reference_genome,
        sample_column=sample_column or "",
        calls=tuple(calls),
        hla=tuple(hla),
        expected_version=_check_expected_version(expected_version, "input.expectedVersion"),
    )


_DRUG_NAME = re.compile(r"^[a-z][a-z0-9 /-]{1,63}$")
_RXCUI = re.compile(r"^[0-9]{1,10}$")
_UNIT = re.compile(r"^[A-Za-z{}/%0-9.]{1,16}$")
#: Most medications one list may hold.
MAX_MEDICATIONS = 50


@dataclass(frozen=True, slots=True)
class MedicationDraft:
    """One medication; ``daily_dose`` in ``dose_unit`` (UCUM, e.g. ``mg``)."""

    name: str
    rxnorm_code: str
    daily_dose: float | None
    dose_unit: str
    started_at: datetime | None
    stopped_at: datetime | None
    indication: str


def validate_medications(
    medications: Sequence[MedicationDraft], *, expected_version: int | None, now: datetime
) -> tuple[tuple[MedicationDraft, ...], int | None]:
    """A checked medication list: generic names (lower-cased), positive doses with a unit,
    ``stoppedAt`` not before ``startedAt``, no drug listed twice as current."""
    if len(medications) > MAX_MEDICATIONS:
        raise ValidationError(f"at most {MAX_MEDICATIONS} medications", field="input.medications")
    checked: list[MedicationDraft] = []
    current: set[str] = set()
    for index, medication in enumerate(medications):
        where = f"input.medications[{index}]"
        name = medication.name.strip().lower()
        if not _DRUG_NAME.match(name):
            raise ValidationError("not a generic drug name (e.g. sertraline)", field=f"{where}.name")
        if medication.rxnorm_code and not _RXCUI.match(medication.rxnorm_code):
            raise ValidationError("an RxNorm code is 1-10 digits", field=f"{where}.rxnormCode")
        if medication.daily_dose is not None:
            if not math.isfinite(medication.daily_dose) or medication.daily_dose <= 0:
                raise ValidationError("must be a positive number", field=f"{where}.dailyDose.value")
            if not _UNIT.match(medication.dose_unit):
                raise ValidationError("needs a UCUM unit (e.g. mg)", field=f"{where}.dailyDose.unit")
        for label, value in (("startedAt", medication.started_at), ("stoppedAt", medication.stopped_at)):
            if value is not None:
                _check_aware(value, f"{where}.{label}", now)
        if (
            medication.started_at is not None
            and medication.stopped_at is not None
            and medication.stopped_at < medication.started_at
        ):
            raise ValidationError("must not be before startedAt", field=f"{where}.stoppedAt")
        if len(medication.indication) > 200:
            raise ValidationError("at most 200 characters", field=f"{where}.indication")
        if medication.stopped_at is None:
            if name in current:
                raise ValidationError("drug listed twice as current", field=f"{where}.name")
            current.add(name)
        checked.append(
            MedicationDraft(
                name=name,
                rxnorm_code=medication.rxnorm_code,
                daily_dose=medication.daily_dose,
                dose_unit=medication.dose_unit,
                started_at=medication.started_at,
                stopped_at=medication.stopped_at,
                indication=medication.indication.strip(),
            )
        )
    return tuple(checked), _check_expected_version(expected_version, "input.expectedVersion")


@dataclass(frozen=True, slots=True)
class AnalysisRequestDraft:
    """``week_start``/``week_end`` both None means the latest 7 complete local days."""

    week_start: datetime | None
    week_end: datetime | None
    idempotency_key: str


def validate_analysis_request(
    *,
    week_start: datetime | None,
    week_end: datetime | None,
    idempotency_key: str | None,
    now: datetime,
) -> AnalysisRequestDraft:
    """A checked analysis request: either no week, or a week of exactly 7 days ending by now."""
    if (week_start is None) != (week_end is None):
        raise ValidationError("give both weekStart and weekEnd, or neither", field="input.weekEnd")
    if week_start is not None and week_end is not None:
        _check_aware(week_start, "input.weekStart", now)
        _check_aware(week_end, "input.weekEnd", now)
        if week_end - week_start != WEEK:
            raise ValidationError("the week must span exactly 7 days", field="input.weekEnd")
    return AnalysisRequestDraft(
        week_start=week_start,
        week_end=week_end,
        idempotency_key=_check_idempotency_key(idempotency_key, "input.idempotencyKey"),
    )
