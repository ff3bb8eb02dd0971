"""Mutations: checked inputs, pseudonymised patients, optimistic concurrency, idempotency."""

from __future__ import annotations

import base64
import json
import uuid

import sqlalchemy as sa

from novamind.core.audit import audit_log

from .conftest import (
    PHQ9_REPORT,
    GatewayClient,
    GatewayFactory,
    RunningTwin,
    Tokens,
    create_twin,
    error_codes,
    in_session_loop,
    new_identifier,
    pseudonym,
    twin_calls,
)

SET_MEDICATIONS = """
mutation($id: ID!, $meds: [MedicationInput!]!, $expected: Int) {
  setMedications(input: {patientId: $id, medications: $meds, expectedVersion: $expected}) {
    version medications { name dailyDose { value unit } }
  }
}
"""
RECORD_GENOTYPE = """
mutation($input: GenotypeInput!) { recordGenotype(input: $input) { version genotype { genes { gene diplotype } } } }
"""


@in_session_loop
async def test_a_raw_identifier_is_pseudonymised_at_the_edge_and_never_echoed(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    raw = new_identifier("MRN")
    body = await gateway.query(
        PHQ9_REPORT, token=tokens.service(), variables={"patient": raw, "items": [2] * 9}
    )
    assert body["data"]["submitSymptomReport"]["report"]["total"] == 18.0
    listed = await gateway.query("{ patients(first: 100) { edges { node { id } } } }", token=tokens.service())
    assert raw not in json.dumps(body) + json.dumps(listed)
    async with gateway.gateway.services.audit.engine.connect() as connection:
        patients = (await connection.execute(sa.select(audit_log.c.patient))).scalars().all()
    assert pseudonym(raw) in patients and raw not in patients

    # Callers without a token may not turn identifiers into pseudonyms.
    anonymous = await gateway.query("query($id: ID!) { patient(id: $id) { id } }", variables={"id": raw})
    assert anonymous["data"]["patient"] is None
    assert anonymous["errors"][0]["extensions"] == {"code": "VALIDATION_ERROR", "field": "id"}
    assert raw not in json.dumps(anonymous)


@in_session_loop
async def test_invalid_input_is_refused_naming_the_field_before_reaching_the_twin(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    patient = new_identifier()
    before = twin_calls("SubmitSymptomReport")
    body = await gateway.query(
        PHQ9_REPORT, token=tokens.service(), variables={"patient": patient, "items": [1] * 8}
    )
    assert body["data"] == {"submitSymptomReport": None}
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_ERROR", "field": "input.itemResponses"}
    assert body["errors"][0]["message"] == "PHQ9 needs exactly 9 item responses"
    assert twin_calls("SubmitSymptomReport") == before

    genotype = await gateway.query(
        RECORD_GENOTYPE,
        token=tokens.service(),
        variables={"input": {"patientId": patient, "vcfBase64": "not base64!"}},
    )
    assert genotype["errors"][0]["extensions"] == {"code": "VALIDATION_ERROR", "field": "input.vcfBase64"}

    medications = await gateway.query(
        SET_MEDICATIONS,
        token=tokens.service(),
        variables={
            "id": patient,
            "meds": [{"name": "sertraline", "dailyDose": {"value": -10, "unit": "mg"}}],
        },
    )
    assert medications["errors"][0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "input.medications[0].dailyDose.value",
    }


@in_session_loop
async def test_a_stale_expected_version_is_a_conflict_and_is_not_retried(
    gateway: GatewayClient, tokens: Tokens
) -> None:
    patient, token = new_identifier(), tokens.service()
    version = await create_twin(gateway, token, patient)
    meds = [{"name": "Sertraline", "dailyDose": {"value": 50, "unit": "mg"}}]
    first = await gateway.query(
        SET_MEDICATIONS, token=token, variables={"id": patient, "meds": meds, "expected": version}
    )
    assert first["data"]["setMedications"] == {
        "version": version + 1,
        "medications": [{"name": "sertraline", "dailyDose": {"value": 50.0, "unit": "mg"}}],
    }

    before = twin_calls("SetMedications")
    stale = await gateway.query(
        SET_MEDICATIONS, token=token, variables={"id": patient, "meds": [], "expected": version}
    )
    assert stale["data"] == {"setMedications": None}
    assert error_codes(stale) == {("setMedications",): "CONFLICT"}
    assert stale["errors"][0]["extensions"]["service"] == "twin"
    assert twin_calls("SetMedications") - before == 1

    twin = await gateway.query(
        "query($id: ID!) { patient(id: $id) { twin { version medications { name } } } }",
        token=token,
        variables={"id": patient},
    )
    assert twin["data"]["patient"]["twin"] == {
        "version": version + 1,
        "medications": [{"name": "sertraline"}],
    }


@in_session_loop
async def test_a_repeated_idempotency_key_changes_nothing(gateway: GatewayClient, tokens: Tokens) -> None:
    patient, key = new_identifier(), str(uuid.uuid4())
    mutation = """mutation($id: ID!, $key: String) {
      submitSymptomReport(input: {patientId: $id, instrument: MOOD, moodRating: 7.5, idempotencyKey: $key}) {
        version duplicate report { total instrument }
      }
    }"""
    first = await gateway.query(mutation, token=tokens.service(), variables={"id": patient, "key": key})
    again = await gateway.query(mutation, token=tokens.service(), variables={"id": patient, "key": key})
    assert first["data"]["submitSymptomReport"]["duplicate"] is False
    assert again["data"]["submitSymptomReport"] == {**first["data"]["submitSymptomReport"], "duplicate": True}


@in_session_loop
async def test_genotypes_from_outside_calls_and_a_vcf(gateway: GatewayClient, tokens: Tokens) -> None:
    patient = new_identifier()
    calls = {
        "patientId": patient,
        "outsideCalls": [{"gene": "CYP2C19", "diplotype": "*1/*2", "source": "clinical lab"}],
        "hla": [{"allele": "HLA-B*15:02", "status": "NEGATIVE"}],
    }
    body = await gateway.query(RECORD_GENOTYPE, token=tokens.service(), variables={"input": calls})
    assert "errors" not in body, body
    genes = body["data"]["recordGenotype"]["genotype"]["genes"]
    assert {"gene": "CYP2C19", "diplotype": "*1/*2"} in genes

    vcf = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    body = await gateway.query(
        RECORD_GENOTYPE,
        token=tokens.service(),
        variables={"input": {"patientId": patient, "vcfBase64": base64.b64encode(vcf.encode()).decode()}},
    )
    # The VCF reached the twin, which needs the (stopped) pharmacogenomics service to read it.
    assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["errors"][0]["extensions"]["service"] == "pharmacogenomics"


@in_session_loop
async def test_an_analysis_request_needs_a_whole_week(gateway: GatewayClient, tokens: Tokens) -> None:
    body = await gateway.query(
        """mutation { requestActigraphyAnalysis(input: {patientId: "pt_0123456789abcdef0123",
             weekStart: "2026-01-05T00:00:00+00:00", weekEnd: "2026-01-10T00:00:00+00:00"}) { requestEventId } }""",
        token=tokens.service(),
    )
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_ERROR", "field": "input.weekEnd"}
    assert body["errors"][0]["message"] == "the week must span exactly 7 days"


@in_session_loop
async def test_conflicts_do_not_open_the_twin_breaker(
    twin: RunningTwin, gateway_factory: GatewayFactory, tokens: Tokens
) -> None:
    async with gateway_factory(twin, breaker_failure_threshold=2) as gateway:
        patient, token = new_identifier(), tokens.service()
        await create_twin(gateway, token, patient)
        for _ in range(4):
            stale = await gateway.query(
                SET_MEDICATIONS, token=token, variables={"id": patient, "meds": [], "expected": 0}
            )
            assert error_codes(stale) == {("setMedications",): "CONFLICT"}
        body = await gateway.query(
            "query($id: ID!) { patient(id: $id) { twin { version } } }",
            token=token,
            variables={"id": patient},
        )
        assert body["data"]["patient"]["twin"]["version"] == 1
